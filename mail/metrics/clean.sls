{#- Undo the mail metrics: the timer stopped; its units, cron entry, collector and metrics file removed. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mapdata = salt['mailstack.mapdata'](sls, tplroot) if 'mailstack.mapdata' in salt
                  else {'blocked': tplroot ~ '.error', 'mail': {}, 'plan': {}} %}
{%- set mail, plan, blocked = mapdata.mail, mapdata.plan, mapdata.blocked %}
{%- set clean = plan.clean.metrics if not blocked else {} %}
{%- if blocked %}

include:
  - {{ blocked }}
{%- else %}
{%-   if clean.timer %}

mail-metrics-clean-timer-dead:
  service.dead:
    - name: {{ clean.timer | json }}
    - enable: false
    - require_in:
      - mailstack: mail-metrics-clean-files-absent
{%-   endif %}

mail-metrics-clean-files-absent:
  mailstack.formula_files_absent:
    - paths: {{ clean.files | json }}
    - state_dir: {{ mail.lookup.state_dir | json }}
{%-   if clean.systemd %}

mail-metrics-clean-systemd-reload:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - mailstack: mail-metrics-clean-files-absent
{%-   endif %}
{%- endif %}
