"""
Integration fixtures built on pytest-salt-factories.

Nothing here changes the machine: the tests only render (``state.show_sls``),
dry-run (``state.apply ... test=True``) and query (``mailstack.*``).

* Masterless minions (``file_client: local``, run through ``salt-call
  --local``) are configured once per session and OS profile; they never run as
  daemons. Their grains come from the minion config ``grains:`` key, their
  pillar from ``pillar=`` on the command line or from files in their own
  pillar tree.
* Daemon root dirs live under a short ``/tmp/sfXXXX`` directory: the unix
  socket paths of a master must stay below the 108-byte limit.
* Non-Debian profiles cannot use their real package providers here (pacman,
  dnf, zypper, apk are not installed). They load the query-only provider in
  ``files/fake_pkg/itest_pkg.py`` instead, with a fixed package inventory.
"""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest
import salt.utils.yaml

from tests.support.loader import formula_root

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
# The file root of every minion here: the formula alone (see formula_root).
FORMULA_ROOT = formula_root(pathlib.Path(tempfile.mkdtemp(prefix="mail-formula-root-")))
FAKE_PKG_DIR = pathlib.Path(__file__).resolve().parent / "files" / "fake_pkg"

# Every test pillar uses these secrets; no Salt output may ever contain them.
PASSWORD = "itest-Pw-5eed-d0nt-l3ak"
MAILU_PASSWORD = "itest-MailuTok-9c41-n0-echo"
SECRETS = (PASSWORD, MAILU_PASSWORD)

# The real package providers, disabled where the fake one stands in.
REAL_PKG_PROVIDERS = ["aptpkg", "yumpkg", "pacmanpkg", "zypperpkg", "apkpkg", "ebuildpkg", "pkgng"]

# A package inventory for the fake provider: a host that has Postfix (as
# RedHat and Suse images usually do) but neither msmtp nor its -mta package.
FAKE_INVENTORY = {"postfix": "3.9.0-1", "bash": "5.2.26-1"}


def _grains(os_name, family, osfinger, major, fqdn, virtual="kvm", virtual_subtype="", arch="amd64"):
    return {
        "os": os_name,
        "os_family": family,
        "osfinger": osfinger,
        "osmajorrelease": major,
        "osarch": arch,
        "cpuarch": {"amd64": "x86_64", "arm64": "aarch64", "armhf": "armv7l"}[arch],
        "fqdn": fqdn,
        "virtual": virtual,
        # Set too: the real one of this machine ("Docker") would leak through.
        "virtual_subtype": virtual_subtype,
    }


# name -> grains. `virtual: kvm` so that only pillar decides "container" on a
# machine without container markers; this machine has /.dockerenv, so the
# non-container modes force `mail:container: false` as operators do.
OS_PROFILES = {
    "debian12": _grains("Debian", "Debian", "Debian-12", 12, "deb12.itest.example"),
    "ubuntu2404": _grains("Ubuntu", "Debian", "Ubuntu-24.04", 24, "ubu2404.itest.example"),
    # Raspberry Pi OS: the 32-bit image says Raspbian, the 64-bit one Debian.
    "raspbian12": _grains("Raspbian", "Debian", "Raspbian-12", 12, "rpi.itest.example", arch="armhf"),
    "rpios64": _grains("Debian", "Debian", "Debian-12", 12, "rpi64.itest.example", arch="arm64"),
    "arch": _grains("Arch", "Arch", "Arch-rolling", 2024, "arch.itest.example"),
    "fedora40": _grains("Fedora", "RedHat", "Fedora Linux-40", 40, "fedora.itest.example"),
    "rocky9": _grains("Rocky", "RedHat", "Rocky Linux-9", 9, "rocky.itest.example"),
    "leap15": _grains("Leap", "Suse", "Leap-15", 15, "leap.itest.example"),
    "alpine320": _grains("Alpine", "Alpine", "Alpine-3", 3, "alpine.itest.example"),
}


# The repository root is the file root; its virtualenv (27,000 files) and git
# data are not formula files. Without this the fileserver walks them on every
# file listing: ~0.7 s per salt-call, and ~35 s for a master's first sync_all.
FILE_IGNORE_GLOB = ["*/__pycache__", "*.pyc"]


def uses_fake_pkg(profile: str) -> bool:
    return OS_PROFILES[profile]["os_family"] != "Debian"


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, "a test password appears in Salt's output"


class CallResult:
    """One salt-call / salt run: exit code, raw output and parsed return."""

    def __init__(self, process_result):
        self.returncode = process_result.returncode
        self.stdout = process_result.stdout or ""
        self.stderr = process_result.stderr or ""
        self.data = process_result.data

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def states(self) -> dict:
        """State results of a state.apply, keyed by state ID."""
        assert isinstance(self.data, dict), f"no state return:\n{self.output[-4000:]}"
        return {value["__id__"]: value for value in self.data.values()}

    def __repr__(self):
        return f"CallResult(returncode={self.returncode}, output={self.output[-4000:]!r})"


class Masterless:
    """A masterless minion config run through ``salt-call --local``."""

    def __init__(self, factory):
        self.factory = factory
        self.pillar_dir = pathlib.Path(factory.config["pillar_roots"]["base"][0])

    @property
    def id(self):
        return self.factory.id

    def call(self, *args, **kwargs) -> CallResult:
        cli = self.factory.salt_call_cli(timeout=180)
        return CallResult(cli.run("--local", *args, env=offline_apt_env(), **kwargs))

    def sync(self) -> CallResult:
        result = self.call("saltutil.sync_all")
        assert result.returncode == 0, result
        assert_no_secret(result.output)
        extmods = pathlib.Path(self.factory.config["extension_modules"])
        assert (extmods / "modules" / "mailstack.py").is_file(), result
        assert (extmods / "states" / "mailstack.py").is_file(), result
        return result

    def write_pillar(self, mail) -> None:
        """Make ``mail`` the pillar of this minion (pillar files, no override)."""
        (self.pillar_dir / "top.sls").write_text("base:\n  '*':\n    - mail\n")
        (self.pillar_dir / "mail.sls").write_text(salt.utils.yaml.safe_dump({"mail": mail}))


_APT_SHIM_DIR: list[pathlib.Path] = []  # set by salt_factories_default_root_dir

# Put first in PATH for every salt-call and minion daemon of these tests.
APT_GET_SHIM = """#!/bin/sh
# Integration tests: keep apt off the network and this machine unchanged.
# In test mode, pkg.installed asks pkg.latest_version about packages that are
# not installed, and Salt's apt provider then runs `apt-get -q update`
# (refresh defaults to true there). That is a no-op here; simulations pass
# through to the real apt-get; anything else is refused.
for arg in "$@"; do
    case "$arg" in
        update) echo "Reading package lists... (apt-get update skipped by the integration tests)"; exit 0 ;;
        -s|--simulate|--just-print|--dry-run|--no-act|--recon) exec /usr/bin/apt-get "$@" ;;
    esac
done
echo "E: apt-get $* refused: the integration tests must not change this machine" >&2
exit 100
"""


def offline_apt_env() -> dict:
    """PATH with the apt-get shim first (see APT_GET_SHIM)."""
    return {"PATH": f"{_APT_SHIM_DIR[0]}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"}


def masterless_config(profile: str | None, grains: dict | None = None) -> dict:
    grains = dict(grains or OS_PROFILES[profile])
    overrides = {
        "file_client": "local",
        "file_roots": {"base": [str(FORMULA_ROOT)]},
        "file_ignore_glob": FILE_IGNORE_GLOB,
        "grains": grains,
        # Grains and pillar come from the config: no grain cache across calls.
        "grains_cache": False,
    }
    if profile and uses_fake_pkg(profile):
        overrides.update(
            {
                "module_dirs": [str(FAKE_PKG_DIR)],
                "disable_modules": REAL_PKG_PROVIDERS,
                "itest_pkg_inventory": FAKE_INVENTORY,
            }
        )
    return overrides


@pytest.fixture(scope="session")
def salt_factories_default_root_dir():
    """Short root for all daemons (unix socket paths must stay < 108 bytes)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="sf", dir="/tmp"))
    shim_dir = path / "bin"
    shim_dir.mkdir()
    (shim_dir / "apt-get").write_text(APT_GET_SHIM)
    (shim_dir / "apt-get").chmod(0o755)
    _APT_SHIM_DIR[:] = [shim_dir]
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def salt_factories_config():
    """Stop daemons without the slow stop meant for writing coverage data,
    which these tests do not collect."""
    return {"slow_stop": False}


@pytest.fixture(scope="session", autouse=True)
def _shutdown_salt_temp_log_handler():
    """Salt's temporary log handler writes to a stream pytest closes at exit."""
    yield
    import salt._logging.impl  # pylint: disable=import-outside-toplevel

    salt._logging.impl.shutdown_temp_handler()


@pytest.fixture(scope="session")
def masterless_minion_factory(salt_factories):
    """Create (once per id) a masterless minion config with the given grains."""
    created: dict[str, Masterless] = {}

    def make(minion_id: str, profile: str | None = None, grains: dict | None = None, sync: bool = True):
        if minion_id not in created:
            factory = salt_factories.salt_minion_daemon(
                minion_id, overrides=masterless_config(profile, grains)
            )
            minion = Masterless(factory)
            minion.write_pillar({})
            if sync:
                minion.sync()
            created[minion_id] = minion
        return created[minion_id]

    return make


@pytest.fixture(scope="session")
def os_minion(masterless_minion_factory):
    """The synced masterless minion of an OS profile: ``os_minion("fedora40")``."""

    def get(profile: str) -> Masterless:
        return masterless_minion_factory(f"m-{profile}", profile=profile)

    return get


def run_parallel(jobs: dict, workers: int = 2) -> dict:
    """
    Run {key: (minion, args, kwargs)} salt-calls, two at a time (2 cores).
    ``args`` may instead be a callable taking the minion, for calls that need
    something done around them.

    Salt refuses two state runs on one minion at once, so the calls of one
    minion run one after the other; different minions run side by side.
    """
    queues: dict[str, list] = {}
    for key, (minion, args, kwargs) in jobs.items():
        queues.setdefault(minion.id, []).append((key, minion, args, kwargs))

    def run_one(minion, args, kwargs):
        return args(minion) if callable(args) else minion.call(*args, **kwargs)

    def run_queue(queue):
        return [(key, run_one(minion, args, kwargs)) for key, minion, args, kwargs in queue]

    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for done in pool.map(run_queue, queues.values()):
            results.update(done)
    return {key: results[key] for key in jobs}


def dpkg_installed(names) -> dict:
    """{name: True/False}: whether dpkg has each package installed on this machine."""
    out = {}
    for name in names:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True, check=False
        )
        out[name] = proc.returncode == 0 and proc.stdout.strip().endswith(" installed")
    return out
