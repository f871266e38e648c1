{#- Mail mail:admin when a unit of mail:alerts:units fails: an OnFailure=
    drop-in per unit starts mail-alert@<unit>.service. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mapdata = salt['mailstack.mapdata'](sls, tplroot) if 'mailstack.mapdata' in salt
                  else {'blocked': tplroot ~ '.error', 'mail': {}, 'plan': {}} %}
{%- set plan, blocked = mapdata.plan, mapdata.blocked %}
{%- if blocked %}

include:
  - {{ blocked }}
{%- elif not plan.alerts.systemd %}

mail-alerts-skipped:
  test.show_notification:
    - text: {{ ('mail.alerts: ' ~ plan.alerts.reason) | json }}
{%- else %}
{%-   for key, file in plan.layout.alerts | dictsort %}

mail-alerts-{{ key }}:
  mailstack.formula_file:
    - name: {{ file.path | json }}
    - file: {{ file | json }}
{%-     if key != 'script' %}
    - onchanges_in:
      - cmd: mail-alerts-systemd-reload
{%-     endif %}
{%-   endfor %}

mail-alerts-systemd-reload:
  cmd.run:
    - name: systemctl daemon-reload
{%- endif %}
