"""
The states of the ``mail`` formula, generated from the plan: what each state
file holds (``sls``), as the SLS data structure Salt renders it to.

Every state file of the formula is the same three lines: it asks
``mailstack.mapdata`` for its SLS once and writes it out, with the states of
the state files it includes in it (``sls``). The decisions
(which files, which requisites, which timer runs) are the plan's
(``mailstack_plan.build``); this file only turns the plan's entries into
states, with the IDs, arguments and requisites Salt needs. A state file that
is blocked (invalid pillar, or mail disabled) includes the state that says
so instead.

Plain data in, plain data out: no Salt dunders, so the same function serves
``salt-call`` and ``salt-ssh`` alike.
"""


def _state(function, **args):
    """One state: ``{function: [{arg: value}, ...]}`` with the arguments in the order given."""
    return {function: [{name: value} for name, value in args.items()]}


def _requisite(state_id):
    """``{module: id}`` for a requisite list, the module read off the formula's state IDs."""
    return {_MODULE_OF.get(state_id, "mailstack"): state_id}


# The state IDs whose module is not ``mailstack`` (requisites name the module).
_MODULE_OF = {
    "mail-alerts-systemd-reload": "cmd",
    "mail-metrics-systemd-reload": "cmd",
    "mail-metrics-refreshed": "cmd",
    "mail-health-timer-dead": "service",
    "mail-metrics-timer-dead": "service",
    "mail-msmtp-config-msmtprc-private": "file",
}


def _files(concern, files, **requisites):
    """A ``mailstack.formula_file`` state per file, with the requisites its ``needs`` ask for."""
    states = {}
    for key, file in sorted(files.items()):
        args = {"name": file["path"], "file": file}
        for requisite, for_file in requisites.items():
            targets = for_file(key, file)
            if targets:
                args[requisite] = [_requisite(target) for target in targets]
        states[f"mail-{concern}-{key}"] = _state("mailstack.formula_file", **args)
    return states


def _blocked(blocked):
    return {"include": [blocked]}


# ------------------------------------------------------------- the states ---


def _init(settings, plan, tplroot):
    """Outbound system mail: the local relay or its removal, msmtp, alerts,
    health, metrics; a marker for the whole apply, left first and removed last
    (``mailstack.status`` shows one left by an apply that was cut off)."""
    state_dir = settings["lookup"]["state_dir"]
    return {
        "include": [".smtp", ".msmtp", ".alerts", ".health", ".metrics"],
        "mail-apply-started": _state("mailstack.apply_started", name=state_dir, order=1),
        "mail-apply-finished": _state("mailstack.apply_finished", name=state_dir, order="last"),
    }


def _disabled(settings, plan, tplroot):
    """What the formula says where mail:enabled is false."""
    reason = plan.get("mode_reason", "")
    return {
        "mail-disabled": _state("test.show_notification", text=f"mail formula: nothing managed ({reason})")
    }


def _smtp(settings, plan, tplroot):
    """The local Postfix relay: configured, installed and running where the
    plan wants it, else stopped and removed with its secrets."""
    return {"include": [".config", ".package", ".service"]}


def _smtp_config(settings, plan, tplroot):
    """Written before the package is installed, so that Debian's postinst
    keeps main.cf; the password map needs the package's postmap. Without the
    local relay only its password must go."""
    files = {**plan["layout"]["smtp_secrets_absent"], **plan["layout"]["smtp"]}
    states = {
        "include": [".package"],
        **_files(
            "smtp-config",
            files,
            require=lambda key, file: ["mail-smtp-package-installed"] if file["needs"]["package"] else [],
        ),
    }
    for key, file in sorted(files.items()):
        if file["needs"]["postmap"]:
            states[f"mail-smtp-config-{key}-table"] = _state(
                "mailstack.postmapped",
                name=file["path"],
                map_type=settings["lookup"]["postfix"]["map_type"],
                stale_tables=file["stale_tables"],
                require=[_requisite(f"mail-smtp-config-{key}")],
            )
    return states


def _postfix_watches(plan):
    """The state IDs whose changes reload (or restart) Postfix: its files and their tables."""
    watched = []
    for key, file in sorted(plan["layout"]["smtp"].items()):
        if file["needs"]["postfix_watches"]:
            watched.append(f"mail-smtp-config-{key}")
            if file["needs"]["postmap"]:
                watched.append(f"mail-smtp-config-{key}-table")
    return watched


def _smtp_package(settings, plan, tplroot):
    """Postfix installed where the plan has the local relay (after main.cf, in
    place of msmtp's sendmail), else removed once it is stopped."""
    packages = plan["packages"]
    if not plan["postfix"]:
        return {
            "include": [".service"],
            "mail-smtp-package-removed": _removed(packages, require=[_requisite("mail-smtp-service-dead")]),
        }
    installed = [_requisite("mail-smtp-package-installed")]
    states = {"include": [".config"]}
    if packages["remove"]:
        states["mail-smtp-package-conflicts-removed"] = _removed(packages, require_in=installed)
    link = plan["sendmail_link_removed"]
    if link:
        states["mail-smtp-package-sendmail-link-removed"] = _state(
            "mailstack.sendmail_link_absent", name=link["path"], target=link["target"], require_in=installed
        )
    states["mail-smtp-package-installed"] = _state(
        "mailstack.packages_installed",
        pkgs=packages["by_state"]["postfix"],
        state_dir=packages["state_dir"],
        owned=packages["owned"],
        require=[_requisite("mail-smtp-config-main-cf")],
    )
    return states


def _removed(packages, **requisite):
    """The packages the plan removes (only the formula's), before or after ``requisite``."""
    return _state(
        "mailstack.packages_removed", pkgs=packages["remove"], state_dir=packages["state_dir"], **requisite
    )


def _smtp_service(settings, plan, tplroot):
    """Postfix running (reloaded or restarted when its files change) and
    enabled at boot; without the local relay, stopped before it is removed,
    since no init system may stop it for us."""
    postfix = settings["lookup"]["postfix"]
    if not plan["postfix"]:
        return {
            "include": [".package"],
            "mail-smtp-service-not-wanted": _state(
                "test.show_notification", text=f"No local Postfix: {plan['postfix_reason']}"
            ),
            "mail-smtp-service-dead": _state("mailstack.postfix_dead", name=postfix["service"]),
        }
    installed = [_requisite("mail-smtp-package-installed")]
    return {
        "include": [".package"],
        "mail-smtp-service-running": _state(
            "mailstack.postfix_running",
            name=postfix["service"],
            prestart=postfix["prestart"],
            require=installed,
            watch=_postfix_watches(plan),
        ),
        "mail-smtp-service-enabled": _state(
            "mailstack.postfix_enabled", name=postfix["service"], require=installed
        ),
    }


def _msmtp(settings, plan, tplroot):
    """msmtp, the sendmail-compatible client, everywhere; it is sendmail where Postfix is not."""
    return {"include": [".package", ".config", ".sendmail"]}


def _msmtp_package(settings, plan, tplroot):
    packages = plan["packages"]
    return {
        "mail-msmtp-package-installed": _state(
            "mailstack.packages_installed",
            pkgs=packages["by_state"]["msmtp"],
            state_dir=packages["state_dir"],
            owned=packages["owned"],
        )
    }


def _msmtp_config(settings, plan, tplroot):
    """When msmtp itself authenticates, its configuration holds the password:
    only root and the users in mail:senders (through a formula-owned group)
    read it. Salt writes new content with the old file's mode before it
    applies the new one: the file is made private first, so the password is
    never readable by others."""
    files, group = plan["layout"]["msmtp"], plan["senders_group"]
    state_dir = settings["lookup"]["state_dir"]
    msmtprc = files["msmtprc"]
    states = {"include": [".package"]}
    if group["present"]:
        states["mail-msmtp-config-senders-group"] = _state(
            "mailstack.owned_group",
            name=group["name"],
            members=group["members"],
            state_dir=state_dir,
            take_over=group["take_over"],
            require_in=[_requisite("mail-msmtp-config-msmtprc-private")],
        )
        states["mail-msmtp-config-msmtprc-private"] = _state(
            "file.managed",
            name=msmtprc["path"],
            replace=False,
            user=msmtprc["user"],
            group=msmtprc["group"],
            mode=msmtprc["mode"],
            require_in=[_requisite("mail-msmtp-config-msmtprc")],
        )
    else:
        states["mail-msmtp-config-senders-group"] = _state(
            "mailstack.owned_group_absent",
            name=group["name"],
            state_dir=state_dir,
            require=[_requisite("mail-msmtp-config-msmtprc")],
        )
    states.update(
        _files(
            "msmtp-config",
            files,
            require=lambda key, file: ["mail-msmtp-package-installed"] if file["needs"]["package"] else [],
        )
    )
    log = plan["files"]["msmtp_log"]
    if log["logfile"]:
        # Root's alone: a log file is only allowed where only root sends.
        states["mail-msmtp-config-logfile"] = _state(
            "mailstack.owned_log_file", name=log["logfile"], mode=log["mode"], state_dir=state_dir
        )
    return states


def _msmtp_sendmail(settings, plan, tplroot):
    """msmtp as sendmail: only once Postfix, which provides its own, is gone;
    where the plan has Postfix, sendmail is Postfix's and nothing is done here."""
    provider = plan["sendmail_provider"]
    if provider["package"]:
        packages = plan["packages"]
        made = _state(
            "mailstack.packages_installed",
            pkgs=[provider["package"]],
            state_dir=packages["state_dir"],
            owned=packages["owned"],
        )
    elif provider["link"]:
        made = _state("file.symlink", name=provider["link"]["path"], target=provider["link"]["target"])
    else:
        return {"include": [".package"]}
    made[next(iter(made))].append(
        {"require": [_requisite("mail-smtp-package-removed"), _requisite("mail-msmtp-package-installed")]}
    )
    return {"include": [".package", f"{tplroot}.smtp.package"], "mail-msmtp-sendmail": made}


def _alerts(settings, plan, tplroot):
    """Mail mail:admin when a unit of mail:alerts:units fails: an OnFailure=
    drop-in per unit starts mail-alert@<unit>.service."""
    alerts = plan["alerts"]
    if not alerts["systemd"]:
        return {
            "mail-alerts-skipped": _state("test.show_notification", text=f"mail.alerts: {alerts['reason']}")
        }
    return {
        **_files("alerts", plan["layout"]["alerts"], onchanges_in=_reloads("mail-alerts-systemd-reload")),
        "mail-alerts-systemd-reload": _state("cmd.run", name="systemctl daemon-reload"),
    }


def _reloads(reload_id):
    return lambda key, file: [reload_id] if file["needs"]["daemon_reload"] else []


def _timer_stopped(timer_dead_id):
    return lambda key, file: [timer_dead_id] if file["needs"]["timer_stopped"] else []


def _health(settings, plan, tplroot):
    """A daily "<host> is alive" mail to mail:admin: a systemd timer, or a
    cron entry where systemd does not run. Its failure alerts through mail.alerts."""
    health = plan["health"]
    states = {
        "include": [f"{tplroot}.alerts"],
        **_files(
            "health",
            plan["layout"]["health"],
            onchanges_in=_reloads("mail-alerts-systemd-reload"),
            require=_timer_stopped("mail-health-timer-dead"),
        ),
    }
    states.update(_timer_dead("health", health))
    states.update(_timer_running("health", health, ["mail-alerts-systemd-reload", "mail-health-script"]))
    return states


def _timer_running(concern, scheduled, after):
    """The timer running and enabled after ``after``, where the plan wants it running."""
    if scheduled["timer_wanted"] != "running":
        return {}
    return {
        f"mail-{concern}-timer-running": _state(
            "service.running",
            name=scheduled["timer"],
            enable=True,
            require=[_requisite(state_id) for state_id in after],
        )
    }


def _timer_dead(concern, scheduled):
    """The timer stopped and disabled, where the plan wants an installed one gone."""
    if scheduled["timer_wanted"] != "dead":
        return {}
    return {f"mail-{concern}-timer-dead": _state("service.dead", name=scheduled["timer"], enable=False)}


def _metrics(settings, plan, tplroot):
    """The mail metrics for node_exporter's textfile collector: the collector
    and its timer, or a cron entry where systemd does not run; all removed when
    off. The collector runs once when it changes."""
    metrics = plan["metrics"]
    states = {
        **_timer_dead("metrics", metrics),
        **_files(
            "metrics",
            plan["layout"]["metrics"],
            onchanges_in=_reloads("mail-metrics-systemd-reload"),
            require=_timer_stopped("mail-metrics-timer-dead"),
        ),
    }
    if metrics["systemd"]:
        states["mail-metrics-systemd-reload"] = _state("cmd.run", name="systemctl daemon-reload")
    if metrics["enabled"]:
        states["mail-metrics-refreshed"] = _state(
            "cmd.run", name=metrics["script"], onchanges=[_requisite("mail-metrics-script")]
        )
        states.update(
            _timer_running("metrics", metrics, ["mail-metrics-systemd-reload", "mail-metrics-refreshed"])
        )
    return states


# ------------------------------------------------------- the clean states ---


def _clean(settings, plan, tplroot):
    """Undo everything the formula installs: each concern's clean state, then
    the formula's own directories, only when nothing else is in them."""
    return {
        "include": [".smtp.clean", ".msmtp.clean", ".alerts.clean", ".health.clean", ".metrics.clean"],
        "mail-clean-own-directories-absent": _state(
            "mailstack.formula_dir_absent",
            names=[
                {path: [{"files": keep["files"]}, {"subdirs": keep["subdirs"]}]}
                for path, keep in sorted(plan["clean"]["directories"].items())
            ],
            require=[
                _requisite(state_id)
                for state_id in (
                    "mail-smtp-clean-files-absent",
                    "mail-msmtp-clean-files-absent",
                    "mail-msmtp-clean-senders-group-absent",
                    "mail-alerts-clean-files-absent",
                    "mail-health-clean-files-absent",
                    "mail-metrics-clean-files-absent",
                )
            ],
        ),
    }


def _files_absent(concern, clean, state_dir, **more):
    return _state("mailstack.formula_files_absent", paths=clean["files"], **more, state_dir=state_dir)


def _reload_after(concern, clean):
    """``systemctl daemon-reload`` after the clean state of ``concern`` removed unit files."""
    if not clean["systemd"]:
        return {}
    return {
        f"mail-{concern}-clean-systemd-reload": _state(
            "cmd.run",
            name="systemctl daemon-reload",
            onchanges=[_requisite(f"mail-{concern}-clean-files-absent")],
        )
    }


def _smtp_clean(settings, plan, tplroot):
    """Undo the local relay: Postfix stopped and purged if the formula
    installed it, the formula's files in its configuration directory removed."""
    clean, packages = plan["clean"]["smtp"], plan["clean"]["packages"]
    purged = [_requisite("mail-smtp-clean-package-purged")]
    states = {}
    if clean["service"]:
        states["mail-smtp-clean-service-dead"] = _state(
            "mailstack.postfix_dead", name=clean["service"], require_in=purged
        )
    states["mail-smtp-clean-package-purged"] = _state(
        "mailstack.packages_removed",
        pkgs=clean["packages"],
        state_dir=packages["state_dir"],
        purge=clean["purge"],
    )
    states["mail-smtp-clean-files-absent"] = _files_absent(
        "smtp", clean, packages["state_dir"], tables=clean["tables"]
    )
    states["mail-smtp-clean-files-absent"]["mailstack.formula_files_absent"].append({"require": purged})
    return states


def _msmtp_clean(settings, plan, tplroot):
    """Undo msmtp: the packages the formula installed purged, its files (only
    what carries the formula's marker, or what it recorded creating) and the
    senders' group removed, a sendmail symlink the formula made gone."""
    clean, state_dir = plan["clean"]["msmtp"], plan["clean"]["packages"]["state_dir"]
    purged = [_requisite("mail-msmtp-clean-packages-purged")]
    states = {
        "mail-msmtp-clean-packages-purged": _state(
            "mailstack.packages_removed", pkgs=clean["packages"], state_dir=state_dir, purge=True
        ),
        "mail-msmtp-clean-senders-group-absent": _state(
            "mailstack.owned_group_absent", name=clean["group"], state_dir=state_dir, require=purged
        ),
        "mail-msmtp-clean-files-absent": _files_absent("msmtp", clean, state_dir),
    }
    states["mail-msmtp-clean-files-absent"]["mailstack.formula_files_absent"].append({"require": purged})
    link = clean["sendmail_link"]
    if link:
        states["mail-msmtp-clean-sendmail-link-absent"] = _state(
            "mailstack.sendmail_link_absent", name=link["path"], target=link["target"]
        )
    return states


def _alerts_clean(settings, plan, tplroot):
    """Undo the failure alerts: the script, its unit and every OnFailure= drop-in."""
    clean = plan["clean"]["alerts"]
    return {
        "mail-alerts-clean-files-absent": _files_absent(
            "alerts", clean, plan["clean"]["packages"]["state_dir"]
        ),
        **_reload_after("alerts", clean),
    }


def _scheduled_clean(concern, plan):
    """Undo a scheduled script (health, metrics): its timer stopped, its units,
    cron entry and script (and what it wrote) removed."""
    clean = plan["clean"][concern]
    absent = f"mail-{concern}-clean-files-absent"
    states = {}
    if clean["timer"]:
        states[f"mail-{concern}-clean-timer-dead"] = _state(
            "service.dead", name=clean["timer"], enable=False, require_in=[_requisite(absent)]
        )
    states[absent] = _files_absent(concern, clean, plan["clean"]["packages"]["state_dir"])
    states.update(_reload_after(concern, clean))
    return states


def _health_clean(settings, plan, tplroot):
    return _scheduled_clean("health", plan)


def _metrics_clean(settings, plan, tplroot):
    return _scheduled_clean("metrics", plan)


# The state files, by their name below the formula's directory ("" is init.sls).
STATE_FILES = {
    "": _init,
    "disabled": _disabled,
    "clean": _clean,
    "smtp": _smtp,
    "smtp.config": _smtp_config,
    "smtp.package": _smtp_package,
    "smtp.service": _smtp_service,
    "smtp.clean": _smtp_clean,
    "msmtp": _msmtp,
    "msmtp.package": _msmtp_package,
    "msmtp.config": _msmtp_config,
    "msmtp.sendmail": _msmtp_sendmail,
    "msmtp.clean": _msmtp_clean,
    "alerts": _alerts,
    "alerts.clean": _alerts_clean,
    "health": _health,
    "health.clean": _health_clean,
    "metrics": _metrics,
    "metrics.clean": _metrics_clean,
}


def sls(name, tplroot, settings, plan, blocked, rendered=()):
    """
    The SLS data of the state file ``name`` (``mail.smtp.config``), for the
    formula in ``tplroot``: its states from the (masked) ``settings`` and the
    ``plan``, or, where ``blocked`` names a state (``<tplroot>.error`` or
    ``<tplroot>.disabled``), only the include of that state.

    The state files it includes are not left for Salt to fetch and render one
    by one: their states are in it (each with the ``__sls__`` of its own state
    file and the ``__sls_included_from__`` of the files that include it, so
    ``exclude`` and ``sls`` requisites still find them), except those
    a state file in ``rendered`` (Salt's ``rendered_sls``: the state files this
    run rendered before, ``saltenv:name``) already holds. Applying ``mail``
    with ``mail.smtp`` in one run therefore declares every state once.
    """
    below = _below(name, tplroot)
    if below == "error":
        return {}  # error.sls states the error itself (map.jinja), with or without this module
    if blocked and blocked != name:
        return _blocked(blocked)
    if below is None or below not in STATE_FILES:
        raise ValueError(f"{name} is not a state file of the formula in {tplroot}")
    tree = _Tree(tplroot, settings, plan)
    held = set()
    for earlier in rendered or ():
        earlier = earlier.split(":", 1)[-1]
        if earlier != name and _below(earlier, tplroot) in STATE_FILES:
            held |= tree.files_in(earlier)
    return tree.states(name, held)


def _below(name, tplroot):
    """``name`` below the formula's directory (``smtp.config``; ``""`` for
    ``tplroot`` itself), or ``None`` for a state file of another formula."""
    if name == tplroot:
        return ""
    return name[len(tplroot) + 1 :] if name.startswith(f"{tplroot}.") else None


class _Tree:
    """The formula's state files and what each includes, for one plan."""

    def __init__(self, tplroot, settings, plan):
        self.tplroot, self.settings, self.plan = tplroot, settings, plan
        self.data = {}

    def _own(self, name):
        """The states of the state file ``name`` alone, and the state files it includes."""
        if name not in self.data:
            states = dict(STATE_FILES[_below(name, self.tplroot)](self.settings, self.plan, self.tplroot))
            included = [self._absolute(include, name) for include in states.pop("include", [])]
            self.data[name] = (states, included)
        return self.data[name]

    def _absolute(self, include, name):
        """An include as Salt resolves it: ``.config`` relative to the package of ``name``."""
        if not include.startswith("."):
            return include
        rest = include.lstrip(".")
        levels = len(include) - len(rest)
        below = _below(name, self.tplroot)
        is_package = below == "" or any(other.startswith(f"{below}.") for other in STATE_FILES)
        parts = name.split(".") + (["init"] if is_package else [])
        return ".".join(parts[:-levels] + [rest])

    def files_in(self, name):
        """``name`` and every state file it includes, however deep."""
        found, todo = set(), [name]
        while todo:
            current = todo.pop()
            if current not in found:
                found.add(current)
                todo.extend(self._own(current)[1])
        return found

    def states(self, name, held):
        """The states of ``name`` and of what it includes, except the state files
        in ``held``: included ones first, depth first, as Salt orders them, each
        with the ``__sls__`` and ``__sls_included_from__`` Salt would give it
        (``sls`` requisites and ``exclude`` read them)."""
        states, done = {}, set(held)

        def visit(current, includers):
            if current in done:
                return
            done.add(current)
            own, included = self._own(current)
            for include in included:
                visit(include, [current, *includers])
            marks = {"__sls__": current, **({"__sls_included_from__": includers} if includers else {})}
            for state_id, state in own.items():
                states[state_id] = {**state, **marks}

        visit(name, [])
        return states
