{#- Outbound system mail: the local relay or its removal, msmtp, alerts, health.
    The leaves of mail.smtp and mail.msmtp directly: each file rendered is time. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mapdata = salt['mailstack.mapdata'](sls, tplroot) if 'mailstack.mapdata' in salt
                  else {'blocked': tplroot ~ '.error', 'mail': {}, 'plan': {}} %}
{%- set blocked = mapdata.blocked %}

include:
{%- if blocked %}
  - {{ blocked }}
{%- else %}
  - .smtp.config
  - .smtp.package
  - .smtp.service
  - .msmtp.package
  - .msmtp.config
  - .msmtp.sendmail
  - .alerts
  - .health
  - .metrics
{%- endif %}
