"""
The ``mailstack`` execution module of the ``mail`` formula: its public
functions, the settings (parameter files and pillar, read once per run), and
the per-run caches in ``__context__``.

Every state file of the formula makes one call, ``mailstack.mapdata``, and
renders the states it returns (``sls``). Settings come from, in order of
precedence: ``parameters/defaults.yaml`` in the formula's directory
(``mail``, or the name the state files pass as ``tplroot``), ``os_family/``,
``os/`` and ``osfinger/`` files beside it, pillar ``mail:lookup``, then pillar
``mail``. The work lives in ``_utils/``: ``mailstack_settings`` (merging and
validation), ``mailstack_facts`` (the host facts, gathered in one call, and
``mapdata`` as one pure function of settings and facts), ``mailstack_plan``
(the plan: every file, package, unit and clean-up, built once per run),
``mailstack_content`` (the content of the files the plan writes),
``mailstack_states`` (the state files' states, from the plan),
``mailstack_owned`` (what the formula owns, and what it refuses to take
over), ``mailstack_operator`` (``status``, ``send_test``, ``flush``),
``mailstack_queue`` (reading ``postqueue -j`` and Postfix's log) and
``mailstack_system`` (commands and ``postconf``, shared with the states).

Passwords are only returned with ``include_secrets=True`` (``settings`` and
``plan``), which the state writing a file that holds one uses (and the
templates of those files); everything else masks them.
"""

import copy
import hashlib
import json
import logging
import os
import re
import socket
import ssl

import salt.utils.yaml
from salt.exceptions import CommandExecutionError

__virtualname__ = "mailstack"

log = logging.getLogger(__name__)

MASK = "********"
# The formula's directory on the Salt file server, unless the state files say it is
# vendored under another name (template-formula's tplroot).
FORMULA_DIR = "mail"
_FORMULA_DIR_RE = re.compile(r"[A-Za-z0-9_-]+")

# Where the module looks at the running system (unit tests point it at a fake root).
FS_ROOT = "/"
# main.cf parameter names of Postfix 3.7 (in the formula's directory), for
# checking mail:postfix:main_cf where Postfix is not installed yet.
POSTFIX_KNOWN_PARAMETERS = "files/postfix-parameters.txt"

# Where the module runs without the formula's _utils: Salt 3006's salt-ssh
# ships none (3007 and newer do), or a minion that has not synced them.
MISSING_UTILS = (
    "The mail formula's _utils are not loaded here. Over salt-ssh: Salt 3006's salt-ssh does not ship"
    " _utils to the target (3007 and newer do, with the formula's _wrapper): use Salt 3007 or newer on"
    " the control host. On a minion: run `saltutil.sync_all`, then apply mail again."
)


def __virtual__():
    return __virtualname__


# --------------------------------------------------------------- settings ---


def _formula_dir():
    return __context__.get("mailstack.formula_dir", FORMULA_DIR)


def _use_formula_dir(tplroot):
    """Read the parameter files from ``salt://<tplroot>/`` from now on in this run."""
    if not tplroot or tplroot == _formula_dir():
        return
    if not isinstance(tplroot, str) or not _FORMULA_DIR_RE.fullmatch(tplroot):
        raise CommandExecutionError(f"tplroot {tplroot!r} is not a directory name on the Salt file server")
    for cached in ("mailstack.parameter_files", "mailstack.settings", "mailstack.postfix_parameters"):
        __context__.pop(cached, None)
    __context__["mailstack.formula_dir"] = tplroot


def _parameters_dir():
    return f"{_formula_dir()}/parameters"


def _parameter_files():
    if "mailstack.parameter_files" not in __context__:
        __context__["mailstack.parameter_files"] = set(__salt__["cp.list_master"](prefix=_parameters_dir()))
    return __context__["mailstack.parameter_files"]


def _load_parameter_file(name):
    """Return the parsed YAML of ``<formula>/parameters/<name>.yaml``, or ``{}``."""
    path = f"{_parameters_dir()}/{name}.yaml"
    if path not in _parameter_files():
        return {}
    text = __salt__["cp.get_file_str"](f"salt://{path}")
    return salt.utils.yaml.safe_load(text or "") or {}


def _parameter_layers():
    defaults = _load_parameter_file("defaults")
    if not defaults:
        raise CommandExecutionError(
            f"salt://{_parameters_dir()}/defaults.yaml is not on the Salt file server: put the"
            f" formula's directory in file_roots (or gitfs) so that salt://{_formula_dir()} exists"
        )
    layers = [defaults]
    for grain in ("os_family", "os", "osfinger"):
        value = __grains__.get(grain)
        if value:
            layers.append(_load_parameter_file(f"{grain}/{value}"))
    return layers


def _pillar_mail():
    # __pillar__ directly: pillar.get masks values outside templates (Salt 3008).
    value = __pillar__.get("mail", {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CommandExecutionError(
            f"Invalid pillar mail: must be a mapping of settings, got {type(value).__name__}"
        )
    return value


def _merged_raw():
    return __utils__["mailstack_settings.merge"](_parameter_layers(), _pillar_mail())


def _postconf_defaults():
    """Parameter names the installed Postfix knows, or None without Postfix."""
    if not __salt__["cmd.which"]("postconf"):
        return None
    # Called back from inside mailstack_settings.validate, where Salt's loader
    # resolves __utils__ in the utils loader (which has none): __salt__ only.
    result = __salt__["cmd.run_all"](
        ["postconf", "-d"], python_shell=False, ignore_retcode=True, output_loglevel="quiet"
    )
    if result["retcode"] != 0:
        return None
    return {line.split(" =", 1)[0] for line in result["stdout"].splitlines() if " =" in line}


def _postfix_known_parameters():
    """(names, where they come from): ``postconf -d`` if installed, else the shipped list."""
    if "mailstack.postfix_parameters" not in __context__:
        names = _postconf_defaults()
        source = "postconf -d on this minion"
        if names is None:
            listed = f"{_formula_dir()}/{POSTFIX_KNOWN_PARAMETERS}"
            text = __salt__["cp.get_file_str"](f"salt://{listed}") or ""
            names = {line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")}
            source = f"the formula's list from Postfix 3.7 ({listed}; Postfix is not installed)"
        __context__["mailstack.postfix_parameters"] = (names, source)
    return __context__["mailstack.postfix_parameters"]


def _fqdn():
    return __grains__.get("fqdn") or __grains__.get("host") or socket.getfqdn()


def _refuse_overlong_msmtp_lines(settings):
    upstreams = __utils__["mailstack_plan.upstreams"](settings)
    overlong = __utils__["mailstack_content.overlong_msmtp_line"](settings, upstreams)
    if overlong:
        key, length, limit = overlong
        raise CommandExecutionError(
            f"Invalid pillar mail:{key}: is too long for msmtp: it would make a line of {length}"
            f" characters in msmtp's configuration, and msmtp reads at most {limit} (it has no way"
            " to continue a line); shorten it"
        )


def _validated(raw):
    # Called back from inside mailstack_settings.validate, where __utils__ would
    # resolve in the utils loader: the signals are read before.
    signals = _container_signals()
    utils = _resolved(__utils__)
    settings = utils["mailstack_settings.validate"](
        raw,
        _postfix_known_parameters,
        lambda forced: forced if isinstance(forced, bool) else bool(signals),
        utils["mailstack_content.managed_postfix_parameters"](),
        utils["mailstack_content.templates"](),
        utils["mailstack_plan.postfix_upstreams"],
    )
    _refuse_overlong_msmtp_lines(settings)
    return utils["mailstack_settings.with_derived_defaults"](settings, _fqdn())


def _settings():
    """The validated settings, computed once per run (per pillar, for long-lived minions)."""
    pillar = __pillar__.get("mail")
    cached = __context__.get("mailstack.settings")
    if cached is None or cached[0] != pillar:
        __context__.pop("mailstack.facts", None)
        __context__["mailstack.settings"] = (
            copy.deepcopy(pillar),
            _validated(_merged_raw()),
        )
    return __context__["mailstack.settings"][1]


def _host_path(path):
    return os.path.join(FS_ROOT, path.lstrip("/"))


def _state_dir(settings):
    return _host_path(settings["lookup"]["state_dir"])


def settings(include_secrets=False, tplroot=None):
    """
    Return the merged, validated and normalized settings of the mail formula.

    Raises an error naming the pillar key for any invalid value; nothing is
    changed on the minion. Passwords are replaced by ``********`` unless
    ``include_secrets`` is true (the formula's templates use that).

    tplroot
        The formula's directory on the file server, where it is not ``mail``
        (the state files pass their ``tplroot``).

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.settings
    """
    _use_formula_dir(tplroot)
    result = _settings()
    return copy.deepcopy(result) if include_secrets else __utils__["mailstack_settings.masked"](result, MASK)


def validation_error(writes=True, tplroot=None):
    """
    Return why the settings are invalid, as one message naming the pillar
    key, or an empty string when they are valid. The formula's states check
    this first and change nothing when it is not empty.

    writes
        Also refuse a plan that would write, chown or remove what is not the
        formula's (a file it did not write, a path through a symbolic link, a
        group it did not create, a log file others could forge). ``mail.clean``,
        which only removes what is the formula's, passes ``False``.
    tplroot
        As for ``mailstack.settings``.

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.validation_error
    """
    try:
        _use_formula_dir(tplroot)
        settings = _settings()
    except CommandExecutionError as exc:
        return str(exc)
    facts = _facts(settings, MASK)
    if facts["record_problem"]:
        return __utils__["mailstack_facts.record_error"](facts["record_problem"])
    return facts["ownership_error"] if writes else ""


# ------------------------------------------------------------- container ---


def _container_signals():
    return __utils__["mailstack_facts.container_signals"](_resolved(__grains__), FS_ROOT)


def is_container():
    """
    Tell whether this minion is a container, and why.

    Looks at ``/.dockerenv``, ``/run/.containerenv``, ``container=`` in the
    environment of PID 1, the cgroup of PID 1 and the ``virtual`` grain; pillar
    ``mail:container: true|false`` overrides the detection.

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.is_container
    """
    return __utils__["mailstack_facts.decide_container"](_settings(), _container_signals())


# ------------------------------------------------------------------ mode ---


def mode():
    """
    Return how this minion sends system mail, and why: ``mailu``, ``relay``
    or ``disabled``.

    ``auto`` is decided from pillar alone (a Mailu host configured means
    ``mailu``), so the decision never flips because a server was down.

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.mode
    """
    return __utils__["mailstack_facts.decide_mode"](_settings())


# ------------------------------------------------------------------ plan ---

# How many plans one run keeps: the masked one and the one with passwords,
# for the pillar and host of this run (and one earlier).
PLANS_KEPT = 4


def _inputs_key(*inputs):
    """A digest of everything a plan is built from: equal inputs, equal plan."""
    text = json.dumps(inputs, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _resolved(dunder):
    """The object behind one of Salt's dunders as this module sees it: the
    formula's utils call back into what this module hands them, and there a
    dunder would resolve in the utils loader (which has no ``__utils__``)."""
    return dunder.value() if hasattr(dunder, "value") else dunder


class _FormulaUtils:
    """The formula's utils as ``mailstack_facts`` reaches them, with
    ``mailstack_plan.build`` built once per run for the same inputs (the
    pillar and the host facts included): every state file, template and check
    of one apply shares the plan. ``__context__["mailstack.plans"]`` holds the
    plans and counts the builds (``builds``)."""

    def __init__(self):
        self.utils = _resolved(__utils__)
        self.cache = _resolved(__context__).setdefault("mailstack.plans", {"builds": 0, "plans": {}})

    def __getitem__(self, name):
        return self.built_once if name == "mailstack_plan.build" else self.utils[name]

    def built_once(self, utils, settings, decided, container, facts):
        key = _inputs_key(settings, decided, container, facts)
        plans = self.cache["plans"]
        if key not in plans:
            while len(plans) >= PLANS_KEPT:
                plans.pop(next(iter(plans)))
            plans[key] = self.utils["mailstack_plan.build"](utils, settings, decided, container, facts)
            self.cache["builds"] += 1
            log.debug("mailstack: built the plan (%d in this run)", self.cache["builds"])
        return plans[key]


def _run_cache(name):
    """The entries of ``__context__[name]`` that belong to this run. Salt runs
    every state run on a copy of ``__context__``: what a direct call of a
    long-lived minion left in it before is not this run's, and is dropped."""
    context = _resolved(__context__)
    run, entries = context.get(name, (None, None))
    if run != id(context):
        entries = {}
        context[name] = (id(context), entries)
    return entries


def _facts(settings, mask, check_ownership=True):
    """The host facts (``mailstack_facts.gather``) with ``mask``, gathered once
    per run and pillar: every state file and template of an apply decides
    from the same facts. What is in the way of the formula
    (``ownership_error``) is checked where ``check_ownership`` asks for it
    (only what may change the host does)."""
    check = check_ownership and mask is not None
    cache = _run_cache("mailstack.facts")
    facts = cache.get(True) if True in cache else cache.get(check)
    if facts is None:
        facts = cache[check] = __utils__["mailstack_facts.gather"](
            _FormulaUtils(),
            _resolved(__salt__),
            _resolved(__grains__),
            settings,
            FS_ROOT,
            _formula_dir(),
            mask,
            check_ownership=check,
        )
    return facts if facts["mask"] == mask else {**facts, "mask": mask}


def _plan(include_secrets):
    settings = _settings()
    facts = _facts(settings, None if include_secrets else MASK, check_ownership=False)
    return __utils__["mailstack_facts.plan"](_FormulaUtils(), settings, facts)


def alert_dropins():
    """
    The ``OnFailure=`` drop-ins the formula installed: which units mail the
    administrator when they fail.

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.alert_dropins
    """
    unit_dir = _settings()["lookup"]["systemd_unit_dir"]
    return __utils__["mailstack_facts.installed_alert_dropins"](_resolved(__utils__), unit_dir, FS_ROOT)


def owned_files():
    """
    The files the formula created and recorded as its own (the msmtp log
    file), which ``mail.clean`` removes with the files that carry its marker.

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.owned_files
    """
    return __utils__["mailstack_owned.load"](_state_dir(_settings()))["files"]


def plan(include_secrets=False, tplroot=None):
    """
    Show what the formula would do on this minion, without changing anything:
    the mode and why, container or not, whether Postfix runs, which packages
    are installed and removed, what provides ``sendmail`` and where mail goes,
    every file with its owner and mode, and what the clean states remove.
    Passwords are masked.

    tplroot
        As for ``mailstack.settings``.

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.plan
        salt-call --local mailstack.plan --out=yaml
    """
    _use_formula_dir(tplroot)
    return _plan(include_secrets)


def mapdata(sls="mail", tplroot=None, rendered=None):
    """
    What every state file of the formula asks, in one call: ``error`` (why
    nothing may change: invalid pillar, or what is not the formula's in the
    way; empty when all is well), ``blocked`` (the state to include instead of
    any other: ``<tplroot>.error``, or ``<tplroot>.disabled`` when mail is
    disabled, except for the clean states), ``mail`` (the settings), ``plan``
    and ``sls``: the states of the state file ``sls`` and of the state files
    it includes, which it renders as they are. Passwords masked. The work is
    ``mailstack_facts.mapdata``'s, on the settings and
    ``mailstack_facts.gather``'s host facts.

    sls
        The state file asking; the clean states (``*.clean``) only remove what
        is the formula's, so they are not refused for what a write would be.
    tplroot
        As for ``mailstack.settings``.
    rendered
        The state files Salt rendered before this one in the same run (the
        state files pass Jinja's ``rendered_sls``): ``sls`` leaves out the
        states they hold, so that each state is declared once.

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.mapdata mail.smtp.config
    """
    tplroot = tplroot or _formula_dir()
    if "mailstack_states.sls" not in __utils__:
        blocked = f"{tplroot}.error"
        return {
            "error": MISSING_UTILS,
            "blocked": blocked,
            "mail": {},
            "plan": {"mode": "invalid"},
            "sls": {"include": [blocked]},
        }
    try:
        _use_formula_dir(tplroot)
        settings = _settings()
    except CommandExecutionError as exc:
        return __utils__["mailstack_facts.refused"](_resolved(__utils__), str(exc), sls, tplroot)
    facts = _facts(settings, MASK)
    return __utils__["mailstack_facts.mapdata"](
        _FormulaUtils(), settings, facts, sls, tplroot, MASK, sorted(rendered or ())
    )


# ----------------------------------------------------------------- probe ---


def _probe_once(host, port, tls, timeout, ca_file):
    with socket.create_connection((host, port), timeout=timeout) as sock:
        if tls == "implicit":
            context = ssl.create_default_context(cafile=ca_file or None)
            with context.wrap_socket(sock, server_hostname=host) as tls_sock:
                banner = tls_sock.recv(512)
        else:
            sock.settimeout(timeout)
            banner = sock.recv(512)
    text = banner.decode("ascii", "replace").strip()
    if not text.startswith("220"):
        raise OSError(f"unexpected greeting {text[:80]!r}")
    return text


def probe():
    """
    Check, once per run and bounded by ``mail:timeout``, that the server mail
    goes to next answers with an SMTP greeting (after TLS where it is implicit).
    The result is reported, never acted on: the mode does not change.

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.probe
    """
    if "mailstack.probe" in __context__:
        return __context__["mailstack.probe"]
    plan = _plan(include_secrets=False)
    target = None if plan["mode"] == "disabled" else __utils__["mailstack_plan.next_hop"](plan)
    if target is None:
        result = {"reachable": None, "target": None, "comment": "nothing to probe"}
    else:
        where = f"{target['host']}:{target['port']}"
        try:
            banner = _probe_once(
                target["host"], target["port"], target["tls"], _settings()["timeout"], target["ca_file"]
            )
            result = {"reachable": True, "target": where, "comment": banner}
        except (OSError, ssl.SSLError) as exc:
            result = {"reachable": False, "target": where, "comment": f"{where} did not answer: {exc}"}
    __context__["mailstack.probe"] = result
    return result


# -------------------------------------------------------------- operator ---


def _node():
    settings = _settings()
    return __utils__["mailstack_operator.node"](
        _resolved(__utils__), _resolved(__salt__), FS_ROOT, settings["lookup"]["state_dir"]
    )


def status(check_next_hop=True):
    """
    Is mail working on this node, and if not, why? Shows the mode, whether
    Postfix is installed, running and enabled at boot (``None`` where systemd
    does not run), what was interrupted (``interrupted``: a dpkg run left
    half-done, the formula's last apply cut off, a corrupt record), the
    queue (``total``, ``active``, ``deferred``, ``hold``, the age in seconds
    of the oldest message and the most frequent deferral reasons), the last
    health mail, and whether the next hop answers (``mailstack.probe``,
    skipped with ``check_next_hop=False``). Changes nothing; cheap enough to
    call every minute.

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.status
        salt-call mailstack.status --out=yaml
    """
    plan = _plan(include_secrets=False)
    if plan["mode"] == "disabled":
        return {"mode": "disabled", "comment": plan["mode_reason"]}
    hop = probe() if check_next_hop else {"target": None, "reachable": None, "comment": "not checked"}
    return __utils__["mailstack_operator.status"](_node(), _settings(), plan, hop)


def send_test(to=None, wait=30):
    """
    Send one test message through this node's own ``sendmail``, as system
    mail does, and report what became of it: ``result`` is ``delivered``,
    ``queued`` (in Postfix's queue, not yet tried), ``deferred`` (tried,
    waiting to retry; ``detail`` says why) or ``failed``; ``detail`` holds the
    remote server's reply or the reason. Where Postfix queues, the message is
    followed until it leaves the queue or ``wait`` seconds run out. The exit
    code is non-zero unless the message was delivered.

    to
        Recipient address or local name; default ``mail:admin`` (else root).

    wait
        Seconds to follow the message through Postfix's queue (default 30).

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.send_test
        salt-call mailstack.send_test to=ops@example.org wait=60
    """
    plan = _plan(include_secrets=False)
    if plan["mode"] == "disabled":
        raise CommandExecutionError("send_test: mail is disabled on this node (mail:enabled is false)")
    result = __utils__["mailstack_operator.send_test"](_node(), _settings(), plan, _fqdn(), to, wait)
    if result["result"] != "delivered":
        __context__["retcode"] = 1
    return result


def flush(wait=5):
    """
    Ask Postfix to retry deferred mail now (``postqueue -f``) and show the
    queue before and, after up to ``wait`` seconds, after.

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.flush
    """
    if not _plan(include_secrets=False).get("postfix") or not __salt__["cmd.which"]("postqueue"):
        raise CommandExecutionError("flush: this node has no Postfix queue (msmtp sends directly)")
    return __utils__["mailstack_operator.flush"](_node(), wait)


# ---------------------------------------------------------------- salt-ssh ---

SSH_CALLS = ("status", "send_test", "flush")


def ssh_call(function, kwargs=None):
    """
    Under salt-ssh (``_wrapper/mailstack.py`` runs it through ``state.single
    module.run``, which ships the pillar): run ``mailstack.<function>`` here
    (``status``, ``send_test`` or ``flush``) and remove the package with the
    pillar that salt-ssh leaves behind. Returns JSON: ``{"ret": ..., "failed": ...}``.

    CLI Example:

    .. code-block:: bash

        salt-ssh pi mailstack.status
    """
    if function not in SSH_CALLS:
        raise CommandExecutionError(f"mailstack.ssh_call runs {', '.join(SSH_CALLS)}, not {function!r}")
    __utils__["mailstack_ssh.forget_shipped_pillar"](__opts__)
    __context__.pop("retcode", None)
    returned = globals()[function](**(kwargs or {}))
    return json.dumps({"ret": returned, "failed": bool(__context__.get("retcode"))}, default=str)
