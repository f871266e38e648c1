{%- from "mail/map.jinja" import mail with context %}

mail-msmtp-package-installed:
  pkg.installed:
    - pkgs: {{ mail.lookup.msmtp.pkgs | json }}
