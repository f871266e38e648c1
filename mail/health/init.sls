{#- A daily "<host> is alive" mail to mail:admin: a systemd timer, or a cron
    entry where systemd does not run. Its failure alerts through mail.alerts. #}
{%- from "mail/map.jinja" import error, mail, plan with context %}
{%- if error or plan.mode == 'disabled' %}

include:
  - {{ 'mail.error' if error else 'mail.disabled' }}
{%- else %}
{%-   set health = plan.health %}

include:
  - mail.alerts

mail-health-script:
{%-   if health.enabled %}
  file.managed:
    - name: {{ health.script }}
    - source: salt://mail/files/mail-health.sh.jinja
    - template: jinja
    - makedirs: true
    - mode: '0755'
    - context:
        shell_vars: {{ health.shell_vars | json }}
{%-   else %}
  mailstack.formula_files_absent:
    - paths:
      - {{ health.script }}
    - state_dir: {{ mail.lookup.state_dir }}
{%-   endif %}
{%-   if health.systemd %}
{%-     if health.enabled %}

mail-health-units:
  file.managed:
    - names:
      - {{ health.service_file }}:
        - source: salt://mail/files/mail-health.service.jinja
      - {{ health.timer_file }}:
        - source: salt://mail/files/mail-health.timer.jinja
    - template: jinja
    - mode: '0644'
    - context: {{ health | json }}
    - onchanges_in:
      - cmd: mail-alerts-systemd-reload

mail-health-timer-running:
  service.running:
    - name: {{ health.timer }}
    - enable: true
    - require:
      - cmd: mail-alerts-systemd-reload
      - file: mail-health-script
{%-     elif health.timer_installed %}

mail-health-timer-dead:
  service.dead:
    - name: {{ health.timer }}
    - enable: false

mail-health-units:
  mailstack.formula_files_absent:
    - paths:
      - {{ health.service_file }}
      - {{ health.timer_file }}
    - state_dir: {{ mail.lookup.state_dir }}
    - require:
      - service: mail-health-timer-dead
    - onchanges_in:
      - cmd: mail-alerts-systemd-reload
{%-     endif %}
{%-   else %}

mail-health-cron:
{%-     if health.enabled %}
  file.managed:
    - name: {{ health.cron_file }}
    - source: salt://mail/files/mail-health.cron.jinja
    - template: jinja
    - makedirs: true
    - mode: '0644'
    - context: {{ health | json }}
{%-     else %}
  mailstack.formula_files_absent:
    - paths:
      - {{ health.cron_file }}
    - state_dir: {{ mail.lookup.state_dir }}
{%-     endif %}
{%-   endif %}
{%- endif %}
