{#- Undo the local relay: Postfix stopped and purged, the formula's files in
    its configuration directory removed. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mail, plan, blocked with context %}
{%- set clean = plan.clean.smtp if not blocked else {} %}
{%- if blocked %}

include:
  - {{ blocked }}
{%- else %}

mail-smtp-clean-service-dead:
  mailstack.postfix_dead:
    - name: {{ clean.service | json }}

mail-smtp-clean-package-purged:
  pkg.purged:
    - pkgs: {{ clean.packages | json }}
    - require:
      - mailstack: mail-smtp-clean-service-dead

mail-smtp-clean-files-absent:
  mailstack.formula_files_absent:
    - paths: {{ clean.files | json }}
    - tables: {{ clean.tables | json }}
    - state_dir: {{ mail.lookup.state_dir | json }}
    - require:
      - pkg: mail-smtp-clean-package-purged
{%- endif %}
