"""The formula as template-formula users vendor it: under another directory
name, and with a template of their own in place of the formula's (TOFS)."""

import pathlib

from tests.e2e.conftest import BASE_PILLAR, with_base
from tests.support import mailhost
from tests.support.salt_local import LocalMinion

SITE_MAIN_CF = """\
# Managed by Salt (mail formula): the site's own main.cf template.
{%- for key, value in params.items() %}
{{ key }} = {{ value }}
{%- endfor %}
# the site template ends here
"""


def test_a_pillar_named_template_replaces_the_formulas_own_and_postfix_runs_with_it(tmp_path, clean_machine):
    site_minion = LocalMinion(tmp_path / "site-minion")
    site = site_minion.file_root / "site"
    site.mkdir()
    (site / "main.cf.jinja").write_text(SITE_MAIN_CF)
    assert site_minion.sync().returncode == 0
    site_minion.set_pillar(with_base(tofs={"source_files": {"main.cf.jinja": ["salt://site/main.cf.jinja"]}}))

    applied = site_minion.apply()
    again = site_minion.apply()

    assert applied.returncode == 0, applied.output
    main_cf = pathlib.Path("/etc/postfix/main.cf").read_text()
    assert main_cf.startswith("# Managed by Salt (mail formula): the site's own main.cf template.")
    assert "# the site template ends here" in main_cf and "inet_interfaces = loopback-only" in main_cf
    assert mailhost.postfix_running()
    assert again.returncode == 0 and again.changed == {}, [c["changes"] for c in again.changed.values()]


def test_the_formula_applies_and_cleans_from_a_file_root_under_another_name(tmp_path, clean_machine):
    vendored = LocalMinion(tmp_path / "vendored", formula_name="mailstack")
    assert vendored.sync().returncode == 0
    vendored.set_pillar({**BASE_PILLAR, "container": True})

    applied = vendored.apply("mailstack")
    again = vendored.apply("mailstack")
    cleaned = vendored.apply("mailstack.clean")

    assert applied.returncode == 0, applied.output
    assert {state["__sls__"] for state in applied.data.values()} >= {
        "mailstack.msmtp.config",
        "mailstack.smtp.service",
    }
    assert again.returncode == 0 and again.changed == {}, again.changed
    assert cleaned.returncode == 0, cleaned.output
    assert not mailhost.package_installed("msmtp")


def test_another_state_file_can_require_a_part_of_the_formula_and_exclude_another(tmp_path):
    minion = LocalMinion(tmp_path / "site-minion")
    (minion.file_root / "site.sls").write_text(
        "site-after-the-relay:\n  test.nop:\n    - require:\n      - sls: mail.smtp\n"
    )
    assert minion.sync().returncode == 0
    minion.set_pillar(BASE_PILLAR)

    result = minion.run("state.apply", "mail,site", "test=True", "exclude=mail.metrics")

    assert result.returncode == 0, result.output
    states = {state["__id__"]: state for state in result.data.values()}
    site = states["site-after-the-relay"]
    smtp = [state for state in states.values() if state["__sls__"].startswith("mail.smtp.")]
    assert site["result"] is True and smtp
    assert all(state["__run_num__"] < site["__run_num__"] for state in smtp)
    assert not [state_id for state_id in states if state_id.startswith("mail-metrics-")]
    assert {"mail-msmtp-config-msmtprc", "mail-health-script"} <= set(states)
