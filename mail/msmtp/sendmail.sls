{#- msmtp as sendmail: only once Postfix, which provides its own, is gone;
    where the plan has Postfix, sendmail is Postfix's and nothing is done here. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mapdata = salt['mailstack.mapdata'](sls, tplroot) if 'mailstack.mapdata' in salt
                  else {'blocked': tplroot ~ '.error', 'mail': {}, 'plan': {}} %}
{%- set plan, blocked = mapdata.plan, mapdata.blocked %}
{%- set provider = plan.sendmail_provider %}

include:
{%- if blocked %}
  - {{ blocked }}
{%- else %}
  - .package
{%-   if plan.sendmail == 'msmtp' %}
  - {{ tplroot }}.smtp.package

mail-msmtp-sendmail:
{%-     if provider.package %}
  mailstack.packages_installed:
    - pkgs: {{ [provider.package] | json }}
    - state_dir: {{ plan.packages.state_dir | json }}
    - owned: {{ plan.packages.owned | json }}
{%-     else %}
  file.symlink:
    - name: {{ provider.link.path | json }}
    - target: {{ provider.link.target | json }}
{%-     endif %}
    - require:
      - mailstack: mail-smtp-package-removed
      - mailstack: mail-msmtp-package-installed
{%-   endif %}
{%- endif %}
