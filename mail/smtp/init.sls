{#- The local Postfix relay: configured, installed and running where the plan
    wants it, else stopped and removed with its secrets. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mapdata = salt['mailstack.mapdata'](sls, tplroot) if 'mailstack.mapdata' in salt
                  else {'blocked': tplroot ~ '.error', 'mail': {}, 'plan': {}} %}
{%- set blocked = mapdata.blocked %}

include:
{%- if blocked %}
  - {{ blocked }}
{%- else %}
  - .config
  - .package
  - .service
{%- endif %}
