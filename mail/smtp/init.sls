{#- The local Postfix relay: configured, installed and running where the plan
    wants it, else stopped and removed with its secrets. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import blocked with context %}

include:
{%- if blocked %}
  - {{ blocked }}
{%- else %}
  - .config
  - .package
  - .service
{%- endif %}
