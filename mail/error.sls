{%- from "mail/map.jinja" import error with context %}

mail-error:
  test.configurable_test_state:
    - name: mail formula stopped before changing anything
    - changes: false
    - result: false
    - allow_test_mode_failure: true
    - comment: {{ error | json }}
