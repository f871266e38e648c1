{#- Postfix installed where the plan has the local relay (after main.cf, in
    place of msmtp's sendmail), else removed once it is stopped. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mapdata = salt['mailstack.mapdata'](sls, tplroot) if 'mailstack.mapdata' in salt
                  else {'blocked': tplroot ~ '.error', 'mail': {}, 'plan': {}} %}
{%- set plan, blocked = mapdata.plan, mapdata.blocked %}

include:
  - {{ blocked or ('.config' if plan.postfix else '.service') }}
{%- if blocked %}
{%- elif plan.postfix %}
{%-   if plan.packages.remove %}

mail-smtp-package-conflicts-removed:
  mailstack.packages_removed:
    - pkgs: {{ plan.packages.remove | json }}
    - state_dir: {{ plan.packages.state_dir | json }}
    - require_in:
      - mailstack: mail-smtp-package-installed
{%-   endif %}
{%-   if plan.clean.msmtp.sendmail_link %}

mail-smtp-package-sendmail-link-removed:
  mailstack.sendmail_link_absent:
    - name: {{ plan.clean.msmtp.sendmail_link.path | json }}
    - target: {{ plan.clean.msmtp.sendmail_link.target | json }}
    - require_in:
      - mailstack: mail-smtp-package-installed
{%-   endif %}

mail-smtp-package-installed:
  mailstack.packages_installed:
    - pkgs: {{ plan.packages.by_state.postfix | json }}
    - state_dir: {{ plan.packages.state_dir | json }}
    - owned: {{ plan.packages.owned | json }}
    - require:
      - mailstack: mail-smtp-config-main-cf
{%- else %}

mail-smtp-package-removed:
  mailstack.packages_removed:
    - pkgs: {{ plan.packages.remove | json }}
    - state_dir: {{ plan.packages.state_dir | json }}
    - require:
      - mailstack: mail-smtp-service-dead
{%- endif %}
