"""
What the ``mailstack`` execution module and the ``mailstack`` states both ask
of the running system: whether systemd is PID 1, running a command without a
shell, and reading Postfix's parameters. The caller passes its ``__salt__``,
so that commands run through Salt's ``cmd.run_all`` (and its logging).
"""

import glob
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


def _unpacked_by_dpkg(name, root):
    """Whether dpkg holds a file list of package ``name``: it does for every
    installed package (and for a half-installed one), not for others."""
    info = os.path.join(root, "var/lib/dpkg/info")
    return os.path.exists(os.path.join(info, f"{name}.list")) or bool(
        glob.glob(os.path.join(info, f"{name}:*.list"))
    )


def installed_packages(salt, grains, pkgs, root="/"):
    """Which of ``pkgs`` are installed. On Debian one ``dpkg-query`` for just
    those of these names dpkg has a file list of (none: no query; exit status
    1: some are unknown to dpkg, so not installed); elsewhere, or when
    dpkg-query fails, Salt's ``pkg.list_pkgs``, which lists every package of
    the system."""
    if grains.get("os_family") == "Debian":
        pkgs = [name for name in pkgs if _unpacked_by_dpkg(name, root)]
        if not pkgs:
            return set()
        query = ["dpkg-query", "--show", "--showformat=${Package} ${Status}\\n", "--", *pkgs]
        out = run(salt, query)
        if out["retcode"] in (0, 1):
            rows = [line.split() for line in out["stdout"].splitlines()]
            return {row[0] for row in rows if row and row[0] in pkgs and row[-1] == "installed"}
    return set(salt["pkg.list_pkgs"]()) & set(pkgs)
