{#- When msmtp itself authenticates, /etc/msmtprc holds the password: only
    root and the users in mail:senders (through a formula-owned group) read it. #}
{%- from "mail/map.jinja" import mail, plan with context %}
{%- set msmtp = mail.lookup.msmtp %}
{%- set secret = plan.files.secret_in_msmtprc %}

mail-msmtp-config-senders-group:
{%- if secret %}
  group.present:
    - name: {{ msmtp.group }}
    - system: true
    - members: {{ mail.senders | json }}
    - require_in:
      - file: mail-msmtp-config-msmtprc
{%- else %}
  group.absent:
    - name: {{ msmtp.group }}
    - require:
      - file: mail-msmtp-config-msmtprc
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
{%- set log = plan.files.msmtp_log %}
{%- if log.logfile %}

{#- Appendable by everyone who may send; readable by root (and mail:senders when 0660). #}
mail-msmtp-config-logfile:
  file.managed:
    - name: {{ log.logfile }}
    - replace: false
    - user: {{ log.user }}
    - group: {{ log.group }}
    - mode: '{{ log.mode }}'
    - require:
      - group: mail-msmtp-config-senders-group
{%- endif %}
