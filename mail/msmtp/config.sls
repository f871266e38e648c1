{#- When msmtp itself authenticates, its configuration holds the password: only
    root and the users in mail:senders (through a formula-owned group) read it. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mapdata = salt['mailstack.mapdata'](sls, tplroot) if 'mailstack.mapdata' in salt
                  else {'blocked': tplroot ~ '.error', 'mail': {}, 'plan': {}} %}
{%- set mail, plan, blocked = mapdata.mail, mapdata.plan, mapdata.blocked %}
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
    - take_over: {{ group.take_over | json }}
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
      - mailstack: mail-msmtp-config-msmtprc
{%-   else %}
  mailstack.owned_group_absent:
    - name: {{ group.name | json }}
    - state_dir: {{ mail.lookup.state_dir | json }}
    - require:
      - mailstack: mail-msmtp-config-msmtprc
{%-   endif %}
{%-   for key, file in files | dictsort %}

mail-msmtp-config-{{ key }}:
  mailstack.formula_file:
    - name: {{ file.path | json }}
    - file: {{ file | json }}
{%-     if key == 'msmtprc' %}
    - require:
      - mailstack: mail-msmtp-package-installed
{%-     endif %}
{%-   endfor %}
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
