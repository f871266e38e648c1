{#- msmtp, the sendmail-compatible client, everywhere; it is sendmail where Postfix is not. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mapdata = salt['mailstack.mapdata'](sls, tplroot) if 'mailstack.mapdata' in salt
                  else {'blocked': tplroot ~ '.error', 'mail': {}, 'plan': {}} %}
{%- set blocked = mapdata.blocked %}

include:
{%- if blocked %}
  - {{ blocked }}
{%- else %}
  - .package
  - .config
  - .sendmail
{%- endif %}
