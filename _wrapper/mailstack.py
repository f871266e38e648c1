"""
The mail formula over salt-ssh: the functions that must run on the control host.

salt-ssh renders the state files on the control host; a ``salt['mailstack.x']()``
there would be one more SSH call each, running on the target without pillar
(saltstack/salt#61637) and without a file server. This wrapper decides
``mapdata`` and ``plan`` on the control host instead, from the pillar salt-ssh
compiled, the formula's parameter files on the control host's file server and
the target's ``mailstack_host`` grain (gathered in the SSH call salt-ssh makes
before every command anyway): no round trip of its own. It runs the
formula's own execution module (``_modules/mailstack.py``, as synced into the
control host's extension_modules) on a copy of the target's facts.

What it cannot see from there (whether a file in the way is the formula's,
group membership, a corrupt record) is checked on the target by the state
``mailstack.ssh_plan_checked`` that ``mail`` and ``mail.clean`` put first
(``failhard``): it decides the same mapdata there, with the pillar salt-ssh
ships, and stops the apply unless it is the control host's.

``status``, ``send_test`` and ``flush`` need the pillar on the target: they
run there through ``state.single module.run`` of ``mailstack.ssh_call``, which ships it (the one
SSH call of a salt-ssh command, after ``test.opts_pkg``).
"""

import copy
import importlib.util
import json
import os
import shutil
import tempfile
import typing

import salt.fileclient
import salt.version
from salt.exceptions import CommandExecutionError

__virtualname__ = "mailstack"

GRAIN = "mailstack_host"
MINIMUM_SALT = 3007
# What the target-side module reads from the file server, shipped with the states.
FILE_REFS = ("parameters", "files/postfix-parameters.txt")


def __virtual__():
    return __virtualname__


def _extension_modules():
    """The control host's extension_modules (salt-ssh's ``__opts__`` has the target's)."""
    return (__opts__.get("__master_opts__") or __opts__)["extension_modules"]


def _extension(kind, name):
    path = os.path.join(_extension_modules(), kind, f"{name}.py")
    if not os.path.isfile(path):
        raise CommandExecutionError(
            f"{path} is missing: run `salt-run saltutil.sync_all` on the control host (it copies the"
            " formula's _modules, _utils, _grains and _wrapper into the cache salt-ssh uses)"
        )
    spec = importlib.util.spec_from_file_location(f"_mailstack_ssh_{kind}_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Utils(dict):
    """``__utils__`` of the loaded module: ``"module.function"`` from the formula's ``_utils``."""

    def __init__(self, modules):
        super().__init__()
        self.modules = modules

    def __getitem__(self, key):
        module, function = key.split(".", 1)
        return getattr(self.modules[module], function)

    def __contains__(self, key):
        module, _, function = key.partition(".")
        return hasattr(self.modules.get(module), function)


def _value(loaded):
    return loaded.value() if hasattr(loaded, "value") else loaded


def _fileclient():
    client = __context__.get("fileclient")
    if client is None:
        client = __context__["mailstack.fileclient"] = salt.fileclient.FSClient(__opts__)
    return client


def _fake_salt(facts):
    client = _fileclient()
    names = facts.get("postconf_names")

    def list_master(saltenv="base", prefix=""):
        return client.file_list(saltenv, prefix)

    def get_file_str(path, saltenv="base"):
        cached = client.cache_file(path, saltenv)
        if not cached:
            return False
        with open(cached, encoding="utf-8") as handle:
            return handle.read()

    def which(name):
        return name if name == "postconf" and names is not None else None

    def run_all(cmd, **kwargs):  # only `postconf -d`
        return {"retcode": 0, "stdout": "".join(f"{name} = \n" for name in names or ()), "stderr": ""}

    return {
        "cp.list_master": list_master,
        "cp.get_file_str": get_file_str,
        "cmd.which": which,
        "cmd.run_all": run_all,
    }


def _error(message, tplroot):
    blocked = f"{tplroot}.error"
    return {
        "error": message,
        "blocked": blocked,
        "mail": {},
        "plan": {"mode": "invalid"},
        "sls": {"include": [blocked]},
    }


def _formula_utils():
    """The formula's ``_utils`` as synced on the control host, by module name."""
    directory = os.path.join(_extension_modules(), "utils")
    names = sorted(
        name[:-3] for name in os.listdir(directory) if name.startswith("mailstack_") and name.endswith(".py")
    )
    return {name: _extension("utils", name) for name in names}


class _Decided(typing.NamedTuple):
    """What the control host decided once per salt-ssh command: the formula's
    module loaded here, its utils, the settings and the target's host facts
    (``mailstack_facts.gather`` on a copy of the grain), or why not (``error``)."""

    module: object
    utils: object
    settings: dict
    facts: dict
    error: str


def _decided(tplroot):
    cache = __context__.setdefault("mailstack.decided", {})
    if tplroot not in cache:
        cache[tplroot] = _decide(tplroot)
    return cache[tplroot]


def _decide(tplroot):
    """Settings and host facts, decided on the control host from the pillar,
    the parameter files and a copy of the target's ``mailstack_host`` grain."""
    grain = _value(__grains__).get(GRAIN)
    if not isinstance(grain, dict):
        raise CommandExecutionError(
            f"the target has no {GRAIN} grain: run `salt-run saltutil.sync_all` on the control host"
            " (it syncs the formula's _grains, which salt-ssh ships), then try again"
        )
    loaded = _formula_utils()
    loaded["mailstack_settings"].pwd = loaded["mailstack_ssh"].Users(grain.get("users", ()))
    utils = _Utils(loaded)
    module = _extension("modules", "mailstack")
    module.__pillar__ = copy.deepcopy(dict(_value(__pillar__)))
    module.__grains__ = dict(_value(__grains__))
    module.__opts__ = __opts__
    module.__context__ = {}
    module.__salt__ = _fake_salt(grain)
    module.__utils__ = utils
    root = tempfile.mkdtemp(prefix="mailstack-ssh-")
    try:
        loaded["mailstack_ssh"].materialize(grain, root)
        module.FS_ROOT = root
        try:
            module._use_formula_dir(tplroot)
            settings = module._settings()
        except CommandExecutionError as exc:
            return _Decided(module, utils, {}, {}, str(exc))
        # What only the target can tell (a file in the way, groups) is checked
        # there, by mailstack.ssh_plan_checked: ownership_error stays empty here.
        facts = module._facts(settings, module.MASK, check_ownership=False)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    uncovered = loaded["mailstack_ssh"].uncovered_paths(settings["lookup"], grain)
    if uncovered:
        moved = ", ".join(f"mail:lookup:{key} is {path!r}" for key, path, _ in uncovered)
        error = (
            f"Over salt-ssh the mail formula decides on the control host from the {GRAIN} grain, which"
            f" looks at the formula's default paths only, and {moved}: keep the default, or apply with a"
            " minion (salt-call)"
        )
        return _Decided(module, utils, settings, facts, error)
    return _Decided(module, utils, settings, facts, "")


def _unsupported_salt():
    major = salt.version.__saltstack_version__.info[0]
    if major < MINIMUM_SALT:
        return (
            f"The mail formula over salt-ssh needs Salt {MINIMUM_SALT} or newer on the control host (it has"
            f" {salt.version.__version__}): salt-ssh of Salt {major} does not ship the formula's _utils"
            " to the target, where its states and templates need them. Upgrade Salt on the control host"
            " (the targets need no Salt), or install a minion on the target"
        )
    return ""


def mapdata(sls="mail", tplroot=None, rendered=None):
    """
    ``mailstack.mapdata`` for salt-ssh: decided on the control host (see the
    module's docstring); ``mail`` and ``mail.clean`` start with the check of
    that decision on the target (``mailstack.ssh_plan_checked``).

    CLI Example:

    .. code-block:: bash

        salt-ssh pi mailstack.mapdata
    """
    tplroot = tplroot or "mail"
    unsupported = _unsupported_salt()
    if unsupported:
        return _error(unsupported, tplroot)
    try:
        decided = _decided(tplroot)
    except CommandExecutionError as exc:
        return _error(str(exc), tplroot)
    if decided.error:
        return _error(decided.error, tplroot)
    rendered = sorted(rendered or ())
    result = decided.utils["mailstack_facts.mapdata"](
        decided.module._FormulaUtils(),
        decided.settings,
        decided.facts,
        sls,
        tplroot,
        decided.module.MASK,
        rendered,
    )
    if not result["blocked"] and sls in (tplroot, f"{tplroot}.clean"):
        result["sls"]["mail-ssh-plan-checked"] = _plan_checked(decided.utils, result, sls, tplroot, rendered)
    return result


def _plan_checked(utils, result, sls, tplroot, rendered):
    """The state that checks on the target that its plan is the one decided here."""
    args = {
        "digest": utils["mailstack_ssh.digest"](result),
        "sls": sls,
        "tplroot": tplroot,
        "rendered": rendered,
        "files": [f"salt://{tplroot}/{ref}" for ref in FILE_REFS],
        "order": 0,
        "failhard": True,
    }
    return {"mailstack.ssh_plan_checked": [{key: value} for key, value in args.items()]}


def plan(include_secrets=False, tplroot=None):
    """
    ``mailstack.plan`` for salt-ssh, decided on the control host; passwords masked.

    CLI Example:

    .. code-block:: bash

        salt-ssh pi mailstack.plan
    """
    unsupported = _unsupported_salt()
    if unsupported:
        raise CommandExecutionError(unsupported)
    if include_secrets:
        raise CommandExecutionError("over salt-ssh, mailstack.plan shows no secrets")
    decided = _decided(tplroot or "mail")
    if decided.error:
        raise CommandExecutionError(decided.error)
    return decided.utils["mailstack_facts.plan"](
        decided.module._FormulaUtils(), decided.settings, decided.facts
    )


def _on_target(function, tplroot="mail", **kwargs):
    """``function`` of the module, run on the target with the pillar
    (``state.single module.run`` of ``mailstack.ssh_call``)."""
    unsupported = _unsupported_salt()
    if unsupported:
        raise CommandExecutionError(unsupported)
    refs = ",".join(f"salt://{tplroot}/{ref}" for ref in FILE_REFS)
    call = "mailstack.ssh_call"
    ret = __salt__["state.single"](
        "module.run", name=call, function=function, kwargs=kwargs, extra_filerefs=refs
    )
    states = ret
    for key in ("local", "return"):  # salt-ssh's envelope of the state run
        if isinstance(states, dict) and isinstance(states.get(key), dict):
            states = states[key]
    state = next(iter(states.values()), None) if isinstance(states, dict) and len(states) == 1 else None
    if not isinstance(state, dict):
        raise CommandExecutionError(f"mailstack.{function} on the target returned {ret!r}")
    answer = state.get("changes", {}).get("ret")
    if not isinstance(answer, str):
        raise CommandExecutionError(state.get("comment") or f"mailstack.{function} failed on the target")
    answer = json.loads(answer)
    if answer["failed"]:
        __context__["retcode"] = 1
    return answer["ret"]


def status(check_next_hop=True):
    """
    ``mailstack.status``, run on the target with its pillar.

    CLI Example:

    .. code-block:: bash

        salt-ssh pi mailstack.status
    """
    return _on_target("status", check_next_hop=check_next_hop)


def send_test(to=None, wait=30):
    """
    ``mailstack.send_test``, run on the target with its pillar.

    CLI Example:

    .. code-block:: bash

        salt-ssh pi mailstack.send_test
    """
    kwargs = {"wait": wait}
    if to is not None:
        kwargs["to"] = to
    return _on_target("send_test", **kwargs)


def flush(wait=5):
    """
    ``mailstack.flush``, run on the target with its pillar.

    CLI Example:

    .. code-block:: bash

        salt-ssh pi mailstack.flush
    """
    return _on_target("flush", wait=wait)
