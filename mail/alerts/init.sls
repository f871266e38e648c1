{#- Mail mail:admin when a unit of mail:alerts:units fails: an OnFailure=
    drop-in per unit starts mail-alert@<unit>.service. #}
{%- from "mail/map.jinja" import error, mail, plan with context %}
{%- if error or plan.mode == 'disabled' %}

include:
  - {{ 'mail.error' if error else 'mail.disabled' }}
{%- elif not plan.alerts.systemd %}

mail-alerts-skipped:
  test.show_notification:
    - text: {{ ('mail.alerts: ' ~ plan.alerts.reason) | json }}
{%- else %}
{%-   set alerts = plan.alerts %}

mail-alerts-script:
{%-   if alerts.active %}
  file.managed:
    - name: {{ alerts.script }}
    - source: salt://mail/files/mail-alert.sh.jinja
    - template: jinja
    - makedirs: true
    - mode: '0755'
    - context:
        shell_vars: {{ alerts.shell_vars | json }}
{%-   else %}
  mailstack.formula_files_absent:
    - paths:
      - {{ alerts.script }}
    - state_dir: {{ mail.lookup.state_dir }}
{%-   endif %}

mail-alerts-unit:
{%-   if alerts.active %}
  file.managed:
    - name: {{ alerts.unit_file }}
    - source: salt://mail/files/mail-alert@.service.jinja
    - template: jinja
    - mode: '0644'
    - context:
        script: {{ alerts.script | json }}
{%-   else %}
  mailstack.formula_files_absent:
    - paths:
      - {{ alerts.unit_file }}
    - state_dir: {{ mail.lookup.state_dir }}
{%-   endif %}
    - onchanges_in:
      - cmd: mail-alerts-systemd-reload
{%-   for unit, path in alerts.dropins | dictsort %}

mail-alerts-dropin-{{ unit }}:
  file.managed:
    - name: {{ path }}
    - source: salt://mail/files/mail-alert-dropin.conf
    - makedirs: true
    - mode: '0644'
    - onchanges_in:
      - cmd: mail-alerts-systemd-reload
{%-   endfor %}
{%-   for path in alerts.stale_dropins %}

mail-alerts-stale-dropin-{{ path }}:
  mailstack.formula_files_absent:
    - paths:
      - {{ path }}
    - state_dir: {{ mail.lookup.state_dir }}
    - onchanges_in:
      - cmd: mail-alerts-systemd-reload
{%-   endfor %}

mail-alerts-systemd-reload:
  cmd.run:
    - name: systemctl daemon-reload
{%- endif %}
