{#- Undo everything the formula installs: each concern's clean state, then the
    formula's own directories, only when nothing else is in them. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import plan, blocked with context %}

include:
{%- if blocked %}
  - {{ blocked }}
{%- else %}
  - .smtp.clean
  - .msmtp.clean
  - .alerts.clean
  - .health.clean

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
{%- endif %}
