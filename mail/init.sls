{#- Outbound system mail: the local relay or its removal, msmtp, alerts, health.
    The leaves of mail.smtp and mail.msmtp directly: each file rendered is time. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mapdata = salt['mailstack.mapdata'](sls, tplroot) if 'mailstack.mapdata' in salt
                  else {'blocked': tplroot ~ '.error', 'mail': {}, 'plan': {}} %}
{%- set blocked = mapdata.blocked %}

include:
{%- if blocked %}
  - {{ blocked }}
{%- else %}
  - .smtp.config
  - .smtp.package
  - .smtp.service
  - .msmtp.package
  - .msmtp.config
  - .msmtp.sendmail
  - .alerts
  - .health
  - .metrics

{#- A marker for the whole apply: left first, removed last; one found at the
    start is an apply that was killed or cut off (mailstack.status shows it). #}
mail-apply-started:
  mailstack.apply_started:
    - name: {{ mapdata.mail.lookup.state_dir | json }}
    - order: 1

mail-apply-finished:
  mailstack.apply_finished:
    - name: {{ mapdata.mail.lookup.state_dir | json }}
    - order: last
{%- endif %}
