{#- Undo the daily "is alive" mail: its timer stopped, its units, cron entry and script removed. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mapdata = salt['mailstack.mapdata'](sls, tplroot) if 'mailstack.mapdata' in salt
                  else {'blocked': tplroot ~ '.error', 'mail': {}, 'plan': {}} %}
{%- set mail, plan, blocked = mapdata.mail, mapdata.plan, mapdata.blocked %}
{%- set clean = plan.clean.health if not blocked else {} %}
{%- if blocked %}

include:
  - {{ blocked }}
{%- else %}
{%-   if clean.timer %}

mail-health-clean-timer-dead:
  service.dead:
    - name: {{ clean.timer | json }}
    - enable: false
    - require_in:
      - mailstack: mail-health-clean-files-absent
{%-   endif %}

mail-health-clean-files-absent:
  mailstack.formula_files_absent:
    - paths: {{ clean.files | json }}
    - state_dir: {{ mail.lookup.state_dir | json }}
{%-   if clean.systemd %}

mail-health-clean-systemd-reload:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - mailstack: mail-health-clean-files-absent
{%-   endif %}
{%- endif %}
