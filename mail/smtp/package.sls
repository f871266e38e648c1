{%- from "mail/map.jinja" import mail, plan with context %}
{%- set msmtp = mail.lookup.msmtp %}

{%- if plan.packages.remove %}

mail-smtp-package-conflicts-removed:
  pkg.removed:
    - pkgs: {{ plan.packages.remove | json }}
    - require_in:
      - pkg: mail-smtp-package-installed
{%- endif %}

{%- if not msmtp.mta_pkg %}

mail-smtp-package-sendmail-link-removed:
  mailstack.sendmail_link_absent:
    - name: {{ msmtp.sendmail }}
    - target: {{ msmtp.binary }}
    - require_in:
      - pkg: mail-smtp-package-installed
{%- endif %}

mail-smtp-package-installed:
  pkg.installed:
    - pkgs: {{ mail.lookup.postfix.pkgs | json }}
    - require:
      - file: mail-smtp-config-main-cf
