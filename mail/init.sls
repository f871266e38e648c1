{%- from "mail/map.jinja" import error, plan with context %}

include:
{%- if error %}
  - mail.error
{%- elif plan.mode == 'disabled' %}
  - mail.disabled
{%- else %}
  - mail.smtp
  - mail.msmtp
  - mail.alerts
  - mail.health
{%- endif %}
