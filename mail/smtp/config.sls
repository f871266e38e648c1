{#- Written before the package is installed, so that Debian's postinst keeps
    main.cf; the password map needs the package's postmap. Without the local
    relay only its password must go. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mail, plan, blocked with context %}
{%- from tplroot ~ "/macros.jinja" import file_state %}

include:
  - {{ blocked or '.package' }}
{%- if not blocked %}
{%-   for key, file in plan.layout.smtp_secrets_absent | dictsort %}
{{ file_state('mail-smtp-config-' ~ key, file) }}
{%-   endfor %}
{%-   for key, file in plan.layout.smtp | dictsort %}
{{ file_state('mail-smtp-config-' ~ key, file,
              {'require': [{'mailstack': 'mail-smtp-package-installed'}]} if key == 'sasl-passwd' else {}) }}
{%-     if key == 'sasl-passwd' and file.present %}

mail-smtp-config-sasl-passwd-table:
  mailstack.postmapped:
    - name: {{ file.path | json }}
    - map_type: {{ mail.lookup.postfix.map_type }}
    - require:
      - file: mail-smtp-config-sasl-passwd
{%-     endif %}
{%-   endfor %}
{%- endif %}
