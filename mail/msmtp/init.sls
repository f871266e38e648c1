{#- msmtp, the sendmail-compatible client, everywhere; it is sendmail where Postfix is not. #}
{%- from "mail/map.jinja" import error, plan with context %}

include:
{%- if error %}
  - mail.error
{%- elif plan.mode == 'disabled' %}
  - mail.disabled
{%- else %}
  - mail.msmtp.package
  - mail.msmtp.config
{%- if plan.sendmail == 'msmtp' %}
  - mail.msmtp.sendmail
{%- endif %}
{%- endif %}
