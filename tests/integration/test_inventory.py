"""
Everything the rendered states write, remove, run or install is in the plan's
inventory (``mailstack.plan``, ``inventory``): the one list that names each
path, program, unit, group and package the formula may touch, with the pillar
key that names it and its guard. A state that touches something the list
lacks fails here, in every mode, for ``mail`` and for ``mail.clean``.
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import run_parallel
from tests.integration.test_render_per_os_and_mode import MODES, parse_show_sls

PROFILES = ("debian12", "fedora40")
# Health mail and metrics on, and Postfix (installed on the fake Fedora) the formula's to remove.
EXTRA = {"health": {"enabled": True}, "metrics": {"enabled": True}, "take_over": {"postfix": True}}
CASES = [(profile, mode, sls) for profile in PROFILES for mode in MODES for sls in ("mail", "mail.clean")]


def touched(states):
    """(kind, name) of everything the rendered states act on."""
    out = set()
    for state_id, module, function, args in states:
        out |= set(_touched_by(f"{module}.{function}", args, state_id))
    return out


def _touched_by(key, args, state_id):
    if key in ("mailstack.packages_installed", "mailstack.packages_removed"):
        return [("package", name) for name in args["pkgs"]]
    if key == "mailstack.formula_file":
        file = args["file"]
        paths = [args["name"], *file.get("tables", []), *([file["keep_as"]] if file.get("keep_as") else [])]
        return [("path", path) for path in paths]
    if key == "mailstack.formula_files_absent":
        return [("path", path) for path in args["paths"] + args.get("tables", [])]
    if key == "mailstack.postmapped":
        return [("path", args["name"]), *[("path", path) for path in args.get("stale_tables", [])]]
    if key in ("file.managed", "file.symlink", "mailstack.sendmail_link_absent", "mailstack.owned_log_file"):
        return [("path", args["name"])]
    if key == "mailstack.postfix_running":
        prestart = args.get("prestart") or []
        return [("unit", args["name"]), *[("path", program) for program in prestart[:1]]]
    if key in ("mailstack.postfix_enabled", "mailstack.postfix_dead", "service.running", "service.dead"):
        return [("unit", args["name"])]
    if key in ("mailstack.owned_group", "mailstack.owned_group_absent"):
        return [("group", args["name"])]
    if key == "mailstack.formula_dir_absent":
        return [
            ("path", f"{directory}/{entry}")
            for names in args["names"]
            for directory, keep in names.items()
            for entry in ["", *_listed(keep, "files"), *_listed(keep, "subdirs")]
        ]
    if key in ("mailstack.apply_started", "mailstack.apply_finished"):
        return [("path", f"{args['name']}/apply-in-progress")]
    if key == "cmd.run":
        return [("command", args["name"])]
    if key == "test.show_notification":
        return []
    if key == "test.configurable_test_state":
        raise AssertionError(f"{state_id}: the formula refused: {args.get('comment')}")
    raise AssertionError(f"{state_id}: {key} is not known to this test; say what it touches")


def _listed(keep, name):
    return next((item[name] for item in keep if name in item), [])


def listed(inventory):
    """(kind, name) of everything the inventory allows."""
    kinds = {"package": "package", "group": "group", "unit": "unit", "command": "command"}
    out = set()
    for item in inventory:
        kind = kinds.get(item["kind"], "path")
        out.add((kind, item["path"]))
        if item["kind"] == "directory":
            out.add(("path", item["path"] + "/"))
        if item["kind"] == "link":
            out.add(("path", item["target"]))
    return out


def _with_pillar(mail, *call):
    """A job that makes ``mail`` the minion's pillar, then calls (pillar= merges: it cannot unset a mode)."""

    def job(minion):
        minion.write_pillar(mail)
        return minion.call(*call)

    return job


@pytest.fixture(scope="module")
def rendered(os_minion):
    jobs = {}
    for profile, mode, sls in CASES:
        mail = {**MODES[mode], **EXTRA}
        jobs[(profile, mode, sls)] = (os_minion(profile), _with_pillar(mail, "state.show_sls", sls), {})
        jobs[(profile, mode, "plan")] = (os_minion(profile), _with_pillar(mail, "mailstack.plan"), {})
    yield run_parallel(jobs)
    for profile in PROFILES:
        os_minion(profile).write_pillar({})


@pytest.mark.parametrize(("profile", "mode", "sls"), CASES, ids=["-".join(case) for case in CASES])
def test_every_path_program_unit_group_and_package_a_state_touches_is_in_the_plans_inventory(
    rendered, profile, mode, sls
):
    shown, plan = rendered[(profile, mode, sls)], rendered[(profile, mode, "plan")]
    assert shown.returncode == 0 and plan.returncode == 0, shown.output + plan.output
    inventory = plan.data.get("inventory") or _disabled_inventory(rendered, profile)

    unlisted = touched(parse_show_sls(shown.data)) - listed(inventory)

    assert unlisted == set(), f"{sls} in mode {mode} touches what the plan's inventory does not list"


def _disabled_inventory(rendered, profile):
    """With mail disabled the plan has no inventory; mail.clean removes what any mode may leave."""
    return [
        item
        for mode in MODES
        if mode != "disabled"
        for item in rendered[(profile, mode, "plan")].data["inventory"]
    ]


def test_each_item_of_the_inventory_names_its_pillar_key_and_guard(rendered):
    inventory = rendered[("debian12", "relay_auth", "plan")].data["inventory"]

    assert {item["kind"] for item in inventory} >= {
        "file",
        "table",
        "directory",
        "group",
        "package",
        "program",
    }
    for item in inventory:
        assert item["key"] and item["guard"], item
    main_cf = next(item for item in inventory if item["path"] == "/etc/postfix/main.cf")
    assert (main_cf["wanted"], main_cf["guard"], main_cf["mode"]) == (True, "marker", "0644")
    sasl = next(item for item in inventory if item["path"] == "/etc/postfix/sasl_passwd")
    assert (sasl["mode"], sasl["user"]) == ("0600", "root")
