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
  group.absent:
    - name: {{ msmtp.group }}
    - require:
      - pkg: mail-clean-packages-purged

mail-clean-files-absent:
  file.absent:
    - names:
      - {{ msmtp.config }}
      - {{ msmtp.aliases }}
{%- if mail.msmtp.logfile %}
      - {{ mail.msmtp.logfile }}
{%- endif %}
{%- for path in sasl_files %}
      - {{ path }}
{%- endfor %}
      - {{ postfix.config_dir }}/recipient_canonical
      - {{ postfix.config_dir }}/virtual_alias
    - require:
      - pkg: mail-clean-packages-purged

mail-clean-health-timer-dead:
  service.dead:
    - name: mail-health.timer
    - enable: false
    - onlyif: test -e {{ mail.lookup.systemd_unit_dir }}/mail-health.timer

mail-clean-alerts-and-health-absent:
  file.absent:
    - names:
      - {{ mail.lookup.libexec_dir }}
      - {{ mail.lookup.state_dir }}
      - {{ mail.lookup.cron_dir }}/mail-health
      - {{ mail.lookup.systemd_unit_dir }}/mail-alert@.service
      - {{ mail.lookup.systemd_unit_dir }}/mail-health.service
      - {{ mail.lookup.systemd_unit_dir }}/mail-health.timer
{%- for path in salt['mailstack.alert_dropins']() %}
      - {{ path }}
{%- endfor %}
    - require:
      - service: mail-clean-health-timer-dead

mail-clean-systemd-reload:
  cmd.run:
    - name: systemctl daemon-reload
    - onlyif: test -d /run/systemd/system
    - onchanges:
      - file: mail-clean-alerts-and-health-absent
{%- if not msmtp.mta_pkg %}

mail-clean-sendmail-link-absent:
  file.absent:
    - name: {{ msmtp.sendmail }}
    - onlyif: test "$(readlink {{ msmtp.sendmail }})" = "{{ msmtp.binary }}"
{%- endif %}
{%- endif %}
