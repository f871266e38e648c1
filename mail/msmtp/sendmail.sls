{#- msmtp as sendmail: only once Postfix, which provides its own, is gone. #}
{%- from "mail/map.jinja" import mail with context %}
{%- set msmtp = mail.lookup.msmtp %}

include:
  - mail.smtp.clean

mail-msmtp-sendmail:
{%- if msmtp.mta_pkg %}
  pkg.installed:
    - name: {{ msmtp.mta_pkg }}
{%- else %}
  file.symlink:
    - name: {{ msmtp.sendmail }}
    - target: {{ msmtp.binary }}
{%- endif %}
    - require:
      - pkg: mail-smtp-clean-package-removed
      - pkg: mail-msmtp-package-installed
