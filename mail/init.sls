{#- Outbound system mail: the local relay or its removal, msmtp, alerts, health. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import blocked with context %}

include:
{%- if blocked %}
  - {{ blocked }}
{%- else %}
  - .smtp
  - .msmtp
  - .alerts
  - .health
{%- endif %}
