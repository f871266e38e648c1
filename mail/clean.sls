{#- Undo everything the formula installs: Postfix, msmtp and their files. #}
{%- from "mail/map.jinja" import error, mail, sasl_files with context %}
{%- if error %}

include:
  - mail.error
{%- else %}
{%- set postfix = mail.lookup.postfix %}
{%- set msmtp = mail.lookup.msmtp %}

mail-clean-postfix-dead:
  mailstack.postfix_dead:
    - name: {{ postfix.service }}

mail-clean-packages-purged:
  pkg.purged:
    - pkgs: {{ (postfix.pkgs[:1] + ([msmtp.mta_pkg] if msmtp.mta_pkg else []) + msmtp.pkgs) | json }}
    - require:
      - mailstack: mail-clean-postfix-dead

mail-clean-senders-group-absent:
  mailstack.owned_group_absent:
    - name: {{ msmtp.group }}
    - state_dir: {{ mail.lookup.state_dir }}
    - require:
      - pkg: mail-clean-packages-purged

{#- Only what carries the formula's marker, or what it recorded creating. #}
mail-clean-files-absent:
  mailstack.formula_files_absent:
    - paths:
      - {{ msmtp.config }}
      - {{ msmtp.aliases }}
{%- for path in salt['mailstack.owned_files']() %}
      - {{ path }}
{%- endfor %}
      - {{ sasl_files[0] }}
      - {{ postfix.config_dir }}/recipient_canonical
      - {{ postfix.config_dir }}/virtual_alias
    - tables: {{ sasl_files[1:] | json }}
    - state_dir: {{ mail.lookup.state_dir }}
    - require:
      - pkg: mail-clean-packages-purged

mail-clean-health-timer-dead:
{%- if salt['file.file_exists'](mail.lookup.systemd_unit_dir ~ '/mail-health.timer') %}
  service.dead:
    - name: mail-health.timer
    - enable: false
{%- else %}
  test.succeed_without_changes:
    - comment: mail-health.timer is not installed
{%- endif %}

mail-clean-alerts-and-health-absent:
  mailstack.formula_files_absent:
    - paths:
      - {{ mail.lookup.libexec_dir }}/mail-alert
      - {{ mail.lookup.libexec_dir }}/mail-health
      - {{ mail.lookup.cron_dir }}/mail-health
      - {{ mail.lookup.systemd_unit_dir }}/mail-alert@.service
      - {{ mail.lookup.systemd_unit_dir }}/mail-health.service
      - {{ mail.lookup.systemd_unit_dir }}/mail-health.timer
{%- for path in salt['mailstack.alert_dropins']() %}
      - {{ path }}
{%- endfor %}
    - state_dir: {{ mail.lookup.state_dir }}
    - require:
      - mail-clean-health-timer-dead
      - mailstack: mail-clean-files-absent
      - mailstack: mail-clean-senders-group-absent

{#- The formula's own directories go last, and only when nothing else is in them. #}
mail-clean-own-directories-absent:
  mailstack.formula_dir_absent:
    - names:
      - {{ mail.lookup.libexec_dir }}
      - {{ mail.lookup.state_dir }}:
        - files: [health.last, owned.json, owned.json.new]
        - subdirs: [alerts]
    - require:
      - mailstack: mail-clean-alerts-and-health-absent

mail-clean-systemd-reload:
  cmd.run:
    - name: systemctl daemon-reload
    - onlyif: test -d /run/systemd/system
    - onchanges:
      - mailstack: mail-clean-alerts-and-health-absent
{%- if not msmtp.mta_pkg %}

mail-clean-sendmail-link-absent:
  mailstack.sendmail_link_absent:
    - name: {{ msmtp.sendmail }}
    - target: {{ msmtp.binary }}
{%- endif %}
{%- endif %}
