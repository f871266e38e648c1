{#- Written before the package is installed, so that Debian's postinst keeps it. #}
{%- from "mail/map.jinja" import mail, plan, sasl_files with context %}
{%- set dir = mail.lookup.postfix.config_dir %}

mail-smtp-config-main-cf:
  file.managed:
    - name: {{ dir }}/main.cf
    - source: salt://mail/files/main.cf.jinja
    - template: jinja
    - makedirs: true
    - user: root
    - group: root
    - mode: '0644'
    - context:
        params: {{ plan.files.main_cf | json }}

mail-smtp-config-sasl-passwd:
{%- if plan.files.sasl_passwd %}
  file.managed:
    - name: {{ dir }}/sasl_passwd
    - source: salt://mail/files/sasl_passwd.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: '0600'
    - show_changes: false
    - require:
      - pkg: mail-smtp-package-installed
  mailstack.postmapped:
    - name: {{ dir }}/sasl_passwd
    - map_type: {{ mail.lookup.postfix.map_type }}
    - require:
      - file: mail-smtp-config-sasl-passwd
{%- else %}
  mailstack.formula_files_absent:
    - paths:
      - {{ sasl_files[0] }}
    - tables: {{ sasl_files[1:] | json }}
    - state_dir: {{ mail.lookup.state_dir }}
{%- endif %}

mail-smtp-config-recipient-canonical:
{%- if plan.files.recipient_canonical %}
  file.managed:
    - name: {{ dir }}/recipient_canonical
    - contents: {{ plan.files.recipient_canonical | json }}
    - makedirs: true
    - mode: '0644'
{%- else %}
  mailstack.formula_files_absent:
    - paths:
      - {{ dir }}/recipient_canonical
    - state_dir: {{ mail.lookup.state_dir }}
{%- endif %}

mail-smtp-config-virtual-alias:
{%- if plan.files.virtual_alias %}
  file.managed:
    - name: {{ dir }}/virtual_alias
    - contents: {{ plan.files.virtual_alias | json }}
    - makedirs: true
    - mode: '0644'
{%- else %}
  mailstack.formula_files_absent:
    - paths:
      - {{ dir }}/virtual_alias
    - state_dir: {{ mail.lookup.state_dir }}
{%- endif %}
