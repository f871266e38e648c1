"""Unit tests for ``_utils/mailstack_plan.py``, through the execution module:
the plan (mode, container, Postfix or not, packages, what provides
``sendmail``, where mail goes, where msmtp logs) and which content each mode
writes, with passwords masked unless asked for. How the content reads (the
alias and rewrite tables, extra main.cf parameters, msmtp's line limit) is
``tests/unit/test_mailstack_content.py``'s.
"""

from __future__ import annotations

import pytest

from tests.support.loader import load_utils
from tests.support.mailstack_unit import (
    ALIASES,
    DEBIAN_CA,
    FQDN,
    HEADER,
    MAILU_HOST,
    MAILU_USER,
    NULL_CLIENT,
    POSTFIX_PATHS,
    REDHAT_CA,
    RELAY_HOST,
    SECRET,
    install_and_unwanted,
    mailu,
    main_cf,
    msmtprc,
    names_key,
    relay,
)

# --------------------------------------------------------------------- plan ---


def test_plan_is_disabled_and_empty_when_mail_is_disabled(configure):
    result = configure({"enabled": False}).plan()

    assert result["mode"] == "disabled"
    assert "postfix" not in result and "files" not in result


def test_plan_mailu_direct_uses_msmtp_straight_to_mailu(configure):
    result = configure({"mailu": mailu(), "container": False}).plan()

    assert result["mode"] == "mailu"
    assert result["postfix"] is False
    assert result["sendmail"] == "msmtp"
    assert install_and_unwanted(result) == {"install": ["msmtp", "msmtp-mta"], "unwanted": ["postfix"]}
    assert result["postfix_upstream"] is None
    target = result["msmtp"]
    assert (target["host"], target["port"], target["tls"], target["user"]) == (
        MAILU_HOST,
        465,
        "implicit",
        MAILU_USER,
    )
    assert target["ca_file"] == DEBIAN_CA
    assert main_cf(result) == {}
    assert result["files"]["sasl_passwd"] == ""


def test_plan_mailu_direct_msmtprc_authenticates_with_implicit_tls(configure):
    rc = msmtprc(configure({"mailu": mailu(), "container": False}).plan())

    assert rc["host"] == MAILU_HOST
    assert rc["port"] == "465"
    assert rc["tls"] == "on"
    assert rc["tls_starttls"] == "off"
    assert rc["tls_trust_file"] == DEBIAN_CA
    assert rc["auth"] == "on"
    assert rc["user"] == MAILU_USER
    assert rc["from"] == MAILU_USER
    assert rc["allow_from_override"] == "off"
    assert rc["timeout"] == "10"


def test_plan_mailu_starttls_msmtprc_turns_starttls_on(configure):
    rc = msmtprc(configure({"mailu": mailu(port=587, tls="starttls"), "container": False}).plan())

    assert (rc["port"], rc["tls"], rc["tls_starttls"]) == ("587", "on", "on")


def test_plan_mailu_uses_its_own_ca_file_when_given(configure):
    result = configure({"mailu": mailu(ca_file="/etc/mail/mailu-ca.pem"), "container": False}).plan()

    assert result["msmtp"]["ca_file"] == "/etc/mail/mailu-ca.pem"
    assert msmtprc(result)["tls_trust_file"] == "/etc/mail/mailu-ca.pem"


def test_plan_mailu_with_queue_outside_a_container_queues_in_postfix(configure):
    result = configure({"mailu": mailu(queue=True), "container": False}).plan()

    assert result["postfix"] is True
    assert result["sendmail"] == "postfix"
    assert install_and_unwanted(result) == {
        "install": ["msmtp", "postfix", "libsasl2-modules"],
        "unwanted": ["msmtp-mta"],
    }
    assert result["msmtp"] == {
        "host": "127.0.0.1",
        "port": 25,
        "tls": "none",
        "user": "",
        "password": "",
        "ca_file": "",
        "tls_name": "",
    }
    upstream = result["postfix_upstream"]
    assert (upstream["host"], upstream["port"], upstream["tls"], upstream["user"]) == (
        MAILU_HOST,
        465,
        "implicit",
        MAILU_USER,
    )


def test_plan_mailu_with_queue_main_cf_relays_to_mailu_with_tls_and_sasl(configure):
    cf = main_cf(configure({"mailu": mailu(queue=True), "container": False}).plan())

    assert cf["relayhost"] == f"[{MAILU_HOST}]:465"
    assert cf["smtp_tls_wrappermode"] == "yes"
    assert cf["smtp_tls_security_level"] == "secure"
    assert cf["smtp_tls_CAfile"] == DEBIAN_CA
    assert cf["smtp_sasl_auth_enable"] == "yes"
    assert cf["smtp_sasl_password_maps"] == "hash:/etc/postfix/sasl_passwd"
    assert cf["sender_canonical_maps"] == f"static:{MAILU_USER}"
    assert cf["sender_canonical_classes"] == "envelope_sender"


def test_plan_mailu_with_queue_sasl_passwd_is_masked(configure):
    result = configure({"mailu": mailu(queue=True), "container": False}).plan()

    assert result["files"]["sasl_passwd"] == f"[{MAILU_HOST}]:465 {MAILU_USER}:********\n"


def test_plan_mailu_with_queue_msmtprc_submits_to_loopback_without_auth(configure):
    rc = msmtprc(configure({"mailu": mailu(queue=True), "container": False}).plan())

    assert (rc["host"], rc["port"], rc["tls"], rc["auth"]) == ("127.0.0.1", "25", "off", "off")
    assert "password" not in rc and "tls_trust_file" not in rc
    assert rc["from"] == MAILU_USER
    assert rc["allow_from_override"] == "off"


def test_plan_mailu_with_queue_in_a_container_sends_directly(configure):
    result = configure({"mailu": mailu(queue=True), "container": True}).plan()

    assert result["postfix"] is False
    assert result["sendmail"] == "msmtp"
    assert result["postfix_upstream"] is None
    assert result["msmtp"]["host"] == MAILU_HOST
    assert install_and_unwanted(result) == {"install": ["msmtp", "msmtp-mta"], "unwanted": ["postfix"]}
    assert "container" in result["postfix_reason"]
    assert main_cf(result) == {}


def test_plan_relay_with_relayhost_outside_a_container_uses_postfix(configure):
    result = configure({"relay": relay(), "container": False}).plan()

    assert result["mode"] == "relay"
    assert result["postfix"] is True
    assert result["sendmail"] == "postfix"
    assert result["packages"]["unwanted"] == ["msmtp-mta"]
    assert result["msmtp"]["host"] == "127.0.0.1"
    upstream = result["postfix_upstream"]
    assert (upstream["host"], upstream["port"], upstream["tls"], upstream["user"]) == (
        RELAY_HOST,
        587,
        "starttls",
        "bob",
    )
    cf = main_cf(result)
    assert cf["relayhost"] == f"[{RELAY_HOST}]:587"
    assert cf["smtp_tls_security_level"] == "secure"
    assert cf["smtp_tls_CAfile"] == DEBIAN_CA
    assert "smtp_tls_wrappermode" not in cf
    assert cf["smtp_sasl_password_maps"] == "hash:/etc/postfix/sasl_passwd"
    assert "sender_canonical_maps" not in cf
    assert result["files"]["sasl_passwd"] == f"[{RELAY_HOST}]:587 bob:********\n"


def test_plan_with_a_relayhost_or_mailu_resolves_the_next_hop_like_the_system(configure):
    # /etc/hosts first: with "dns, native" a DNS failure defers mail that
    # /etc/hosts could route.
    relayed = main_cf(configure({"relay": relay(), "container": False}).plan())
    queued = main_cf(configure({"mailu": mailu(queue=True), "container": False}).plan())

    assert relayed["smtp_host_lookup"] == "native"
    assert queued["smtp_host_lookup"] == "native"


def test_plan_without_relayhost_looks_up_mx_in_dns(configure):
    assert main_cf(configure({"container": False}).plan())["smtp_host_lookup"] == "dns, native"


def test_plan_relay_with_implicit_tls_sets_wrappermode(configure):
    cf = main_cf(configure({"relay": relay(port=465, tls="implicit"), "container": False}).plan())

    assert cf["relayhost"] == f"[{RELAY_HOST}]:465"
    assert cf["smtp_tls_wrappermode"] == "yes"


def test_plan_relay_without_credentials_has_no_sasl(configure):
    result = configure({"relay": {"relayhost": RELAY_HOST}, "container": False}).plan()

    cf = main_cf(result)
    assert cf["smtp_tls_security_level"] == "secure"
    assert not any(name.startswith("smtp_sasl") for name in cf)
    assert result["files"]["sasl_passwd"] == ""


def test_plan_relay_with_tls_none_sets_security_level_none(configure):
    cf = main_cf(
        configure({"relay": {"relayhost": RELAY_HOST, "port": 25, "tls": "none"}, "container": False}).plan()
    )

    assert cf["relayhost"] == f"[{RELAY_HOST}]:25"
    assert cf["smtp_tls_security_level"] == "none"
    assert "smtp_tls_CAfile" not in cf and "smtp_tls_wrappermode" not in cf


def test_plan_relay_without_relayhost_delivers_to_mx_with_opportunistic_tls(configure):
    result = configure({"container": False}).plan()

    assert result["postfix"] is True
    assert result["postfix_upstream"] is None
    assert result["summary"]["postfix relays to"] == "the recipient's MX, found through DNS"
    cf = main_cf(result)
    assert cf["relayhost"] == ""
    assert cf["smtp_tls_security_level"] == "may"
    assert "smtp_tls_CAfile" not in cf
    assert not any(name.startswith("smtp_sasl") for name in cf)


def test_plan_relay_in_a_container_with_relayhost_sends_directly_with_msmtp(configure):
    result = configure({"relay": relay(), "container": True}).plan()

    assert result["postfix"] is False
    assert result["sendmail"] == "msmtp"
    assert result["postfix_upstream"] is None
    assert install_and_unwanted(result) == {"install": ["msmtp", "msmtp-mta"], "unwanted": ["postfix"]}
    rc = msmtprc(result)
    assert (rc["host"], rc["port"], rc["tls"], rc["tls_starttls"]) == (RELAY_HOST, "587", "on", "on")
    assert (rc["auth"], rc["user"]) == ("on", "bob")
    assert rc["from"] == f"root@{FQDN}"
    assert "allow_from_override" not in rc
    assert main_cf(result) == {}


def test_plan_relay_in_a_container_without_relayhost_sends_to_loopback_port_25(configure):
    result = configure({"container": True}).plan()

    assert result["postfix"] is False
    assert result["msmtp"]["host"] == "127.0.0.1" and result["msmtp"]["port"] == 25
    rc = msmtprc(result)
    assert (rc["host"], rc["port"], rc["tls"], rc["auth"]) == ("127.0.0.1", "25", "off", "off")
    assert result["summary"]["postfix relays to"] == "(no postfix)"


def test_plan_detects_the_container_when_pillar_says_auto(configure, fake_root):
    (fake_root / ".dockerenv").touch()

    result = configure({"relay": relay()}).plan()

    assert result["container"] is True
    assert result["postfix"] is False


@pytest.mark.parametrize("pillar", POSTFIX_PATHS)
def test_plan_postfix_is_a_loopback_only_null_client(configure, pillar):
    cf = main_cf(configure(pillar).plan())

    for name, value in NULL_CLIENT.items():
        assert cf[name] == value, name
    assert cf["myhostname"] == FQDN


@pytest.mark.parametrize("pillar", POSTFIX_PATHS)
def test_plan_recipient_canonical_only_with_admin(configure, pillar):
    without = configure(pillar).plan()
    assert "recipient_canonical_maps" not in main_cf(without)
    assert without["files"]["recipient_canonical"] == ""

    with_admin = configure({**pillar, "admin": "ops@example.org"}).plan()
    assert main_cf(with_admin)["recipient_canonical_maps"] == "regexp:/etc/postfix/recipient_canonical"
    assert with_admin["summary"]["mail for root goes to"] == "ops@example.org"


def test_plan_recipient_canonical_rewrites_local_names_to_admin(configure):
    table = configure({"admin": "ops@example.org", "container": False}).plan()["files"]["recipient_canonical"]

    assert table == HEADER + (
        r"/^[^@]+@(node1\.example\.org|node1|localhost|localhost\.localdomain)$/ ops@example.org"
        "\n"
        "/^[^@]+$/ ops@example.org\n"
    )


def test_plan_admin_adds_msmtp_aliases(configure):
    result = configure({"admin": "ops@example.org", "mailu": mailu(), "container": False}).plan()

    assert msmtprc(result)["aliases"] == "/etc/aliases.msmtp"
    assert result["files"]["msmtp_aliases"] == HEADER + "default: ops@example.org\n"


def test_plan_without_admin_has_no_msmtp_aliases(configure):
    result = configure({"mailu": mailu(), "container": False}).plan()

    assert "aliases" not in msmtprc(result)
    assert result["files"]["msmtp_aliases"] == ""


def test_plan_on_redhat_uses_a_sendmail_symlink_instead_of_an_mta_package(configure):
    direct = configure({"mailu": mailu(), "container": False}, os_family="RedHat").plan()
    assert install_and_unwanted(direct) == {"install": ["msmtp"], "unwanted": ["postfix"]}
    assert direct["msmtp"]["ca_file"] == REDHAT_CA

    queued = configure({"mailu": mailu(queue=True), "container": False}, os_family="RedHat").plan()
    assert install_and_unwanted(queued) == {
        "install": ["msmtp", "postfix", "cyrus-sasl-plain"],
        "unwanted": [],
    }
    assert main_cf(queued)["smtp_tls_CAfile"] == REDHAT_CA


def test_plan_on_alpine_uses_lmdb_for_the_sasl_map(configure):
    cf = main_cf(configure({"relay": relay(), "container": False}, os_family="Alpine").plan())

    assert cf["smtp_sasl_password_maps"] == "lmdb:/etc/postfix/sasl_passwd"
    assert cf["compatibility_level"] == "3.6"


PASSWORD_PATHS = [
    pytest.param({"mailu": mailu(), "container": False}, id="mailu_direct"),
    pytest.param({"mailu": mailu(queue=True), "container": False}, id="mailu_queue"),
    pytest.param({"relay": relay(), "container": False}, id="relay_postfix"),
    pytest.param({"relay": relay(), "container": True}, id="relay_container"),
]


@pytest.mark.parametrize("pillar", PASSWORD_PATHS)
def test_plan_never_shows_the_password_by_default(configure, pillar):
    mailstack = configure(pillar)

    assert SECRET not in repr(mailstack.plan())
    assert SECRET not in repr(mailstack.plan(include_secrets=False))


@pytest.mark.parametrize("pillar", PASSWORD_PATHS)
def test_plan_shows_the_password_with_include_secrets(configure, pillar):
    assert SECRET in repr(configure(pillar).plan(include_secrets=True))


def test_plan_masking_does_not_damage_the_cached_secrets(configure):
    mailstack = configure({"mailu": mailu(queue=True), "container": False})
    mailstack.plan()

    assert mailstack.settings(include_secrets=True)["mailu"]["password"] == SECRET
    assert mailstack.plan(include_secrets=True)["files"]["sasl_passwd"].endswith(f":{SECRET}\n")


def test_plan_msmtprc_wraps_password_in_quotes_verbatim_as_msmtp_reads_it(configure):
    password = 'pa"ss\\word x'
    rc = msmtprc(
        configure({"mailu": mailu(password=password), "container": False}).plan(include_secrets=True)
    )

    assert rc["password"] == '"pa"ss\\word x"'


def test_plan_masked_msmtprc_password_is_quoted_mask(configure):
    rc = msmtprc(configure({"mailu": mailu(), "container": False}).plan())

    assert rc["password"] == '"********"'


def test_plan_queued_mailu_with_non_address_user_has_no_sender_rewrite(configure):
    result = configure({"mailu": mailu(user="alice", queue=True), "container": False}).plan()

    assert "sender_canonical_maps" not in main_cf(result)
    assert "allow_from_override" not in msmtprc(result)


# ---------------------------------------------------------------- msmtp log ---


def test_msmtp_logs_to_syslog_mail_facility_where_dev_log_exists(configure, fake_root):
    (fake_root / "dev").mkdir()
    (fake_root / "dev" / "log").touch()

    result = configure({"container": False}).plan()

    assert result["files"]["msmtprc"][2] == ("syslog", "LOG_MAIL")
    assert result["files"]["msmtp_log"] == {"logfile": ""}
    assert result["summary"]["msmtp logs to"] == "syslog (facility LOG_MAIL)"


def test_msmtp_does_not_log_without_syslog_or_logfile_and_says_so(configure):
    result = configure({"container": False}).plan()

    keys = [key for key, _ in result["files"]["msmtprc"]]
    assert "syslog" not in keys and "logfile" not in keys
    assert "mail:msmtp:logfile is empty" in result["summary"]["msmtp logs to"]


def test_msmtp_logfile_is_refused_where_every_local_user_may_send(configure):
    message = configure({"msmtp": {"logfile": "/var/log/msmtp.log"}, "container": False}).validation_error()

    assert names_key(message, "mail:msmtp:logfile"), message
    assert "every local user may send" in message and "syslog" in message


def test_msmtp_logfile_is_refused_where_mail_senders_may_send_too(configure, fake_root):
    (fake_root / "var" / "log").mkdir(parents=True)
    pillar = {"msmtp": {"logfile": "/var/log/msmtp.log"}, "mailu": mailu(), "senders": ["root"]}

    message = configure(pillar).validation_error()

    assert "mail:senders may send too" in message


def test_msmtp_logfile_is_roots_alone_where_only_root_sends(configure, fake_root):
    (fake_root / "dev").mkdir()
    (fake_root / "dev" / "log").touch()
    (fake_root / "var" / "log").mkdir(parents=True)

    result = configure({"msmtp": {"logfile": "/var/log/msmtp.log"}, "mailu": mailu()}).plan()

    assert ("logfile", "/var/log/msmtp.log") in result["files"]["msmtprc"]
    assert ("syslog", "LOG_MAIL") not in result["files"]["msmtprc"]
    assert result["files"]["msmtp_log"] == {"logfile": "/var/log/msmtp.log", "mode": "0600"}


# ----------------------------------------------- the files, state by state ---


def _written_paths(plan):
    return {
        file["path"]
        for concern in plan["layout"].values()
        for key, file in concern.items()
        if file["present"] and not key.startswith("dropin-")
    }


def _cleaned_paths(plan):
    clean = plan["clean"]
    return {path for concern in ("smtp", "msmtp", "alerts", "health") for path in clean[concern]["files"]}


def test_plan_layout_tries_a_pillar_template_source_before_the_formulas_own(configure):
    result = configure(
        {"tofs": {"source_files": {"msmtprc.jinja": ["salt://site/mail/msmtprc.jinja"]}}}
    ).plan()

    msmtprc = result["layout"]["msmtp"]["msmtprc"]
    assert (msmtprc["template"], msmtprc["sources"]) == (
        "msmtprc.jinja",
        ["salt://site/mail/msmtprc.jinja", "salt://mail/files/msmtprc.jinja"],
    )
    assert result["layout"]["msmtp"]["aliases"]["present"] is False


def test_plan_has_the_formula_write_its_own_text_only_for_templates_no_pillar_source_replaces(configure):
    pillar = {
        "relay": relay(),
        "container": False,
        "health": {"enabled": True},
        "tofs": {"source_files": {"msmtprc.jinja": ["salt://site/mail/msmtprc.jinja"]}},
    }
    layout = configure(pillar).plan()["layout"]

    own_text = {
        f"{concern}:{key}": file["own_text"]
        for concern, files in layout.items()
        for key, file in files.items()
        if file["present"] and file["template"]
    }
    assert {key for key, own in own_text.items() if own} == {"smtp:main-cf", "smtp:sasl-passwd"}
    assert own_text["msmtp:msmtprc"] is False
    assert own_text["health:script"] is False


def test_plan_layout_makes_msmtprc_private_to_the_senders_group_only_where_it_holds_a_password(configure):
    direct = configure({"mailu": mailu(), "container": False, "senders": ["www-data"]}).plan()
    relayed = configure({"relay": relay(), "container": False}).plan()

    private = direct["layout"]["msmtp"]["msmtprc"]
    assert (private["mode"], private["group"], private["secret"]) == ("0640", "mail-senders", True)
    assert direct["senders_group"] == {
        "name": "mail-senders",
        "present": True,
        "members": ["www-data"],
        "take_over": False,
    }
    public = relayed["layout"]["msmtp"]["msmtprc"]
    assert (public["mode"], public["group"]) == ("0644", "root")
    assert relayed["senders_group"]["present"] is False


def test_plan_without_the_local_relay_only_removes_its_password_and_tables(configure):
    result = configure({"mailu": mailu(), "container": False}).plan()

    assert result["layout"]["smtp"] == {}
    assert result["layout"]["smtp_secrets_absent"] == {
        "secrets-absent": {
            "path": "/etc/postfix/sasl_passwd",
            "key": "lookup:postfix:config_dir",
            "guard": "marker",
            "present": False,
            "tables": ["/etc/postfix/sasl_passwd.db", "/etc/postfix/sasl_passwd.lmdb"],
            "state_dir": "/var/lib/mailstack",
            "needs": {
                "package": False,
                "postmap": False,
                "daemon_reload": False,
                "postfix_watches": False,
                "timer_stopped": False,
            },
        }
    }


def test_plan_with_the_local_relay_writes_its_password_root_only_and_hides_the_diff(configure):
    result = configure({"relay": relay(), "container": False}).plan()

    sasl = result["layout"]["smtp"]["sasl-passwd"]
    assert (sasl["path"], sasl["mode"], sasl["user"], sasl["secret"]) == (
        "/etc/postfix/sasl_passwd",
        "0600",
        "root",
        True,
    )
    assert result["layout"]["smtp_secrets_absent"] == {}
    assert result["layout"]["smtp"]["main-cf"]["context"]["params"] == result["files"]["main_cf"]


def test_plan_packages_by_state_add_up_to_what_is_installed(configure):
    for pillar in (
        {"container": False},
        {"container": True},
        {"mailu": mailu(queue=True), "container": False},
    ):
        packages = configure(pillar).plan()["packages"]
        by_state = packages["by_state"]
        assert by_state["msmtp"] + by_state["postfix"] + by_state["sendmail"] == packages["install"], pillar
        assert not set(packages["install"]) & set(packages["unwanted"]), pillar


def test_plan_cleanup_removes_every_file_the_plan_writes(configure):
    pillar = {
        "relay": relay(),
        "container": False,
        "admin": "ops@example.org",
        "aliases": ALIASES,
        "health": {"enabled": True},
    }
    result = configure(pillar).plan()

    assert _written_paths(result) - _cleaned_paths(result) == set()


def test_plan_cleanup_is_known_when_mail_is_disabled(configure):
    result = configure({"enabled": False}).plan()

    assert "/etc/msmtprc" in result["clean"]["msmtp"]["files"]
    assert "/etc/postfix/main.cf" in result["clean"]["smtp"]["files"]


def test_plan_cleanup_purges_only_packages_the_formula_recorded_installing(configure, fake_root):
    state_dir = fake_root / "var" / "lib" / "mailstack"
    state_dir.mkdir(parents=True)
    (state_dir / "owned.json").write_text('{"files": [], "groups": [], "packages": ["msmtp", "postfix"]}')

    clean = configure({"enabled": False}).plan()["clean"]

    assert clean["smtp"]["packages"] == ["postfix"] and clean["smtp"]["service"] == "postfix"
    assert clean["msmtp"]["packages"] == ["msmtp"]


def test_plan_cleanup_leaves_packages_and_a_running_postfix_the_formula_did_not_install(configure):
    clean = configure({"enabled": False}).plan()["clean"]

    assert clean["smtp"]["packages"] == [] and clean["smtp"]["service"] == ""
    assert clean["msmtp"]["packages"] == []


def test_a_record_from_before_packages_were_recorded_counts_postfix_as_the_formulas_where_main_cf_is(
    configure, fake_root
):
    postfix_dir = fake_root / "etc" / "postfix"
    postfix_dir.mkdir(parents=True)
    (postfix_dir / "main.cf").write_text("# Managed by Salt (mail formula): a send-only Postfix\n")

    result = configure({"container": False, "mailu": mailu()}).plan()

    assert result["packages"]["remove"] == ["postfix"]
    assert result["clean"]["smtp"]["packages"] == ["postfix"]
    assert result["clean"]["msmtp"]["packages"] == []


def test_a_switch_away_from_the_relay_removes_postfix_only_where_the_formula_installed_it(
    configure, fake_root
):
    state_dir = fake_root / "var" / "lib" / "mailstack"
    state_dir.mkdir(parents=True)
    (state_dir / "owned.json").write_text('{"packages": []}')
    postfix_dir = fake_root / "etc" / "postfix"
    postfix_dir.mkdir(parents=True)
    (postfix_dir / "main.cf").write_text("# Managed by Salt (mail formula): a send-only Postfix\n")

    packages = configure({"container": False, "mailu": mailu()}).plan()["packages"]

    assert packages["unwanted"] == ["postfix"] and packages["remove"] == []


def test_postmap_tables_are_named_by_map_type():
    map_file = load_utils()["mailstack_plan.map_file"]

    assert [map_file("/etc/postfix/sasl_passwd", kind) for kind in ("hash", "lmdb", "cdb")] == [
        "/etc/postfix/sasl_passwd.db",
        "/etc/postfix/sasl_passwd.lmdb",
        "/etc/postfix/sasl_passwd.cdb",
    ]
