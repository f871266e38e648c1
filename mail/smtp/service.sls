{#- Postfix running (reloaded or restarted when its files change) and enabled
    at boot; without the local relay, stopped before it is removed, since no
    init system may stop it for us. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mapdata = salt['mailstack.mapdata'](sls, tplroot) if 'mailstack.mapdata' in salt
                  else {'blocked': tplroot ~ '.error', 'mail': {}, 'plan': {}} %}
{%- set mail, plan, blocked = mapdata.mail, mapdata.plan, mapdata.blocked %}

include:
  - {{ blocked or '.package' }}
{%- if blocked %}
{%- elif plan.postfix %}
{%-   set postfix = mail.lookup.postfix %}

mail-smtp-service-running:
  mailstack.postfix_running:
    - name: {{ postfix.service | json }}
    - prestart: {{ postfix.prestart | json }}
    - require:
      - mailstack: mail-smtp-package-installed
    - watch:
{%-   for key in plan.layout.smtp | sort %}
      - mail-smtp-config-{{ key }}
{%-   endfor %}
{%-   if plan.layout.smtp['sasl-passwd'].present %}
      - mail-smtp-config-sasl-passwd-table
{%-   endif %}

mail-smtp-service-enabled:
  mailstack.postfix_enabled:
    - name: {{ postfix.service | json }}
    - require:
      - mailstack: mail-smtp-package-installed
{%- else %}
{%-   set postfix = mail.lookup.postfix %}

mail-smtp-service-not-wanted:
  test.show_notification:
    - text: {{ ('No local Postfix: ' ~ plan.postfix_reason) | json }}

mail-smtp-service-dead:
  mailstack.postfix_dead:
    - name: {{ postfix.service | json }}
{%- endif %}
