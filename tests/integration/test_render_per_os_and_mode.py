"""
Masterless render (``state.show_sls mail``) for every delivery mode on every OS
family, and dry runs (``state.apply mail test=True``): on the Debian family
with the real apt provider (it only queries), elsewhere with the query-only
provider of ``files/fake_pkg``.

The expectations below are written out by hand from the design (DESIGN.md
sections 3 and 4 and the per-OS packages); they are not computed from the
formula's own parameter files, so a wrong parameter file fails here.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.integration.conftest import (
    FAKE_INVENTORY,
    MAILU_PASSWORD,
    OS_PROFILES,
    PASSWORD,
    assert_no_secret,
    dpkg_installed,
    run_parallel,
    uses_fake_pkg,
)

RELAYHOST = "smtp.relay.test"
MAILU_HOST = "mail.mailu.test"
MAILU_USER = "noreply@mailu.test"
ADMIN = "ops@example.test"

MODES = {
    # Local Postfix relay straight to the recipients' MX, no credentials.
    "relay": {"container": False},
    # Local Postfix relay through an authenticated smarthost; mail for root to ADMIN.
    "relay_auth": {
        "container": False,
        "admin": ADMIN,
        "relay": {
            "relayhost": RELAYHOST,
            "port": 587,
            "tls": "starttls",
            "user": "relayuser",
            "password": PASSWORD,
        },
    },
    # msmtp submits straight to Mailu; no Postfix (the fake families have one: the formula may remove it).
    "mailu": {
        "container": False,
        "take_over": {"postfix": True},
        "admin": ADMIN,
        "mailu": {"host": MAILU_HOST, "user": MAILU_USER, "password": MAILU_PASSWORD},
    },
    # Postfix on loopback queues and relays to Mailu.
    "mailu_queue": {
        "container": False,
        "mailu": {"host": MAILU_HOST, "user": MAILU_USER, "password": MAILU_PASSWORD, "queue": True},
    },
    # In a container: no Postfix; msmtp sends to 127.0.0.1:25 (the host's MTA).
    "container_relay": {"container": True, "take_over": {"postfix": True}},
    # In a container with a smarthost: msmtp holds the credentials.
    "container_relay_auth": {
        "container": True,
        "take_over": {"postfix": True},
        "relay": {
            "relayhost": RELAYHOST,
            "port": 465,
            "tls": "implicit",
            "user": "relayuser",
            "password": PASSWORD,
        },
    },
    # The local relay, with the metrics for node_exporter (cron: no systemd here).
    "relay_metrics": {"container": False, "metrics": {"enabled": True, "interval": 300}},
    # Nothing managed, even though credentials are in the pillar.
    "disabled": {
        "enabled": False,
        "relay": {"relayhost": RELAYHOST, "user": "relayuser", "password": PASSWORD},
    },
}

POSTFIX_MODES = {"relay", "relay_auth", "mailu_queue", "relay_metrics"}
MSMTP_MODES = {"mailu", "container_relay", "container_relay_auth"}
# Modes whose msmtprc holds a password (msmtp itself authenticates).
SECRET_MSMTPRC_MODES = {"mailu", "container_relay_auth"}
# Modes with a SASL password map for Postfix.
SASL_MODES = {"relay_auth", "mailu_queue"}
ADMIN_MODES = {"relay_auth", "mailu"}

DEFAULT_CA = "/etc/ssl/certs/ca-certificates.crt"
# Per os_family: msmtp packages, the msmtp "-mta" package ('' = sendmail symlink),
# Postfix packages, postmap table type, compatibility_level, CA bundle, prestart.
FAMILIES = {
    "Debian": {
        "msmtp": ["msmtp"],
        "mta_pkg": "msmtp-mta",
        "postfix": ["postfix", "libsasl2-modules"],
        "map_type": "hash",
        "compat": "3.6",
        "ca": DEFAULT_CA,
        "prestart": ["/usr/lib/postfix/configure-instance.sh", "-"],
    },
    "Arch": {
        "msmtp": ["msmtp"],
        "mta_pkg": "msmtp-mta",
        "postfix": ["postfix"],
        "map_type": "lmdb",
        "compat": "3.6",
        "ca": DEFAULT_CA,
        "prestart": [],
    },
    "RedHat": {
        "msmtp": ["msmtp"],
        "mta_pkg": "",
        "postfix": ["postfix", "cyrus-sasl-plain"],
        "map_type": "hash",
        "compat": "2",
        "ca": "/etc/pki/tls/certs/ca-bundle.crt",
        "prestart": [],
    },
    "Suse": {
        "msmtp": ["msmtp"],
        "mta_pkg": "msmtp-mta",
        "postfix": ["postfix", "cyrus-sasl-plain"],
        "map_type": "hash",
        "compat": "2",
        "ca": "/etc/ssl/ca-bundle.pem",
        "prestart": [],
    },
    "Alpine": {
        "msmtp": ["msmtp"],
        "mta_pkg": "",
        "postfix": ["postfix", "cyrus-sasl-login"],
        "map_type": "lmdb",
        "compat": "3.6",
        "ca": DEFAULT_CA,
        "prestart": [],
    },
}

SENDERS_GROUP = "mail-senders"
SASL_FILES = ["/etc/postfix/sasl_passwd", "/etc/postfix/sasl_passwd.db", "/etc/postfix/sasl_passwd.lmdb"]


def family_of(profile):
    return FAMILIES[OS_PROFILES[profile]["os_family"]]


# ------------------------------------------------------------ show_sls parsing ---


def parse_show_sls(data):
    """[(state id, module, function, {arg: value})] from a show_sls return."""
    assert isinstance(data, dict), data
    out = []
    for state_id, body in data.items():
        for module, items in body.items():
            if module.startswith("__"):
                continue
            function, args = None, {}
            for item in items:
                if isinstance(item, str):
                    function = item
                else:
                    args.update(item)
            out.append((state_id, module, function, args))
    return out


def _names(args):
    if "names" in args:
        return [next(iter(n)) if isinstance(n, dict) else n for n in args["names"]]
    return [args.get("name")]


def _empty_inventory():
    """Nothing installed, removed, managed or run."""
    return {
        "installed": [],
        "removed": [],
        "purged": [],
        "managed": {},
        "absent": [],
        "symlinks": {},
        "postfix_running": {},
        "postfix_enabled": [],
        "postfix_dead": [],
        "groups_present": {},
        "groups_absent": [],
        "commands": [],
        "other": [],
    }


# Salt's package states, and the formula's, which skip them when there is nothing to do.
PACKAGE_STATES = {
    "pkg.installed": "installed",
    "pkg.removed": "removed",
    "pkg.purged": "purged",
    "mailstack.packages_installed": "installed",
    "mailstack.packages_removed": "removed",
}


def inventory(states):
    """What the rendered states manage, independent of state IDs."""
    inv = _empty_inventory()
    for state_id, module, function, args in states:
        key = f"{module}.{function}"
        if key in PACKAGE_STATES:
            pkgs = args.get("pkgs") or [args.get("name")]
            inv[PACKAGE_STATES[key]] += pkgs
        elif key == "file.managed":
            for name in _names(args):
                inv["managed"][name] = {k: args.get(k) for k in ("user", "group", "mode")}
        elif key == "file.absent":
            inv["absent"] += _names(args)
        elif key == "mailstack.formula_file" and args["file"]["present"]:
            inv["managed"][args["name"]] = {k: args["file"][k] for k in ("user", "group", "mode")}
        elif key == "mailstack.formula_file":
            inv["absent"] += [args["name"], *args["file"]["tables"]]
        elif key == "mailstack.formula_files_absent":
            inv["absent"] += args["paths"] + args.get("tables", [])
        elif key == "mailstack.sendmail_link_absent":
            inv["absent"].append(args["name"])
        elif key == "file.symlink":
            inv["symlinks"][args["name"]] = args["target"]
        elif key == "mailstack.postfix_running":
            inv["postfix_running"][args["name"]] = args.get("prestart", [])
        elif key == "mailstack.postfix_enabled":
            inv["postfix_enabled"].append(args["name"])
        elif key == "mailstack.postfix_dead":
            inv["postfix_dead"].append(args["name"])
        elif key in ("group.present", "mailstack.owned_group"):
            inv["groups_present"][args["name"]] = sorted(args.get("members") or [])
        elif key in ("group.absent", "mailstack.owned_group_absent"):
            inv["groups_absent"].append(args["name"])
        elif key == "cmd.run":
            inv["commands"].append(args["name"])
        elif key in (
            "mailstack.postmapped",
            "test.show_notification",
            # The apply's own marker in the state directory (tests/integration/test_inventory.py).
            "mailstack.apply_started",
            "mailstack.apply_finished",
        ):
            pass
        else:
            inv["other"].append((state_id, key))
    return inv


HEALTH_SCRIPT = "/usr/local/lib/mailstack/mail-health"
HEALTH_CRON = "/etc/cron.d/mail-health"
METRICS_SCRIPT = "/usr/local/lib/mailstack/mail-metrics"
METRICS_CRON = "/etc/cron.d/mail-metrics"
METRICS_FILE = "/var/lib/prometheus/node-exporter/mailstack.prom"


def expected_inventory(profile, mode):
    fam = family_of(profile)
    if mode == "disabled":
        return _empty_inventory()
    secret = mode in SECRET_MSMTPRC_MODES
    inv = {
        "purged": [],
        "managed": {
            "/etc/msmtprc": (
                {"user": "root", "group": SENDERS_GROUP, "mode": "0640"}
                if secret
                else {"user": "root", "group": "root", "mode": "0644"}
            ),
        },
        "absent": [],
        "symlinks": {},
        # Only root and the (here empty) mail:senders group read a secret-bearing msmtprc.
        "groups_present": {SENDERS_GROUP: []} if secret else {},
        "groups_absent": [] if secret else [SENDERS_GROUP],
        "commands": [],
        "other": [],
    }
    # No systemd on these minions, health mail off by default: mail.health
    # makes sure neither its script nor its cron entry is there.
    inv["absent"] += [HEALTH_SCRIPT, HEALTH_CRON]
    # Metrics off by default: the collector, its cron entry and its file absent. On: the
    # collector and cron entry written, and the collector run once when it changes.
    if mode == "relay_metrics":
        inv["managed"][METRICS_SCRIPT] = {"user": "root", "group": "root", "mode": "0755"}
        inv["managed"][METRICS_CRON] = {"user": "root", "group": "root", "mode": "0644"}
        inv["commands"] = [METRICS_SCRIPT]
    else:
        inv["absent"] += [METRICS_SCRIPT, METRICS_CRON, METRICS_FILE]
    if mode in ADMIN_MODES:
        inv["managed"]["/etc/aliases.msmtp"] = {"user": "root", "group": "root", "mode": "0644"}
    else:
        inv["absent"].append("/etc/aliases.msmtp")
    mta = [fam["mta_pkg"]] if fam["mta_pkg"] else []
    if mode in POSTFIX_MODES:
        inv["installed"] = fam["msmtp"] + fam["postfix"]
        # msmtp's MTA package goes only where the formula installed it: not on these fresh minions.
        inv["removed"] = []
        inv["managed"]["/etc/postfix/main.cf"] = {"user": "root", "group": "root", "mode": "0644"}
        if mode in SASL_MODES:
            inv["managed"]["/etc/postfix/sasl_passwd"] = {"user": "root", "group": "root", "mode": "0600"}
        else:
            inv["absent"] += SASL_FILES
        if mode in ADMIN_MODES:
            inv["managed"]["/etc/postfix/recipient_canonical"] = {
                "user": "root",
                "group": "root",
                "mode": "0644",
            }
        else:
            inv["absent"].append("/etc/postfix/recipient_canonical")
        inv["absent"].append("/etc/postfix/virtual_alias")
        if not fam["mta_pkg"]:
            # An msmtp sendmail symlink from an earlier mode goes before Postfix comes.
            inv["absent"].append("/usr/sbin/sendmail")
        inv["postfix_running"] = {"postfix": fam["prestart"]}
        # Enabled at boot where systemd runs (the state itself decides).
        inv["postfix_enabled"] = ["postfix"]
        inv["postfix_dead"] = []
    else:
        inv["installed"] = fam["msmtp"] + mta
        inv["removed"] = ["postfix"]
        inv["absent"] += SASL_FILES
        if not fam["mta_pkg"]:
            inv["symlinks"] = {"/usr/sbin/sendmail": "/usr/bin/msmtp"}
        inv["postfix_running"] = {}
        inv["postfix_enabled"] = []
        inv["postfix_dead"] = ["postfix"]
    return inv


def _normalized(inv):
    out = dict(inv)
    for key in ("installed", "removed", "purged", "absent", "postfix_dead", "groups_absent"):
        out[key] = sorted(inv[key])
    return out


def expected_main_cf(profile, mode):
    """The mode-specific part of main.cf, plus the null-client recipe."""
    fam = family_of(profile)
    params = {
        "compatibility_level": fam["compat"],
        "myhostname": OS_PROFILES[profile]["fqdn"],
        "inet_interfaces": "loopback-only",
        "mynetworks": "127.0.0.0/8 [::1]/128",
        "mydestination": "",
        "local_transport": "error:local delivery disabled",
        "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
    }
    sasl = {
        "smtp_sasl_auth_enable": "yes",
        "smtp_sasl_password_maps": f"{fam['map_type']}:/etc/postfix/sasl_passwd",
    }
    if mode in ("relay", "relay_metrics"):
        params.update({"relayhost": "", "smtp_tls_security_level": "may"})
        absent = [
            "smtp_sasl_auth_enable",
            "smtp_sasl_password_maps",
            "recipient_canonical_maps",
            "sender_canonical_maps",
            "smtp_tls_wrappermode",
        ]
    elif mode == "relay_auth":
        params.update(
            {
                "relayhost": f"[{RELAYHOST}]:587",
                "smtp_tls_security_level": "secure",
                "smtp_tls_CAfile": fam["ca"],
                "recipient_canonical_maps": "regexp:/etc/postfix/recipient_canonical",
                **sasl,
            }
        )
        absent = ["smtp_tls_wrappermode", "sender_canonical_maps"]
    else:  # mailu_queue
        params.update(
            {
                "relayhost": f"[{MAILU_HOST}]:465",
                "smtp_tls_security_level": "secure",
                "smtp_tls_wrappermode": "yes",
                "smtp_tls_CAfile": fam["ca"],
                "sender_canonical_maps": f"static:{MAILU_USER}",
                **sasl,
            }
        )
        absent = ["recipient_canonical_maps"]
    return params, absent


# --------------------------------------------------------------- show_sls ---

CASES = [(profile, mode) for profile in OS_PROFILES for mode in MODES]


@pytest.fixture(scope="module")
def rendered(os_minion):
    """show_sls of every (OS profile, mode), run two at a time."""
    jobs = {
        (profile, mode): (os_minion(profile), ("state.show_sls", "mail"), {"pillar": {"mail": pillar}})
        for profile, mode in CASES
        for pillar in [MODES[mode]]
    }
    return run_parallel(jobs)


@pytest.mark.parametrize(("profile", "mode"), CASES, ids=[f"{p}-{m}" for p, m in CASES])
def test_show_sls_manages_exactly_the_packages_files_and_services_of_the_mode(rendered, profile, mode):
    result = rendered[(profile, mode)]
    assert result.returncode == 0, result
    assert_no_secret(result.output)
    assert "Traceback" not in result.output
    states = parse_show_sls(result.data)
    got = inventory(states)
    assert _normalized(got) == _normalized(expected_inventory(profile, mode))

    by_id = {state_id: (module, function, args) for state_id, module, function, args in states}
    if mode == "disabled":
        assert set(by_id) == {"mail-disabled"}
        assert "pillar mail:enabled is false" in by_id["mail-disabled"][2]["text"]
        return
    # The design card's public state IDs, which other formulas require/watch.
    if mode in POSTFIX_MODES:
        for state_id in (
            "mail-smtp-config-main-cf",
            "mail-smtp-package-installed",
            "mail-smtp-service-running",
        ):
            assert state_id in by_id
        assert "mail-msmtp-sendmail" not in by_id
        params = by_id["mail-smtp-config-main-cf"][2]["file"]["context"]["params"]
        wanted, absent = expected_main_cf(profile, mode)
        assert {key: params.get(key) for key in wanted} == wanted
        assert [key for key in absent if key in params] == []
        watched = {
            next(iter(w.values())) if isinstance(w, dict) else w
            for w in by_id["mail-smtp-service-running"][2]["watch"]
        }
        assert "mail-smtp-config-main-cf" in watched
    else:
        assert "mail-smtp-config-main-cf" not in by_id
        assert not any(args.get("name") == "/etc/postfix/main.cf" for _, _, _, args in states)
        assert "mail-msmtp-sendmail" in by_id
        module, function, args = by_id["mail-msmtp-sendmail"]
        if family_of(profile)["mta_pkg"]:
            assert (module, function, args["pkgs"]) == (
                "mailstack",
                "packages_installed",
                [family_of(profile)["mta_pkg"]],
            )
        else:
            assert (module, function, args["name"], args["target"]) == (
                "file",
                "symlink",
                "/usr/sbin/sendmail",
                "/usr/bin/msmtp",
            )
        # msmtp becomes sendmail only after Postfix is removed (they conflict).
        required = {next(iter(r.values())) for r in args["require"]}
        assert "mail-smtp-package-removed" in required
    if mode in SASL_MODES:
        assert ("mail-smtp-config-sasl-passwd-table", "mailstack", "postmapped") in {
            (state_id, module, function) for state_id, module, function, _ in states
        }
        postmap = next(a for s, m, f, a in states if (m, f) == ("mailstack", "postmapped"))
        assert postmap["map_type"] == family_of(profile)["map_type"]


def test_container_is_detected_from_the_virtual_grain_when_not_forced(masterless_minion_factory):
    grains = dict(OS_PROFILES["debian12"], virtual="container", virtual_subtype="Podman")
    minion = masterless_minion_factory("m-deb12-ct", grains=grains)
    minion.write_pillar({"container": "auto"})
    result = minion.call("mailstack.plan")
    assert result.returncode == 0, result
    assert result.data["container"] is True
    assert "the virtual grain says podman" in result.data["container_reason"]
    assert result.data["postfix"] is False
    assert _install_and_remove(result.data) == {"install": ["msmtp", "msmtp-mta"], "unwanted": ["postfix"]}


# ------------------------------------------------ test=True, Debian family ---

# Every mode on Debian; Ubuntu and Raspberry Pi OS (same family files) with one
# Postfix mode and one msmtp-only mode, to keep the suite within its time.
DEBIAN_CASES = [("debian12", mode) for mode in MODES] + [
    (profile, mode) for profile in ("ubuntu2404", "raspbian12") for mode in ("relay_auth", "mailu")
]
ALL_DEBIAN_PKGS = ["msmtp", "msmtp-mta", "postfix", "libsasl2-modules"]


def _postfix_running_here():
    if not shutil.which("postfix"):
        return False
    return subprocess.run(["postfix", "status"], capture_output=True, check=False).returncode == 0


def _machine_state():
    return dpkg_installed(ALL_DEBIAN_PKGS), _postfix_running_here()


def _dry_run_on_stable_machine(mode):
    """test=True, with the packages and Postfix state of the machine around it."""

    def run(minion):
        before = _machine_state()
        result = minion.call("state.apply", "mail", "test=True", pillar={"mail": MODES[mode]})
        return result, before, _machine_state()

    return run


@pytest.fixture(scope="module")
def dry_runs_debian(os_minion):
    jobs = {
        (profile, mode): (os_minion(profile), _dry_run_on_stable_machine(mode), {})
        for profile, mode in DEBIAN_CASES
    }
    return run_parallel(jobs)


def _pkg_prediction(state, pkgs, installed, function):
    """A pkg state in test mode: None + exactly the packages to change, or True + none."""
    if function == "installed":
        to_change = sorted(p for p in pkgs if not installed[p])
    else:
        to_change = sorted(p for p in pkgs if installed[p])
    if to_change:
        assert state["result"] is None, state
        assert sorted(state["changes"]) == to_change, state
    else:
        assert state["result"] is True, state
        assert state["changes"] == {}, state


@pytest.mark.parametrize(("profile", "mode"), DEBIAN_CASES, ids=[f"{p}-{m}" for p, m in DEBIAN_CASES])
def test_dry_run_on_debian_family_predicts_the_changes_of_the_mode(dry_runs_debian, profile, mode):
    result, before, after = dry_runs_debian[(profile, mode)]
    assert before == after, (
        "the machine's mail packages or Postfix changed during this dry run"
        f" (is the e2e suite running at the same time?): {before} -> {after}"
    )
    installed, postfix_running = before
    assert_no_secret(result.output)
    states = result.states()
    failed = {sid: s["comment"] for sid, s in states.items() if s["result"] not in (True, None)}
    assert failed == {}
    assert result.returncode == 0, result
    fam = FAMILIES["Debian"]
    if mode == "disabled":
        assert list(states) == ["mail-disabled"]
        assert states["mail-disabled"]["changes"] == {}
        return
    _pkg_prediction(states["mail-msmtp-package-installed"], fam["msmtp"], installed, "installed")
    msmtprc = states["mail-msmtp-config-msmtprc"]
    # The fqdn grain / hosts of the test pillar are in msmtprc: it always differs from the machine's.
    assert msmtprc["result"] is None and msmtprc["changes"], msmtprc
    fqdn = OS_PROFILES[profile]["fqdn"]
    if mode in POSTFIX_MODES:
        _pkg_prediction(states["mail-smtp-package-installed"], fam["postfix"], installed, "installed")
        # msmtp-mta goes only where the formula installed it: not on this fresh minion.
        assert "mail-smtp-package-conflicts-removed" not in states
        main_cf = states["mail-smtp-config-main-cf"]
        assert main_cf["result"] is None, main_cf
        if "diff" in main_cf["changes"]:
            assert f"myhostname = {fqdn}" in main_cf["changes"]["diff"]
        else:
            assert main_cf["changes"] == {"newfile": "/etc/postfix/main.cf"}
        # main.cf changes, so Postfix is (re)started or reloaded.
        service = states["mail-smtp-service-running"]
        assert service["result"] is None, service
        action = service["changes"].get("postfix", "")
        assert action.startswith("started" if not postfix_running else ("reloaded", "restarted")), service
        assert not {"mail-smtp-package-removed", "mail-smtp-service-dead"} & set(states)
        assert "mail-msmtp-sendmail" not in states
    else:
        _pkg_prediction(states["mail-smtp-package-removed"], ["postfix"], installed, "removed")
        _pkg_prediction(states["mail-msmtp-sendmail"], ["msmtp-mta"], installed, "installed")
        dead = states["mail-smtp-service-dead"]
        if postfix_running:
            assert (dead["result"], dead["changes"]) == (None, {"postfix": "stopped"}), dead
        else:
            assert (dead["result"], dead["changes"]) == (True, {}), dead
        assert "mail-smtp-config-main-cf" not in states
        assert "mail-smtp-service-running" not in states


# --------------------------------------- test=True, other OS families (fake pkg) ---

FAKE_PROFILES = [p for p in OS_PROFILES if uses_fake_pkg(p)]
FAKE_CASES = [(profile, mode) for profile in FAKE_PROFILES for mode in ("relay_auth", "mailu")]


@pytest.fixture(scope="module")
def dry_runs_fake_pkg(os_minion):
    jobs = {
        (profile, mode): (
            os_minion(profile),
            ("state.apply", "mail", "test=True"),
            {"pillar": {"mail": MODES[mode]}},
        )
        for profile, mode in FAKE_CASES
    }
    return run_parallel(jobs)


@pytest.mark.parametrize(("profile", "mode"), FAKE_CASES, ids=[f"{p}-{m}" for p, m in FAKE_CASES])
def test_dry_run_on_other_families_resolves_requisites_and_predicts_package_changes(
    dry_runs_fake_pkg, profile, mode
):
    result = dry_runs_fake_pkg[(profile, mode)]
    assert_no_secret(result.output)
    states = result.states()
    failed = {sid: s["comment"] for sid, s in states.items() if s["result"] not in (True, None)}
    assert failed == {}
    assert result.returncode == 0, result
    fam = family_of(profile)
    installed = {name: name in FAKE_INVENTORY for name in fam["msmtp"] + fam["postfix"] + ["msmtp-mta"]}
    _pkg_prediction(states["mail-msmtp-package-installed"], fam["msmtp"], installed, "installed")
    if mode == "relay_auth":
        _pkg_prediction(states["mail-smtp-package-installed"], fam["postfix"], installed, "installed")
        if fam["mta_pkg"]:
            # Not installed by the formula on this fresh minion: nothing of msmtp's to remove.
            assert "mail-smtp-package-conflicts-removed" not in states
        else:
            assert "mail-smtp-package-sendmail-link-removed" in states
    else:
        _pkg_prediction(states["mail-smtp-package-removed"], ["postfix"], installed, "removed")
        sendmail = states["mail-msmtp-sendmail"]
        if fam["mta_pkg"]:
            _pkg_prediction(sendmail, [fam["mta_pkg"]], installed, "installed")
        else:
            assert sendmail["name"] == "/usr/sbin/sendmail"


def _install_and_remove(plan):
    """What the plan installs, and has no use for (removed where the formula installed it)."""
    return {key: plan["packages"][key] for key in ("install", "unwanted")}
