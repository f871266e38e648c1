{#- Undo everything the formula installs: each concern's clean state, then the
    formula's own directories, only when nothing else is in them. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mapdata = salt['mailstack.mapdata'](sls, tplroot) if 'mailstack.mapdata' in salt
                  else {'blocked': tplroot ~ '.error', 'mail': {}, 'plan': {}} %}
{%- set plan, blocked = mapdata.plan, mapdata.blocked %}

include:
{%- if blocked %}
  - {{ blocked }}
{%- else %}
  - .smtp.clean
  - .msmtp.clean
  - .alerts.clean
  - .health.clean
  - .metrics.clean

mail-clean-own-directories-absent:
  mailstack.formula_dir_absent:
    - names:
{%-   for path, keep in plan.clean.directories | dictsort %}
      - {{ path | json }}:
        - files: {{ keep.files | json }}
        - subdirs: {{ keep.subdirs | json }}
{%-   endfor %}
    - require:
      - mailstack: mail-smtp-clean-files-absent
      - mailstack: mail-msmtp-clean-files-absent
      - mailstack: mail-msmtp-clean-senders-group-absent
      - mailstack: mail-alerts-clean-files-absent
      - mailstack: mail-health-clean-files-absent
      - mailstack: mail-metrics-clean-files-absent
{%- endif %}
{%- if mapdata.ssh is defined %}

{#- salt-ssh (_wrapper/mailstack.py): the plan was decided on the control host;
    check it on the target first, and stop there unless it is the same. #}
mail-ssh-plan-checked:
  mailstack.ssh_plan_checked:
    - digest: {{ mapdata.ssh.digest | json }}
    - sls: {{ mapdata.ssh.sls | json }}
    - tplroot: {{ mapdata.ssh.tplroot | json }}
    - files: {{ mapdata.ssh.files | json }}
    - order: 0
    - failhard: true
{%- endif %}
