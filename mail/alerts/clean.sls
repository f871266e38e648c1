{#- Undo the failure alerts: the script, its unit and every OnFailure= drop-in. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mapdata = salt['mailstack.mapdata'](sls, tplroot) if 'mailstack.mapdata' in salt
                  else {'blocked': tplroot ~ '.error', 'mail': {}, 'plan': {}} %}
{%- set mail, plan, blocked = mapdata.mail, mapdata.plan, mapdata.blocked %}
{%- set clean = plan.clean.alerts if not blocked else {} %}
{%- if blocked %}

include:
  - {{ blocked }}
{%- else %}

mail-alerts-clean-files-absent:
  mailstack.formula_files_absent:
    - paths: {{ clean.files | json }}
    - state_dir: {{ mail.lookup.state_dir | json }}
{%-   if clean.systemd %}

mail-alerts-clean-systemd-reload:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - mailstack: mail-alerts-clean-files-absent
{%-   endif %}
{%- endif %}
