{#- Undo the local relay: Postfix stopped and purged, the formula's files in
    its configuration directory removed. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mapdata = salt['mailstack.mapdata'](sls, tplroot) if 'mailstack.mapdata' in salt
                  else {'blocked': tplroot ~ '.error', 'mail': {}, 'plan': {}} %}
{%- set mail, plan, blocked = mapdata.mail, mapdata.plan, mapdata.blocked %}
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
