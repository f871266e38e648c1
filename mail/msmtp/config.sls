{#- When msmtp itself authenticates, its configuration holds the password: only
    root and the users in mail:senders (through a formula-owned group) read it. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mail, plan, blocked with context %}
{%- from tplroot ~ "/macros.jinja" import file_state %}
{%- set files = plan.layout.msmtp if not blocked else {} %}
{%- set group = plan.senders_group %}

include:
  - {{ blocked or '.package' }}
{%- if not blocked %}

mail-msmtp-config-senders-group:
{%-   if group.present %}
  mailstack.owned_group:
    - name: {{ group.name | json }}
    - members: {{ group.members | json }}
    - state_dir: {{ mail.lookup.state_dir | json }}
    - require_in:
      - file: mail-msmtp-config-msmtprc-private

{#- Salt writes new content with the old file's mode before it applies the new
    one: the file is made private first, so the password is never readable by others. #}
mail-msmtp-config-msmtprc-private:
  file.managed:
    - name: {{ files.msmtprc.path | json }}
    - replace: false
    - user: {{ files.msmtprc.user }}
    - group: {{ files.msmtprc.group | json }}
    - mode: '{{ files.msmtprc.mode }}'
    - require_in:
      - file: mail-msmtp-config-msmtprc
{%-   else %}
  mailstack.owned_group_absent:
    - name: {{ group.name | json }}
    - state_dir: {{ mail.lookup.state_dir | json }}
    - require:
      - file: mail-msmtp-config-msmtprc
{%-   endif %}
{{ file_state('mail-msmtp-config-msmtprc', files.msmtprc, {'require': [{'mailstack': 'mail-msmtp-package-installed'}]}) }}
{{ file_state('mail-msmtp-config-aliases', files.aliases) }}
{%-   set log = plan.files.msmtp_log %}
{%-   if log.logfile %}

{#- Root's alone: a log file is only allowed where only root sends. #}
mail-msmtp-config-logfile:
  mailstack.owned_log_file:
    - name: {{ log.logfile | json }}
    - mode: '{{ log.mode }}'
    - state_dir: {{ mail.lookup.state_dir | json }}
{%-   endif %}
{%- endif %}
