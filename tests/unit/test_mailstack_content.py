"""Unit tests for ``_utils/mailstack_content.py``: the content of the files
the formula writes (the alias and rewrite tables, main.cf's parameters with
pillar's extra ones, the SASL map, msmtprc and msmtp's line limit), mostly
through the execution module's plan; the marker every file starts with, the
templates pillar may replace, and the main.cf parameters the formula manages.
"""

from __future__ import annotations

import jinja2
import pytest
import salt.config
import salt.utils.templates
from salt.exceptions import CommandExecutionError

from tests.support.loader import REPO, load_salt_module
from tests.support.mailstack_unit import (
    ALIASES,
    HEADER,
    MAILU_HOST,
    MAILU_USER,
    NULL_CLIENT,
    POSTFIX_PATHS,
    RELAY_HOST,
    SECRET,
    SMARTHOST_ACCOUNT,
    mailu,
    main_cf,
    msmtprc,
    names_key,
    relay,
)

CONTENT = load_salt_module(REPO / "_utils/mailstack_content.py", "content_under_test")


# ------------------------------------------------------------- msmtp limits ---


LONG_LOCAL = "a" * 490


TOO_LONG_FOR_MSMTP = [
    pytest.param({"from": f"{LONG_LOCAL}@example.org"}, "mail:from", id="from"),
    pytest.param({"admin": f"{LONG_LOCAL}@example.org"}, "mail:admin", id="admin"),
    pytest.param({"mailu": mailu(user="u" * 495)}, "mail:mailu:user", id="mailu_user"),
    pytest.param({"mailu": mailu(password="p" * 489)}, "mail:mailu:password", id="mailu_password"),
    pytest.param({"relay": relay(password="p" * 489)}, "mail:relay:password", id="relay_password"),
    pytest.param({"relay": relay(ca_file="/" + "c" * 484)}, "mail:relay:ca_file", id="relay_ca_file"),
    pytest.param({"lookup": {"ca_bundle": "/" + "c" * 484}}, "mail:lookup:ca_bundle", id="ca_bundle"),
]


@pytest.mark.parametrize(("pillar", "key"), TOO_LONG_FOR_MSMTP)
def test_value_making_an_msmtp_line_longer_than_499_characters_is_rejected(configure, pillar, key):
    with pytest.raises(CommandExecutionError) as raised:
        configure(pillar).settings()

    message = str(raised.value)
    assert names_key(message, key), message
    assert "too long for msmtp" in message
    assert "p" * 100 not in message


def test_password_making_an_msmtp_line_of_exactly_499_characters_is_accepted(configure):
    password = "p" * 488  # 'password "' + 488 + '"' = 499
    conf = configure({"mailu": mailu(password=password)})

    line = dict(conf.plan(include_secrets=True)["files"]["msmtprc"])["password"]
    assert len(f"password {line}") == 499
    assert conf.settings(include_secrets=True)["mailu"]["password"] == password


# ------------------------------------------------------------------ aliases ---


def test_plan_postfix_expands_aliases_through_virtual_alias_maps(configure):
    result = configure({"aliases": ALIASES, "container": False}).plan()

    assert main_cf(result)["virtual_alias_maps"] == "regexp:/etc/postfix/virtual_alias"
    domains = r"node1\.example\.org|node1|localhost|localhost\.localdomain"
    assert result["files"]["virtual_alias"] == HEADER + (
        rf"/^(backup\.job(@({domains}))?)$/ ops@example.net" + "\n"
        rf"/^(www-data(@({domains}))?)$/ web@example.org, dev@example.org" + "\n"
    )


def test_plan_postfix_keeps_aliased_names_out_of_the_admin_rewrite(configure):
    result = configure({"admin": "ops@example.org", "aliases": ALIASES, "container": False}).plan()

    lines = result["files"]["recipient_canonical"].removeprefix(HEADER).splitlines()
    domains = r"node1\.example\.org|node1|localhost|localhost\.localdomain"
    assert lines == [
        rf"/^(backup\.job(@({domains}))?)$/ ${{1}}",
        rf"/^(www-data(@({domains}))?)$/ ${{1}}",
        rf"/^[^@]+@({domains})$/ ops@example.org",
        "/^[^@]+$/ ops@example.org",
    ]


def test_plan_without_aliases_has_no_virtual_alias_map(configure):
    result = configure({"admin": "ops@example.org", "container": False}).plan()

    assert "virtual_alias_maps" not in main_cf(result)
    assert result["files"]["virtual_alias"] == ""


def test_plan_msmtp_aliases_file_lists_aliases_then_the_admin_default(configure):
    result = configure({"admin": "ops@example.org", "aliases": ALIASES, "mailu": mailu()}).plan()

    assert msmtprc(result)["aliases"] == "/etc/aliases.msmtp"
    assert result["files"]["msmtp_aliases"] == HEADER + (
        "backup.job: ops@example.net\nwww-data: web@example.org, dev@example.org\ndefault: ops@example.org\n"
    )


def test_plan_msmtp_uses_the_aliases_file_for_aliases_without_admin(configure):
    result = configure({"aliases": {"root": "ops@example.org"}, "mailu": mailu()}).plan()

    assert msmtprc(result)["aliases"] == "/etc/aliases.msmtp"
    assert result["files"]["msmtp_aliases"] == HEADER + "root: ops@example.org\n"


# ------------------------------------------------------------ extra main.cf ---


EXTRA = {
    "message_size_limit": 20480000,
    "maximal_queue_lifetime": "2d",
    "smtp_tls_mandatory_protocols": ["!SSLv2", "!SSLv3", "!TLSv1", "!TLSv1.1"],
    "smtputf8_enable": False,
    "bounce_queue_lifetime": 1.5,
}


@pytest.mark.parametrize("pillar", POSTFIX_PATHS)
def test_plan_main_cf_merges_extra_parameters_as_postfix_values(configure, pillar):
    result = configure({**pillar, "postfix": {"main_cf": EXTRA}}).plan()

    params = main_cf(result)
    assert params["message_size_limit"] == "20480000"
    assert params["maximal_queue_lifetime"] == "2d"
    assert params["smtp_tls_mandatory_protocols"] == "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"
    assert params["smtputf8_enable"] == "no"
    assert params["bounce_queue_lifetime"] == "1.5"
    assert {key: params[key] for key in NULL_CLIENT} == NULL_CLIENT


# ------------------------------------------------------------- relay sender ---


def test_plan_relay_sender_rewrites_envelope_and_from_header_in_postfix(configure):
    result = configure({"relay": relay(sender=SMARTHOST_ACCOUNT), "container": False}).plan()

    params = main_cf(result)
    assert params["sender_canonical_maps"] == f"static:{SMARTHOST_ACCOUNT}"
    assert params["sender_canonical_classes"] == "envelope_sender, header_sender"
    assert result["summary"]["sender"] == SMARTHOST_ACCOUNT
    # msmtp talks to the local Postfix, which rewrites: msmtp leaves the sender alone.
    assert "set_from_header" not in msmtprc(result)


def test_plan_relay_sender_sets_msmtp_from_and_from_header_where_msmtp_talks_to_the_relayhost(configure):
    result = configure({"relay": relay(sender=SMARTHOST_ACCOUNT), "container": True}).plan()

    lines = msmtprc(result)
    assert lines["host"] == RELAY_HOST
    assert lines["from"] == SMARTHOST_ACCOUNT
    assert lines["set_from_header"] == "on"
    assert lines["allow_from_override"] == "off"


def test_plan_relay_sender_is_ignored_in_mailu_mode(configure):
    result = configure(
        {"relay": relay(sender=SMARTHOST_ACCOUNT), "mailu": mailu(queue=True), "container": False}
    ).plan()

    assert main_cf(result)["sender_canonical_maps"] == f"static:{MAILU_USER}"
    assert main_cf(result)["sender_canonical_classes"] == "envelope_sender"


# ---------------------------------------------------- IPv6 and IP next hops ---


def test_ipv6_relayhost_is_bracketed_alike_in_relayhost_and_the_sasl_map(configure):
    result = configure(
        {"relay": relay(relayhost="2001:db8::25", tls_name=RELAY_HOST), "container": False}
    ).plan(include_secrets=True)

    assert main_cf(result)["relayhost"] == "[2001:db8::25]:587"
    assert result["files"]["sasl_passwd"] == f"[2001:db8::25]:587 bob:{SECRET}\n"
    assert main_cf(result)["smtp_tls_secure_cert_match"] == RELAY_HOST


def test_queued_ipv6_mailu_is_bracketed_alike_in_relayhost_and_the_sasl_map(configure):
    result = configure(
        {"mailu": mailu(host="::1", tls_name=MAILU_HOST, queue=True), "container": False}
    ).plan(include_secrets=True)

    assert main_cf(result)["relayhost"] == "[::1]:465"
    assert result["files"]["sasl_passwd"].startswith("[::1]:465 ")
    assert main_cf(result)["smtp_tls_secure_cert_match"] == MAILU_HOST


def test_direct_ipv6_mailu_lets_msmtp_verify_the_address_or_the_tls_name(configure):
    plain = msmtprc(configure({"mailu": mailu(host="::1")}).plan())
    named = msmtprc(configure({"mailu": mailu(host="::1", tls_name=MAILU_HOST)}).plan())

    assert plain["host"] == "::1" and "tls_host_override" not in plain
    assert named["tls_host_override"] == MAILU_HOST


def test_hostname_next_hop_keeps_matching_the_nexthop_name(configure):
    result = configure({"relay": relay(), "container": False}).plan()

    assert main_cf(result)["smtp_tls_secure_cert_match"] == "nexthop, dot-nexthop"


def test_a_value_on_a_line_msmtp_never_gets_is_not_measured(configure):
    # With tls none msmtprc has no tls_trust_file line: a long CA file is never read by msmtp.
    ca_file = "/" + "c" * 484
    pillar = {"relay": relay(tls="none", user="", password="", ca_file=ca_file), "container": True}

    settings = configure(pillar).settings()

    assert settings["relay"]["ca_file"] == ca_file


def test_the_line_length_check_measures_msmtprc_as_its_template_writes_it(configure, fake_root):
    (fake_root / "dev").mkdir()
    (fake_root / "dev" / "log").touch()
    pillar = {"mailu": mailu(tls="starttls", tls_name=MAILU_HOST), "aliases": ALIASES, "admin": "a@x.org"}
    plan = configure(pillar).plan(include_secrets=True)
    template = (REPO / "mail" / "files" / "msmtprc.jinja").read_text()

    text = (
        jinja2.Environment()
        .from_string(template)
        .render(salt={"mailstack.plan": lambda include_secrets: plan}, marker=CONTENT.MARKER)
    )

    written = [line for line in text.splitlines()[1:] if line]
    assert written == [CONTENT._msmtp_line(key, value) for key, value in plan["files"]["msmtprc"]]
    assert "password" in "".join(written) and "tls_host_override " + MAILU_HOST in written


def rendered_as_formula_file_writes_it(template, context, plan):
    """The formula's own ``template`` rendered by Salt's Jinja renderer, ending
    with the newline ``file.managed`` adds to ``contents``."""
    text = (REPO / "mail" / "files" / template).read_text()
    rendered = salt.utils.templates.TEMPLATE_REGISTRY["jinja"](
        text,
        from_str=True,
        to_str=True,
        context=dict(context),
        saltenv="base",
        grains={},
        pillar={},
        salt={"mailstack.plan": lambda include_secrets=False: plan},
        opts=salt.config.DEFAULT_MINION_OPTS.copy(),
    )
    assert rendered["result"], rendered["data"]
    return rendered["data"] if rendered["data"].endswith("\n") else rendered["data"] + "\n"


OWN_TEXT_PILLARS = [
    pytest.param({"relay": relay(), "container": False}, id="relay-with-login"),
    pytest.param({"relay": relay(user="", password=""), "container": False}, id="relay-without-login"),
    pytest.param({"mailu": mailu(), "container": False, "aliases": ALIASES, "admin": "a@x.org"}, id="mailu"),
    pytest.param({"mailu": mailu(queue=True), "container": False}, id="mailu-queued"),
    pytest.param({"relay": relay(), "container": True, "admin": "a@x.org"}, id="container"),
]


@pytest.mark.parametrize("pillar", OWN_TEXT_PILLARS)
def test_the_formulas_own_text_is_what_its_template_renders(configure, fake_root, pillar):
    (fake_root / "dev").mkdir()
    (fake_root / "dev" / "log").touch()
    plan = configure(pillar).plan(include_secrets=True)
    written = [
        file
        for files in plan["layout"].values()
        for file in files.values()
        if file["present"] and file["template"] in CONTENT.written_without_template()
    ]

    assert {file["template"] for file in written} >= {"msmtprc.jinja"}
    for file in written:
        own = CONTENT.own_text(file["template"], file["context"], plan)
        assert own == rendered_as_formula_file_writes_it(file["template"], file["context"], plan), file[
            "path"
        ]
        assert own.startswith(CONTENT.MARKER)


def test_files_says_msmtprc_holds_a_secret_where_it_has_a_password_line(configure):
    direct = configure({"mailu": mailu(), "container": False}).plan()
    queued = configure({"mailu": mailu(queue=True), "container": False}).plan()

    assert direct["files"]["secret_in_msmtprc"] and "password" in msmtprc(direct)
    assert not queued["files"]["secret_in_msmtprc"] and "password" not in msmtprc(queued)


# --------------------------------------------- markers, templates, main.cf ---


def test_the_templates_pillar_may_replace_are_the_ones_plans_use_and_the_formula_ships(configure, fake_root):
    templates = set(CONTENT.templates())
    used = set()
    for systemd in (False, True):
        if systemd:
            (fake_root / "run" / "systemd" / "system").mkdir(parents=True)
        for pillar in (
            {
                "relay": relay(),
                "container": False,
                "alerts": {"units": ["cron.service"]},
                "health": {"enabled": True},
            },
            {"mailu": mailu(), "metrics": {"enabled": True}},
        ):
            for files in configure(pillar).plan()["layout"].values():
                used.update(
                    file["template"] for file in files.values() if file["present"] and file["template"]
                )
    shipped = {path.name for path in (REPO / "mail" / "files").iterdir()} - {"postfix-parameters.txt"}

    assert used == templates == shipped


def test_every_template_writes_the_marker_the_ownership_checks_look_for():
    owned = load_salt_module(REPO / "_utils/mailstack_owned.py", "owned_under_test")

    assert owned.MARKER.decode() in CONTENT.MARKER and CONTENT.HEADER.startswith(CONTENT.MARKER)
    assert HEADER == CONTENT.HEADER
    for template in CONTENT.TEMPLATES:
        head = (REPO / "mail" / "files" / template).read_text().splitlines()[:3]
        assert any(line.startswith("{{ marker }}") for line in head), template
        assert "Managed by Salt" not in "".join(head), template


def test_every_tunable_main_cf_parameter_is_known_to_postfix_3_7():
    shipped = (REPO / "mail/files/postfix-parameters.txt").read_text().split()
    settings = load_salt_module(REPO / "_utils/mailstack_settings.py", "settings_under_test")

    assert set(settings.POSTFIX_TUNABLE) <= set(shipped)
    # The one parameter the formula writes that pillar may tune: its default, "all".
    assert set(settings.POSTFIX_TUNABLE) & CONTENT.managed_postfix_parameters() == {"inet_protocols"}


def test_the_managed_main_cf_parameters_are_what_the_plan_writes(configure):
    managed = CONTENT.managed_postfix_parameters()
    written = configure({"relay": relay(), "admin": "ops@example.org", "container": False}).plan()

    assert set(written["files"]["main_cf"]) <= managed
    assert {
        "inet_interfaces",
        "mynetworks",
        "relayhost",
        "smtp_sasl_password_maps",
        "maillog_file",
    } <= managed
