{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import plan with context %}

mail-disabled:
  test.show_notification:
    - text: {{ ('mail formula: nothing managed (' ~ plan.mode_reason ~ ')') | json }}
