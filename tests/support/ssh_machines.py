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
import re
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

RECIPE = machines.REPO_ROOT / "docs/salt-ssh.md"
RECIPE_DIR = "/srv/pis"
_BLOCK_RE = re.compile(r"^```(\S+)[ ]?(\S*)\n(.*?)^```\n", re.M | re.S)


def recipe(path: pathlib.Path = RECIPE) -> tuple[dict[str, str], list[str]]:
    """The recipe's files (``{path: content}``: each yaml block titled with its
    path) and the command lines of its "Apply" section, as printed."""
    text = path.read_text()
    files = {title: body for lang, title, body in _BLOCK_RE.findall(text) if lang == "yaml" and title}
    apply = text.split("\n## Apply\n", 1)[1].split("\n## ", 1)[0]
    commands = [
        line
        for lang, _, body in _BLOCK_RE.findall(apply)
        if lang == "sh"
        for line in body.splitlines()
        if line
    ]
    return files, commands


class Control:
    """The control host's salt-ssh set-up in one directory (``salt-ssh`` run from it)."""

    def __init__(self, directory: pathlib.Path, file_root: pathlib.Path):
        self.dir = directory
        self.file_root = file_root
        self.conf_dir = directory / "etc/salt"
        self.pillar_dir = directory / "pillar"
        self.states_dir = directory / "test-states"
        self.key = directory / "ssh/id_ed25519"
        self.known_hosts = directory / "ssh/known_hosts"
        self.commands: list[str] = []

    @property
    def extmods(self) -> pathlib.Path:
        return self.dir / "cache/extmods"

    def create(self, addresses: dict[str, str]) -> None:
        """The recipe's files, its paths under this directory, the roster's
        addresses ``addresses`` ({recipe's: machine's}); then what only the
        test adds: its known_hosts file and a file root with one test.nop."""
        for path in (self.states_dir, self.key.parent):
            path.mkdir(parents=True, exist_ok=True)
        files, self.commands = recipe()
        for path, content in files.items():
            for old, new in addresses.items():
                content = content.replace(old, new)
            target = pathlib.Path(self.localize(path))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(self.localize(content))
        config = salt.utils.yaml.safe_load((self.conf_dir / "master").read_text())
        config["known_hosts_file"] = str(self.known_hosts)
        config["file_roots"]["base"].append(str(self.states_dir))
        (self.conf_dir / "master").write_text(salt.utils.yaml.safe_dump(config))
        (self.states_dir / "ssh_nop.sls").write_text(NOP_SLS)
        machines._run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "salt-ssh", "-f", str(self.key)])

    def localize(self, text: str) -> str:
        """The recipe's paths here: the formula is this checkout, Salt this virtualenv's."""
        text = text.replace(f"{RECIPE_DIR}/formulas/mail", str(self.file_root))
        text = text.replace(f"{RECIPE_DIR}/venv/bin/", f"{SALT_BIN}/")
        return text.replace(RECIPE_DIR, str(self.dir))

    def run_recipe(self, timeout: float = 900) -> list[tuple[str, subprocess.CompletedProcess]]:
        """Each command line of the recipe's "Apply" section, in order, in a shell here."""
        done = []
        for line in self.commands:
            result = subprocess.run(
                ["/bin/sh", "-c", self.localize(line)],
                cwd=self.dir,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            done.append((line, result))
            if result.returncode != 0:
                break
        return done

    @property
    def public_key(self) -> str:
        return self.key.with_suffix(".pub").read_text()

    def trust(self, machine) -> None:
        """The machine's host keys into the control's known_hosts (as ``ssh`` would ask)."""
        keys = machine.run(["sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub"]).stdout
        lines = [f"{machine.address} {' '.join(line.split()[:2])}" for line in keys.splitlines() if line]
        with open(self.known_hosts, "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")

    def pillar(self, name: str) -> dict:
        return salt.utils.yaml.safe_load((self.pillar_dir / f"mail_{name}.sls").read_text())["mail"]

    def set_pillar(self, name: str, mail: dict) -> None:
        """The recipe's per-target pillar file (``mail_<name>.sls``, in its top file)."""
        (self.pillar_dir / f"mail_{name}.sls").write_text(salt.utils.yaml.safe_dump({"mail": mail}))

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
