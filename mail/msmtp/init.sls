{#- msmtp, the sendmail-compatible client, everywhere; it is sendmail where Postfix is not. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import blocked with context %}

include:
{%- if blocked %}
  - {{ blocked }}
{%- else %}
  - .package
  - .config
  - .sendmail
{%- endif %}
