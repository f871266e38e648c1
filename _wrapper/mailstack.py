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

import salt.fileclient
import salt.version
from salt.exceptions import CommandExecutionError

__virtualname__ = "mailstack"

GRAIN = "mailstack_host"
UTILS = (
    "mailstack_settings",
    "mailstack_plan",
    "mailstack_owned",
    "mailstack_system",
    "mailstack_queue",
    "mailstack_ssh",
)
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
    return {"error": message, "blocked": f"{tplroot}.error", "mail": {}, "plan": {"mode": "invalid"}}


def _decide(function, *args, **kwargs):
    """Run the formula's module ``function`` on the control host, on the target's facts."""
    facts = _value(__grains__).get(GRAIN)
    if not isinstance(facts, dict):
        raise CommandExecutionError(
            f"the target has no {GRAIN} grain: run `salt-run saltutil.sync_all` on the control host"
            " (it syncs the formula's _grains, which salt-ssh ships), then try again"
        )
    utils = {name: _extension("utils", name) for name in UTILS}
    utils["mailstack_settings"].pwd = utils["mailstack_ssh"].Users(facts.get("users", ()))
    module = _extension("modules", "mailstack")
    root = tempfile.mkdtemp(prefix="mailstack-ssh-")
    try:
        utils["mailstack_ssh"].materialize(facts, root)
        module.__pillar__ = copy.deepcopy(dict(_value(__pillar__)))
        module.__grains__ = dict(_value(__grains__))
        module.__opts__ = __opts__
        module.__context__ = {}
        module.__salt__ = _fake_salt(facts)
        module.__utils__ = _Utils(utils)
        module.FS_ROOT = root
        # Decided on the target by mailstack.ssh_plan_checked, which sees its users, groups and files.
        module._ownership_error = lambda: ""
        result = getattr(module, function)(*args, **kwargs)
        uncovered = utils["mailstack_ssh"].uncovered_paths(module._settings()["lookup"], facts)
        return result, uncovered, utils["mailstack_ssh"]
    finally:
        shutil.rmtree(root, ignore_errors=True)


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


def mapdata(sls="mail", tplroot=None):
    """
    ``mailstack.mapdata`` for salt-ssh: decided on the control host (see the
    module's docstring), with ``ssh`` for the check on the target.

    CLI Example:

    .. code-block:: bash

        salt-ssh pi mailstack.mapdata
    """
    tplroot = tplroot or "mail"
    cache = __context__.setdefault("mailstack.mapdata", {})
    key = (sls.rsplit(".", 1)[-1] == "clean", tplroot)
    if key not in cache:
        cache[key] = _mapdata(sls, tplroot)
    return copy.deepcopy(cache[key])


def _mapdata(sls, tplroot):
    unsupported = _unsupported_salt()
    if unsupported:
        return _error(unsupported, tplroot)
    try:
        result, uncovered, ssh = _decide("mapdata", sls, tplroot)
    except CommandExecutionError as exc:
        return _error(str(exc), tplroot)
    if uncovered and not result["error"]:
        moved = ", ".join(f"mail:lookup:{key} is {path!r}" for key, path, _ in uncovered)
        return _error(
            f"Over salt-ssh the mail formula decides on the control host from the {GRAIN} grain, which"
            f" looks at the formula's default paths only, and {moved}: keep the default, or apply with a"
            " minion (salt-call)",
            tplroot,
        )
    result["ssh"] = {
        "digest": ssh.digest(result),
        "sls": sls,
        "tplroot": tplroot,
        "files": [f"salt://{tplroot}/{ref}" for ref in FILE_REFS],
    }
    return result


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
    return _decide("plan", False, tplroot)[0]


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
