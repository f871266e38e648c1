{#- A daily "<host> is alive" mail to mail:admin: a systemd timer, or a cron
    entry where systemd does not run. Its failure alerts through mail.alerts. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import plan, blocked with context %}
{%- from tplroot ~ "/macros.jinja" import file_state %}
{%- set health = plan.health %}

include:
  - {{ blocked or tplroot ~ '.alerts' }}
{%- if not blocked %}
{%-   for key, file in plan.layout.health | dictsort %}
{%-     set reload = {'onchanges_in': [{'cmd': 'mail-alerts-systemd-reload'}]} if key in ('service', 'timer') else {} %}
{%-     set stop_first = {'require': [{'service': 'mail-health-timer-dead'}]}
                         if key in ('service', 'timer') and not file.present and health.timer_installed else {} %}
{{ file_state('mail-health-' ~ key, file, dict(reload, **stop_first)) }}
{%-   endfor %}
{%-   if health.systemd and health.enabled %}

mail-health-timer-running:
  service.running:
    - name: {{ health.timer }}
    - enable: true
    - require:
      - cmd: mail-alerts-systemd-reload
      - file: mail-health-script
{%-   elif health.systemd and health.timer_installed %}

mail-health-timer-dead:
  service.dead:
    - name: {{ health.timer }}
    - enable: false
{%-   endif %}
{%- endif %}
