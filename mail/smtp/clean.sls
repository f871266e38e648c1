{#- Undo the local relay: Postfix stopped and purged if the formula installed
    it, the formula's files in its configuration directory removed. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mapdata = salt['mailstack.mapdata'](sls, tplroot) if 'mailstack.mapdata' in salt
                  else {'blocked': tplroot ~ '.error', 'mail': {}, 'plan': {}} %}
{%- set mail, plan, blocked = mapdata.mail, mapdata.plan, mapdata.blocked %}
{%- set clean = plan.clean.smtp if not blocked else {} %}
{%- if blocked %}

include:
  - {{ blocked }}
{%- else %}
{%-   if clean.service %}

mail-smtp-clean-service-dead:
  mailstack.postfix_dead:
    - name: {{ clean.service | json }}
    - require_in:
      - mailstack: mail-smtp-clean-package-purged
{%-   endif %}

mail-smtp-clean-package-purged:
  mailstack.packages_removed:
    - pkgs: {{ clean.packages | json }}
    - state_dir: {{ plan.clean.packages.state_dir | json }}
    - purge: {{ clean.purge | json }}

mail-smtp-clean-files-absent:
  mailstack.formula_files_absent:
    - paths: {{ clean.files | json }}
    - tables: {{ clean.tables | json }}
    - state_dir: {{ mail.lookup.state_dir | json }}
    - require:
      - mailstack: mail-smtp-clean-package-purged
{%- endif %}
