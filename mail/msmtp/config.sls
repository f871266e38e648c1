{%- from "mail/map.jinja" import mail, plan with context %}
{%- set msmtp = mail.lookup.msmtp %}

mail-msmtp-config-msmtprc:
  file.managed:
    - name: {{ msmtp.config }}
    - source: salt://mail/files/msmtprc.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: '{{ '0600' if plan.files.secret_in_msmtprc else '0644' }}'
    - show_changes: false
    - require:
      - pkg: mail-msmtp-package-installed

mail-msmtp-config-aliases:
{%- if plan.files.msmtp_aliases %}
  file.managed:
    - name: {{ msmtp.aliases }}
    - contents: {{ plan.files.msmtp_aliases | json }}
    - mode: '0644'
{%- else %}
  file.absent:
    - name: {{ msmtp.aliases }}
{%- endif %}
