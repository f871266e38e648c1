{#- msmtp's configuration, readable by root and mail:senders only where it holds a password.
    The states are mailstack_states' (_utils/mailstack_states.py), from the plan. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mapdata = salt['mailstack.mapdata'](sls, tplroot, rendered_sls) if 'mailstack.mapdata' in salt else {'sls': dict(include=[tplroot ~ '.error'])} %}
{{ mapdata.sls | tojson }}
