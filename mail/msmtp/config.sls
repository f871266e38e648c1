{#- When msmtp itself authenticates, /etc/msmtprc holds the password: only
    root and the users in mail:senders (through a formula-owned group) read it. #}
{%- from "mail/map.jinja" import mail, plan with context %}
{%- set msmtp = mail.lookup.msmtp %}
{%- set state_dir = mail.lookup.state_dir %}
{%- set secret = plan.files.secret_in_msmtprc %}

mail-msmtp-config-senders-group:
{%- if secret %}
  mailstack.owned_group:
    - name: {{ msmtp.group }}
    - members: {{ mail.senders | json }}
    - state_dir: {{ state_dir }}
    - require_in:
      - file: mail-msmtp-config-msmtprc-private

{#- Salt writes new content with the old file's mode before it applies the new
    one: the file is made private first, so the password is never readable by others. #}
mail-msmtp-config-msmtprc-private:
  file.managed:
    - name: {{ msmtp.config }}
    - replace: false
    - user: root
    - group: {{ msmtp.group }}
    - mode: '0640'
    - require_in:
      - file: mail-msmtp-config-msmtprc
{%- else %}
  mailstack.owned_group_absent:
    - name: {{ msmtp.group }}
    - state_dir: {{ state_dir }}
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
  mailstack.formula_files_absent:
    - paths:
      - {{ msmtp.aliases }}
    - state_dir: {{ state_dir }}
{%- endif %}
{%- set log = plan.files.msmtp_log %}
{%- if log.logfile %}

{#- Root's alone: a log file is only allowed where only root sends. #}
mail-msmtp-config-logfile:
  mailstack.owned_log_file:
    - name: {{ log.logfile }}
    - mode: '{{ log.mode }}'
    - state_dir: {{ state_dir }}
{%- endif %}
