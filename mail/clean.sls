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
{%- if not msmtp.mta_pkg %}

mail-clean-sendmail-link-absent:
  file.absent:
    - name: {{ msmtp.sendmail }}
    - onlyif: test "$(readlink {{ msmtp.sendmail }})" = "{{ msmtp.binary }}"
{%- endif %}
{%- endif %}
