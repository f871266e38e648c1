{#- Written before the package is installed, so that Debian's postinst keeps
    main.cf; the password map needs the package's postmap. Without the local
    relay only its password must go. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mapdata = salt['mailstack.mapdata'](sls, tplroot) if 'mailstack.mapdata' in salt
                  else {'blocked': tplroot ~ '.error', 'mail': {}, 'plan': {}} %}
{%- set mail, plan, blocked = mapdata.mail, mapdata.plan, mapdata.blocked %}

include:
  - {{ blocked or '.package' }}
{%- if not blocked %}
{%-   for key, file in dict(plan.layout.smtp_secrets_absent, **plan.layout.smtp) | dictsort %}

mail-smtp-config-{{ key }}:
  mailstack.formula_file:
    - name: {{ file.path | json }}
    - file: {{ file | json }}
{%-     if key == 'sasl-passwd' %}
    - require:
      - mailstack: mail-smtp-package-installed
{%-     endif %}
{%-     if key == 'sasl-passwd' and file.present %}

mail-smtp-config-sasl-passwd-table:
  mailstack.postmapped:
    - name: {{ file.path | json }}
    - map_type: {{ mail.lookup.postfix.map_type }}
    - stale_tables: {{ file.stale_tables | json }}
    - require:
      - mailstack: mail-smtp-config-sasl-passwd
{%-     endif %}
{%-   endfor %}
{%- endif %}
