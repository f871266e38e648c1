{#- A daily "<host> is alive" mail to mail:admin: a systemd timer, or a cron
    entry where systemd does not run. Its failure alerts through mail.alerts. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mapdata = salt['mailstack.mapdata'](sls, tplroot) if 'mailstack.mapdata' in salt
                  else {'blocked': tplroot ~ '.error', 'mail': {}, 'plan': {}} %}
{%- set plan, blocked = mapdata.plan, mapdata.blocked %}
{%- set health = plan.health %}

include:
  - {{ blocked or tplroot ~ '.alerts' }}
{%- if not blocked %}
{%-   for key, file in plan.layout.health | dictsort %}

mail-health-{{ key }}:
  mailstack.formula_file:
    - name: {{ file.path | json }}
    - file: {{ file | json }}
{%-     if key in ('service', 'timer') %}
    - onchanges_in:
      - cmd: mail-alerts-systemd-reload
{%-       if not file.present and health.timer_installed %}
    - require:
      - service: mail-health-timer-dead
{%-       endif %}
{%-     endif %}
{%-   endfor %}
{%-   if health.systemd and health.enabled %}

mail-health-timer-running:
  service.running:
    - name: {{ health.timer }}
    - enable: true
    - require:
      - cmd: mail-alerts-systemd-reload
      - mailstack: mail-health-script
{%-   elif health.systemd and health.timer_installed %}

mail-health-timer-dead:
  service.dead:
    - name: {{ health.timer }}
    - enable: false
{%-   endif %}
{%- endif %}
