{%- from "mail/map.jinja" import mail with context %}
{%- set postfix = mail.lookup.postfix %}

mail-smtp-service-running:
  mailstack.postfix_running:
    - name: {{ postfix.service }}
    - prestart: {{ postfix.prestart | json }}
    - require:
      - pkg: mail-smtp-package-installed
    - watch:
      - file: mail-smtp-config-main-cf
      - mail-smtp-config-sasl-passwd
      - mail-smtp-config-recipient-canonical
      - mail-smtp-config-virtual-alias

mail-smtp-service-enabled:
  mailstack.postfix_enabled:
    - name: {{ postfix.service }}
    - require:
      - pkg: mail-smtp-package-installed
