{%- set tplroot = tpldir.split('/')[0] %}
{%- set mapdata = salt['mailstack.mapdata'](sls, tplroot) if 'mailstack.mapdata' in salt
                  else {'blocked': tplroot ~ '.error', 'mail': {}, 'plan': {}} %}
{%- set plan, blocked = mapdata.plan, mapdata.blocked %}
{%- if blocked %}

include:
  - {{ blocked }}
{%- else %}

mail-msmtp-package-installed:
  mailstack.packages_installed:
    - pkgs: {{ plan.packages.by_state.msmtp | json }}
    - state_dir: {{ plan.packages.state_dir | json }}
    - owned: {{ plan.packages.owned | json }}
{%- endif %}
