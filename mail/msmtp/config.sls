{#- /etc/msmtprc holds a password when msmtp talks to an authenticated server
    itself; then only root and the setgid msmtp binary can read it. #}
{%- from "mail/map.jinja" import mail, plan with context %}
{%- set msmtp = mail.lookup.msmtp %}
{%- set secret = plan.files.secret_in_msmtprc %}

{%- if secret %}

mail-msmtp-config-group:
  group.present:
    - name: {{ msmtp.group }}
    - system: true
    - require_in:
      - file: mail-msmtp-config-msmtprc

mail-msmtp-config-setgid:
  mailstack.setgid:
    - name: {{ msmtp.binary }}
    - group: {{ msmtp.group }}
    - require:
      - pkg: mail-msmtp-package-installed
      - group: mail-msmtp-config-group
{%- else %}

mail-msmtp-config-setgid:
  mailstack.not_setgid:
    - name: {{ msmtp.binary }}
    - require:
      - pkg: mail-msmtp-package-installed
{%- endif %}

mail-msmtp-config-msmtprc:
  file.managed:
    - name: {{ msmtp.config }}
    - source: salt://mail/files/msmtprc.jinja
    - template: jinja
    - user: root
    - group: {{ msmtp.group if secret else 'root' }}
    - mode: '{{ '0640' if secret else '0644' }}'
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
