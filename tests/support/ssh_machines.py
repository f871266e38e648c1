"""Machines reached over SSH, for the salt-ssh fleet tests (no Salt needed inside).

``image(base)`` derives a cached image from one of ``machines``' images: a
copy of it with ``openssh-server`` and ``sudo`` installed (from the Debian
mirror, at build time, with the host's network), keyed by the base image's
key and what is added here, built in a temporary directory renamed into place
at the end like the base images. The base images' build inputs are not
touched, so their cache keys do not change.

``Control`` is the control host's side: a directory with a Saltfile, a
roster, a master configuration (file_roots = this checkout, pillar_roots with
a top file, its own cachedir, pki and logs under the directory) and an SSH key
pair, so that ``salt-ssh`` from this virtualenv runs as a user's would.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import salt.utils.yaml

from tests.support import machines

SALT_BIN = pathlib.Path(sys.executable).parent
SSH_PACKAGES = ("openssh-server", "sudo")
# One state that does nothing: the baseline of a salt-ssh state.apply.
NOP_SLS = "ssh-nop:\n  test.nop: []\n"
SSH_BUILD_SCRIPT = """\
set -eu
export DEBIAN_FRONTEND=noninteractive
printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
mv /etc/apt/sources.list /etc/apt/sources.list.local
echo 'deb {mirror} {release} main' > /etc/apt/sources.list
apt-get update -q
apt-get install -y -q --no-install-recommends {packages}
mv /etc/apt/sources.list.local /etc/apt/sources.list
apt-get update -q
apt-get clean
rm -f /usr/sbin/policy-rc.d
"""


def image_key(base: str) -> str:
    digest = hashlib.sha256()
    digest.update(repr((SSH_PACKAGES, SSH_BUILD_SCRIPT)).encode())
    digest.update(inspect.getsource(_build).encode())
    return f"{machines.image_key(base)}-ssh-{digest.hexdigest()[:8]}"


def is_cached(base: str) -> bool:
    return (machines.CACHE_DIR / image_key(base) / "usr/sbin/sshd").exists()


def image(base: str, log=print) -> pathlib.Path:
    """The cached image ``base`` with sshd and sudo (built first when missing)."""
    final = machines.CACHE_DIR / image_key(base)
    if is_cached(base):
        return final
    base_dir = machines.image(base, log=log)
    started = time.monotonic()
    work = pathlib.Path(tempfile.mkdtemp(prefix=f".build-{base}-ssh-", dir=machines.CACHE_DIR))
    try:
        machines._run(["cp", "-a", "--reflink=auto", str(base_dir), str(work / "root")])
        _build(base, work / "root")
        try:
            os.rename(work / "root", final)
        except OSError:
            if not (final / "usr/sbin/sshd").exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"image {final.name} built in {time.monotonic() - started:.0f} s")
    return final


def _build(base: str, root: pathlib.Path) -> None:
    spec = machines.ALL_IMAGES[base]
    if spec.arch != "amd64":
        machines.binfmt.require(spec.arch)
    script = SSH_BUILD_SCRIPT.format(
        mirror=machines.debian_mirror(), release=spec.release, packages=" ".join(SSH_PACKAGES)
    )
    machines._run(
        ["systemd-nspawn", "-q", "-D", str(root), "--register=no", "--keep-unit", "/bin/sh", "-c", script],
        stdin=subprocess.DEVNULL,
    )
    # The host keys made at install time stay: every machine of this image
    # shares them (test machines only; the control trusts them per address).


# ------------------------------------------------------------ control ---


class Control:
    """The control host's salt-ssh set-up in one directory (``salt-ssh`` run from it)."""

    def __init__(self, directory: pathlib.Path, file_root: pathlib.Path):
        self.dir = directory
        self.file_root = file_root
        self.conf_dir = directory / "etc/salt"
        self.pillar_dir = directory / "srv/pillar"
        self.states_dir = directory / "srv/salt"
        self.key = directory / "ssh/id_ed25519"
        self.known_hosts = directory / "ssh/known_hosts"
        self.roster: dict[str, dict] = {}

    @property
    def extmods(self) -> pathlib.Path:
        return self.dir / "cache/extmods"

    def create(self) -> None:
        # cache/proc: salt-run writes its job there (a master daemon would create it).
        for path in (
            self.conf_dir,
            self.pillar_dir,
            self.states_dir,
            self.key.parent,
            self.dir / "cache/proc",
        ):
            path.mkdir(parents=True, exist_ok=True)
        (self.states_dir / "ssh_nop.sls").write_text(NOP_SLS)
        machines._run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "salt-ssh", "-f", str(self.key)])
        config = {
            "root_dir": str(self.dir),
            "cachedir": str(self.dir / "cache"),
            "pki_dir": str(self.dir / "pki"),
            "sock_dir": str(self.dir / "sock"),
            "log_file": str(self.dir / "log/master"),
            "ssh_log_file": str(self.dir / "log/ssh"),
            "extension_modules": str(self.extmods),
            "file_roots": {"base": [str(self.file_root), str(self.states_dir)]},
            "file_ignore_glob": ["*/__pycache__", "*.pyc"],
            "pillar_roots": {"base": [str(self.pillar_dir)]},
            "known_hosts_file": str(self.known_hosts),
            # salt-ssh 3008 loads wrapper modules with the target's
            # extension_modules: the control host's synced _wrapper is found
            # through wrapper_dirs, which the target hands back in its opts.
            "ssh_minion_opts": {"wrapper_dirs": [str(self.extmods / "wrapper")]},
        }
        (self.conf_dir / "master").write_text(salt.utils.yaml.safe_dump(config))
        saltfile = {
            "salt-ssh": {
                "config_dir": str(self.conf_dir),
                "ssh_priv": str(self.key),
                "roster_file": str(self.dir / "roster"),
            },
            "salt-run": {"config_dir": str(self.conf_dir)},
        }
        (self.dir / "Saltfile").write_text(salt.utils.yaml.safe_dump(saltfile))

    @property
    def public_key(self) -> str:
        return self.key.with_suffix(".pub").read_text()

    def add(self, name: str, host: str, user: str = "root", sudo: bool = False) -> None:
        entry = {"host": host, "user": user, "priv": str(self.key)}
        if sudo:
            entry["sudo"] = True
        self.roster[name] = entry
        (self.dir / "roster").write_text(salt.utils.yaml.safe_dump(self.roster))

    def trust(self, machine) -> None:
        """The machine's host keys into the control's known_hosts (as ``ssh`` would ask)."""
        keys = machine.run(["sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub"]).stdout
        lines = [f"{machine.address} {' '.join(line.split()[:2])}" for line in keys.splitlines() if line]
        with open(self.known_hosts, "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")

    def set_pillar(self, pillars: dict[str, dict]) -> None:
        top = {"base": {name: [f"node_{name}"] for name in pillars}}
        (self.pillar_dir / "top.sls").write_text(salt.utils.yaml.safe_dump(top))
        for name, mail in pillars.items():
            (self.pillar_dir / f"node_{name}.sls").write_text(salt.utils.yaml.safe_dump({"mail": mail}))

    def run(self, program: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """``program`` (salt-ssh, salt-run) from this virtualenv, in the control directory (its Saltfile)."""
        return subprocess.run(
            [str(SALT_BIN / program), *args],
            cwd=self.dir,
            env={**os.environ, "SALT_SALTFILE": str(self.dir / "Saltfile")},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def add_sudo_user(machine, user: str, public_key: str) -> None:
    """A Raspberry Pi OS style first user: a login with sudo and no password to type, the key authorized."""
    machine.run(["useradd", "--create-home", "--groups", "sudo", "--shell", "/bin/bash", user])
    machine.write(f"/etc/sudoers.d/010_{user}-nopasswd", f"{user} ALL=(ALL) NOPASSWD: ALL\n", 0o440)
    home = f"/home/{user}"
    machine.run(["install", "-d", "-m", "700", "-o", user, "-g", user, f"{home}/.ssh"])
    machine.write(f"{home}/.ssh/authorized_keys", public_key, 0o600)
    machine.run(["chown", f"{user}:{user}", f"{home}/.ssh/authorized_keys"])


def authorize_root(machine, public_key: str) -> None:
    machine.run(["install", "-d", "-m", "700", "/root/.ssh"])
    machine.write("/root/.ssh/authorized_keys", public_key, 0o600)


def wait_for_sshd(machine, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while machine.run(["systemctl", "is-active", "ssh"], check=False).stdout.strip() != "active":
        if time.monotonic() > deadline:
            raise machines.MachineError(f"{machine.name}: sshd never started")
        time.sleep(0.5)


if __name__ == "__main__":
    for name in sys.argv[1:] or ["bookworm"]:
        print(image(name))
