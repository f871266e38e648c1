"""
What the ``mailstack`` execution module and the ``mailstack`` states both ask
of the running system: whether systemd is PID 1, running a command without a
shell, and reading Postfix's parameters. The caller passes its ``__salt__``,
so that commands run through Salt's ``cmd.run_all`` (and its logging).
"""

import os


def systemd_booted(root="/"):
    """Whether systemd is PID 1 (``/run/systemd/system`` exists under ``root``)."""
    return os.path.isdir(os.path.join(root, "run/systemd/system"))


def run(salt, cmd, stdin=None, timeout=None):
    """Run ``cmd`` (an argument list, no shell); return Salt's ``cmd.run_all`` dict."""
    return salt["cmd.run_all"](
        cmd, python_shell=False, stdin=stdin, timeout=timeout, ignore_retcode=True, output_loglevel="quiet"
    )


def postconf(salt, *parameters):
    """The values of Postfix's ``parameters`` (``postconf -h``, one per line), or ``None``."""
    result = run(salt, ["postconf", "-h", *parameters])
    return result["stdout"].strip() if result["retcode"] == 0 else None


def postconf_values(salt, *parameters):
    """
    The values of Postfix's ``parameters`` from one ``postconf``, by name, or
    ``None`` when Postfix cannot answer. Parsed from ``name = value`` lines,
    since ``postconf -h`` leaves out an unknown parameter and Salt strips a
    last empty value, which would shift the values of a list.
    """
    result = run(salt, ["postconf", *parameters])
    if result["retcode"] != 0:
        return None
    values = {}
    for line in result["stdout"].splitlines():
        name, equals, value = line.partition(" =")
        if equals and name in parameters:
            values[name] = value.strip()
    return values
