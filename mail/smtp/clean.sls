{#- No Postfix here: stop it before removing it, since no init system may stop it for us. #}
{%- from "mail/map.jinja" import mail, plan, sasl_files with context %}
{%- set postfix = mail.lookup.postfix %}

mail-smtp-clean-skipped:
  test.show_notification:
    - text: {{ ('No local Postfix: ' ~ plan.postfix_reason) | json }}

mail-smtp-clean-service-dead:
  mailstack.postfix_dead:
    - name: {{ postfix.service }}

mail-smtp-clean-package-removed:
  pkg.removed:
    - pkgs: {{ postfix.pkgs[:1] | json }}
    - require:
      - mailstack: mail-smtp-clean-service-dead

mail-smtp-clean-secrets-absent:
  mailstack.formula_files_absent:
    - paths:
      - {{ sasl_files[0] }}
    - tables: {{ sasl_files[1:] | json }}
    - state_dir: {{ mail.lookup.state_dir }}
