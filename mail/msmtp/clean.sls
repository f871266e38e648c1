{#- Undo msmtp: the packages the formula installed purged, its files and the
    senders' group removed, a sendmail symlink the formula made gone. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mapdata = salt['mailstack.mapdata'](sls, tplroot) if 'mailstack.mapdata' in salt
                  else {'blocked': tplroot ~ '.error', 'mail': {}, 'plan': {}} %}
{%- set mail, plan, blocked = mapdata.mail, mapdata.plan, mapdata.blocked %}
{%- set clean = plan.clean.msmtp if not blocked else {} %}
{%- if blocked %}

include:
  - {{ blocked }}
{%- else %}

mail-msmtp-clean-packages-purged:
  mailstack.packages_removed:
    - pkgs: {{ clean.packages | json }}
    - state_dir: {{ plan.clean.packages.state_dir | json }}
    - purge: true

mail-msmtp-clean-senders-group-absent:
  mailstack.owned_group_absent:
    - name: {{ clean.group | json }}
    - state_dir: {{ mail.lookup.state_dir | json }}
    - require:
      - mailstack: mail-msmtp-clean-packages-purged

{#- Only what carries the formula's marker, or what it recorded creating. #}
mail-msmtp-clean-files-absent:
  mailstack.formula_files_absent:
    - paths: {{ clean.files | json }}
    - state_dir: {{ mail.lookup.state_dir | json }}
    - require:
      - mailstack: mail-msmtp-clean-packages-purged
{%-   if clean.sendmail_link %}

mail-msmtp-clean-sendmail-link-absent:
  mailstack.sendmail_link_absent:
    - name: {{ clean.sendmail_link.path | json }}
    - target: {{ clean.sendmail_link.target | json }}
{%-   endif %}
{%- endif %}
