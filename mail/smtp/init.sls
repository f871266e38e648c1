{#- The local Postfix relay: configured where the plan wants it, else removed. #}
{%- from "mail/map.jinja" import plan with context %}

include:
{%- if plan.mode == 'disabled' %}
  - mail.disabled
{%- elif plan.postfix %}
  - mail.smtp.config
  - mail.smtp.package
  - mail.smtp.service
{%- else %}
  - mail.smtp.clean
{%- endif %}
