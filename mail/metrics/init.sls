{#- The mail metrics for node_exporter's textfile collector: the collector and
    its timer, or a cron entry where systemd does not run; all removed when off. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mapdata = salt['mailstack.mapdata'](sls, tplroot) if 'mailstack.mapdata' in salt
                  else {'blocked': tplroot ~ '.error', 'mail': {}, 'plan': {}} %}
{%- set plan, blocked = mapdata.plan, mapdata.blocked %}
{%- set metrics = plan.metrics %}
{%- if blocked %}

include:
  - {{ blocked }}
{%- else %}
{%-   if metrics.systemd and metrics.timer_installed and not metrics.enabled %}

mail-metrics-timer-dead:
  service.dead:
    - name: {{ metrics.timer }}
    - enable: false
{%-   endif %}
{%-   for key, file in plan.layout.metrics | dictsort %}

mail-metrics-{{ key }}:
  mailstack.formula_file:
    - name: {{ file.path | json }}
    - file: {{ file | json }}
{%-     if key in ('service', 'timer') and metrics.systemd %}
    - onchanges_in:
      - cmd: mail-metrics-systemd-reload
{%-       if not file.present and metrics.timer_installed %}
    - require:
      - service: mail-metrics-timer-dead
{%-       endif %}
{%-     endif %}
{%-   endfor %}
{%-   if metrics.systemd %}

mail-metrics-systemd-reload:
  cmd.run:
    - name: systemctl daemon-reload
{%-   endif %}
{%-   if metrics.enabled %}

mail-metrics-refreshed:
  cmd.run:
    - name: {{ metrics.script | json }}
    - onchanges:
      - mailstack: mail-metrics-script
{%-     if metrics.systemd %}

mail-metrics-timer-running:
  service.running:
    - name: {{ metrics.timer }}
    - enable: true
    - require:
      - cmd: mail-metrics-systemd-reload
      - cmd: mail-metrics-refreshed
{%-     endif %}
{%-   endif %}
{%- endif %}
