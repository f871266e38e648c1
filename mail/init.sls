{#- Outbound system mail: the local relay or its removal, msmtp, alerts, health.
    The leaves of mail.smtp and mail.msmtp directly: each file rendered is time. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import blocked with context %}

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
{%- endif %}
