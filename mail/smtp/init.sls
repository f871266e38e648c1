{#- The local Postfix relay: configured where the plan wants it, else removed. #}
{%- from "mail/map.jinja" import error, plan with context %}

include:
{%- if error %}
  - mail.error
{%- elif plan.mode == 'disabled' %}
  - mail.disabled
{%- elif plan.postfix %}
  - mail.smtp.config
  - mail.smtp.package
  - mail.smtp.service
{%- else %}
  - mail.smtp.clean
{%- endif %}
