{#- Mail mail:admin when a unit of mail:alerts:units fails: an OnFailure=
    drop-in per unit starts mail-alert@<unit>.service. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import plan, blocked with context %}
{%- from tplroot ~ "/macros.jinja" import file_state %}
{%- if blocked %}

include:
  - {{ blocked }}
{%- elif not plan.alerts.systemd %}

mail-alerts-skipped:
  test.show_notification:
    - text: {{ ('mail.alerts: ' ~ plan.alerts.reason) | json }}
{%- else %}
{%-   for key, file in plan.layout.alerts | dictsort %}
{{ file_state('mail-alerts-' ~ key, file,
              {} if key == 'script' else {'onchanges_in': [{'cmd': 'mail-alerts-systemd-reload'}]}) }}
{%-   endfor %}

mail-alerts-systemd-reload:
  cmd.run:
    - name: systemctl daemon-reload
{%- endif %}
