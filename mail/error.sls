{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import error with context %}

mail-error:
  test.configurable_test_state:
    - name: mail formula stopped before changing anything
    - changes: false
    - result: false
{#- Salt 3006 has no way to fail a test state in test mode: there a dry run
    reports the message with result True, and a real apply fails. #}
{%- if grains.get('saltversioninfo', [0])[0] >= 3007 %}
    - allow_test_mode_failure: true
{%- endif %}
    - comment: {{ error | json }}
