{%- set tplroot = tpldir.split('/')[0] %}
{%- set mapdata = salt['mailstack.mapdata'](sls, tplroot) if 'mailstack.mapdata' in salt
                  else {'blocked': tplroot ~ '.error', 'mail': {}, 'plan': {}} %}
{%- set plan = mapdata.plan %}

mail-disabled:
  test.show_notification:
    - text: {{ ('mail formula: nothing managed (' ~ plan.mode_reason ~ ')') | json }}
