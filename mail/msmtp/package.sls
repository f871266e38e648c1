{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import plan, blocked with context %}
{%- if blocked %}

include:
  - {{ blocked }}
{%- else %}

mail-msmtp-package-installed:
  mailstack.packages_installed:
    - pkgs: {{ plan.packages.by_state.msmtp | json }}
{%- endif %}
