{%- from "mail/map.jinja" import plan with context %}

include:
{%- if plan.mode == 'disabled' %}
  - mail.disabled
{%- else %}
  - mail.smtp
  - mail.msmtp
{%- endif %}
