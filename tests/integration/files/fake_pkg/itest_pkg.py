"""
A query-only ``pkg`` provider for the integration tests.

The integration tests run on a Debian machine but render and dry-run
(``test=True``) the formula with the grains of Arch, RedHat, Suse and Alpine,
whose real providers (pacman, dnf, zypper, apk) are not installed here. This
provider stands in for them: it answers the queries that ``pkg.installed`` and
``pkg.removed`` make in test mode from the inventory in the minion option
``itest_pkg_inventory`` ({name: version}), and refuses anything that would
change packages, so a run without ``test=True`` fails loudly instead of
pretending.

Loaded only by minions whose configuration sets ``itest_pkg_inventory`` and
lists this directory in ``module_dirs`` (the real providers are disabled there
through ``disable_modules``).
"""

from salt.exceptions import CommandExecutionError

__virtualname__ = "pkg"


def __virtual__():
    if __opts__.get("itest_pkg_inventory") is None:
        return (False, "itest_pkg: only for integration-test minions with itest_pkg_inventory")
    return __virtualname__


def _inventory():
    return {str(name): str(version) for name, version in (__opts__["itest_pkg_inventory"] or {}).items()}


def list_pkgs(versions_as_list=False, **kwargs):
    # Like the real non-Debian providers: no removed or purge-pending packages.
    if kwargs.get("removed") or kwargs.get("purge_desired"):
        return {}
    if versions_as_list:
        return {name: [version] for name, version in _inventory().items()}
    return _inventory()


def version(*names, **kwargs):
    inventory = _inventory()
    if len(names) == 1:
        return inventory.get(names[0], "")
    return {name: inventory.get(name, "") for name in names}


def latest_version(*names, **kwargs):
    if len(names) == 1:
        return "1.0-itest"
    return {name: "1.0-itest" for name in names}


def version_cmp(pkg1, pkg2, **kwargs):
    return (pkg1 > pkg2) - (pkg1 < pkg2)


def _refuse(action):
    raise CommandExecutionError(
        f"itest_pkg cannot {action} packages: it only answers queries (run with test=True)"
    )


def install(name=None, pkgs=None, **kwargs):
    _refuse("install")


def remove(name=None, pkgs=None, **kwargs):
    _refuse("remove")


def purge(name=None, pkgs=None, **kwargs):
    _refuse("purge")


def upgrade(**kwargs):
    _refuse("upgrade")


def refresh_db(**kwargs):
    return True
