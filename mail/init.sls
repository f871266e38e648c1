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
{%- if mapdata.ssh is defined %}

{#- salt-ssh (_wrapper/mailstack.py): the plan was decided on the control host;
    check it on the target first, and stop there unless it is the same. #}
mail-ssh-plan-checked:
  mailstack.ssh_plan_checked:
    - digest: {{ mapdata.ssh.digest | json }}
    - sls: {{ mapdata.ssh.sls | json }}
    - tplroot: {{ mapdata.ssh.tplroot | json }}
    - files: {{ mapdata.ssh.files | json }}
    - order: 0
    - failhard: true
{%- endif %}
