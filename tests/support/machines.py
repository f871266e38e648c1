"""Debian machines booted with systemd (systemd-nspawn), for the fleet tests.

Images
    ``image(name)`` builds a root file system with ``debootstrap
    --variant=minbase`` and Salt pip-installed into ``/opt/salt`` (versions
    from the image's constraints file: ``constraints.txt``, Salt 3008, or
    ``constraints-3006.txt`` for ``bookworm-salt3006``, which also holds a
    wheelhouse of Salt 3008 in ``/root/salt-upgrade`` so that its minion can be
    upgraded in place without a registry), and puts the ``.deb`` files the
    formula installs (Postfix, msmtp, msmtp-mta and their dependencies) into a
    local apt repository inside it, its only apt source: booted machines have
    no way to a package registry. Images are cached under ``CACHE_DIR`` keyed
    by release and a hash of everything that goes into them (package lists,
    build script, ``constraints.txt``), and built in a
    temporary directory renamed into place at the end, so an interrupted build
    never looks finished.

    ARM images (``arm64``, ``armhf``: Raspberry Pi OS is Debian 12 for both)
    are built the same way under qemu-user emulation (``binfmt.register``),
    without Salt: the README's recipe builds its own virtualenv there. Beside
    such an image lies its wheelhouse (``wheelhouse(name)``): every wheel
    ``bin/venv`` installs, built inside the emulated root at image-build time
    (PyPI has no ARM wheel for some of Salt's dependencies), which the tests
    serve to the machine from the host.

Machines
    ``Machine`` copies an image (``cp -a --reflink=auto``: every node has its
    own ``/etc``), writes its identity, minion config and network set-up into
    it, and boots it with ``systemd-nspawn --boot`` (systemd is PID 1 inside;
    this host has no systemd, hence ``--register=no --keep-unit``). Its
    network is one veth pair whose host end is a port of the test bridge
    (``Bridge``); bridge ports are isolated, so a machine reaches the host and
    nothing else. Commands run inside through ``nsenter``.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
import typing

from tests.support import binfmt

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CACHE_DIR = pathlib.Path(os.environ.get("MAIL_FLEET_CACHE", "/var/cache/mail-formula-tests"))


class ImageSpec(typing.NamedTuple):
    release: str
    constraints: str = "constraints.txt"  # the pins of its Salt (or of its wheelhouse)
    upgrade: str | None = None  # pins of a Salt wheelhouse kept inside, to upgrade in place
    arch: str = "amd64"  # Debian's name of the architecture
    salt: bool = True  # Salt in /opt/salt with a salt-minion unit, else a wheelhouse beside


IMAGES = {
    "bookworm": ImageSpec("bookworm"),
    "trixie": ImageSpec("trixie"),
    "bookworm-salt3006": ImageSpec("bookworm", "constraints-3006.txt", "constraints.txt"),
}
# Raspberry Pi OS's two architectures; not part of the master-driven fleet.
ARM_IMAGES = {
    "bookworm-arm64": ImageSpec("bookworm", arch="arm64", salt=False),
    "bookworm-armhf": ImageSpec("bookworm", arch="armhf", salt=False),
}
ALL_IMAGES = {**IMAGES, **ARM_IMAGES}
UPGRADE_DIR = "/root/salt-upgrade"
STALE_BUILD_SECONDS = 3 * 3600
HOST_CA_BUNDLE = pathlib.Path("/etc/ssl/certs/ca-certificates.crt")

BASE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-venv",
    "python3-dev",
    "gcc",
    "iproute2",
    "ca-certificates",
)
# The README's Raspberry Pi recipe (git clone, sudo bin/apply), and what pip
# needs to build the wheels PyPI lacks for ARM (pyzmq against the system
# libzmq, cffi against libffi).
RECIPE_PACKAGES = ("git", "sudo")
WHEEL_BUILD_PACKAGES = ("g++", "make", "cmake", "ninja-build", "pkg-config", "libzmq3-dev", "libffi-dev")
# Each set is downloaded on its own: postfix and msmtp-mta conflict.
OFFLINE_PACKAGE_SETS = (("postfix", "libsasl2-modules"), ("msmtp", "msmtp-mta"))
SALT_VENV = "/opt/salt"
LOCAL_REPO = "/opt/debs"

SALT_MINION_UNIT = """\
[Unit]
Description=Salt minion (mail formula fleet tests)
After=network-online.target fleet-net.service
Wants=fleet-net.service

[Service]
ExecStart=/opt/salt/bin/salt-minion
Restart=on-failure
RestartSec=2
KillMode=process

[Install]
WantedBy=multi-user.target
"""

BUILD_SCRIPT = """\
set -eu
export DEBIAN_FRONTEND=noninteractive
mkdir -p {repo}/partial
{downloads}
rm -rf {repo}/partial {repo}/lock
python3 -m venv {venv}
# The host's CA bundle, also for pip's build-isolation subprocesses (timelib).
export PIP_CERT=/etc/ssl/host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1
{salt}
apt-get clean
"""
SALT_STEP = """\
{venv}/bin/pip install -q -c /root/constraints.txt salt
{upgrade}
ln -sf {venv}/bin/salt-call {venv}/bin/salt-minion /usr/local/bin/
"""
# Every wheel bin/venv installs (pip first, then requirements.txt), built here.
WHEELHOUSE_STEP = """\
{venv}/bin/pip install -q -c /root/constraints.txt pip
{venv}/bin/pip wheel -q -w {wheels} -c /root/constraints.txt pip -r /root/requirements.txt
rm -rf {venv}
"""
WHEELHOUSE_DIR = "/root/wheelhouse"


def _run(cmd, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("check", True)
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    try:
        return subprocess.run(cmd, **kwargs)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(
            f"{' '.join(map(str, cmd))} failed ({exc.returncode}):\n{exc.stdout}\n{exc.stderr}"
        ) from exc


def debian_mirror() -> str:
    """The host's Debian mirror, from /etc/apt/sources.list(.d)."""
    candidates = sorted(pathlib.Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in candidates:
        for line in path.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                uri = line.split(":", 1)[1].split()[0]
                if "/debian" in uri:
                    return uri
    lists = [pathlib.Path("/etc/apt/sources.list"), *pathlib.Path("/etc/apt/sources.list.d").glob("*.list")]
    for path in lists:
        if path.exists():
            for line in path.read_text().splitlines():
                words = line.split()
                if words[:1] == ["deb"] and "/debian" in line and "security" not in line:
                    return next(w for w in words[1:] if "://" in w)
    return "http://deb.debian.org/debian"


def image_key(name: str) -> str:
    spec = ALL_IMAGES[name]
    digest = hashlib.sha256()
    inputs = (BASE_PACKAGES, OFFLINE_PACKAGE_SETS, SALT_MINION_UNIT, spec)
    if not spec.salt:
        inputs += (RECIPE_PACKAGES, WHEEL_BUILD_PACKAGES, WHEELHOUSE_STEP)
    else:
        inputs += (SALT_STEP,)
    digest.update(repr(inputs).encode())
    digest.update(BUILD_SCRIPT.encode())
    digest.update(inspect.getsource(_build).encode())
    pins = [spec.constraints, spec.upgrade] + ([] if spec.salt else ["requirements.txt"])
    for path in filter(None, pins):
        digest.update((REPO_ROOT / path).read_bytes())
    return f"{name}-{digest.hexdigest()[:12]}"


def is_cached(name: str) -> bool:
    return (CACHE_DIR / image_key(name) / "etc" / "os-release").exists()


def wheelhouse(name: str) -> pathlib.Path:
    """The wheels beside the ARM image ``name`` (built with it)."""
    return _wheels_beside(CACHE_DIR / image_key(name))


def _wheels_beside(image_dir: pathlib.Path) -> pathlib.Path:
    return image_dir.with_name(f"{image_dir.name}.wheels")


def image(name: str, log=print) -> pathlib.Path:
    """The cached image ``name`` (of ``ALL_IMAGES``), built first if missing."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    final = CACHE_DIR / image_key(name)
    if is_cached(name):
        return final
    for stale in CACHE_DIR.glob(f".build-{name}-*"):
        # Left by an interrupted build: no build takes hours.
        if time.time() - stale.stat().st_mtime > STALE_BUILD_SECONDS:
            shutil.rmtree(stale, ignore_errors=True)
    started = time.monotonic()
    work = pathlib.Path(tempfile.mkdtemp(prefix=f".build-{name}-", dir=CACHE_DIR))
    try:
        _build(name, work / "root")
        if not ALL_IMAGES[name].salt:
            wheels = _wheels_beside(final)
            shutil.rmtree(wheels, ignore_errors=True)
            os.rename(work / "root" / WHEELHOUSE_DIR.lstrip("/"), wheels)
        try:
            os.rename(work / "root", final)
        except OSError:
            if not (final / "etc" / "os-release").exists():
                raise  # else another run finished the same image first
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"image {final.name} built in {time.monotonic() - started:.0f} s")
    return final


def _build(name: str, root: pathlib.Path) -> None:
    spec = ALL_IMAGES[name]
    packages = BASE_PACKAGES if spec.salt else BASE_PACKAGES + RECIPE_PACKAGES + WHEEL_BUILD_PACKAGES
    if spec.arch != "amd64":
        binfmt.require(spec.arch)
    _run(
        [
            "debootstrap",
            f"--arch={spec.arch}",
            "--variant=minbase",
            f"--include={','.join(packages)}",
            spec.release,
            str(root),
            debian_mirror(),
        ]
    )
    shutil.copyfile(HOST_CA_BUNDLE, root / "etc/ssl/host-ca.crt")
    shutil.copyfile(REPO_ROOT / spec.constraints, root / "root/constraints.txt")
    shutil.copyfile(REPO_ROOT / "requirements.txt", root / "root/requirements.txt")
    if spec.salt:
        upgrade_step = ""
        if spec.upgrade:
            (root / UPGRADE_DIR.lstrip("/")).mkdir(parents=True)
            shutil.copyfile(REPO_ROOT / spec.upgrade, root / UPGRADE_DIR.lstrip("/") / "constraints.txt")
            pins = f"{UPGRADE_DIR}/constraints.txt"
            upgrade_step = f"{SALT_VENV}/bin/pip wheel -q -w {UPGRADE_DIR} -c {pins} salt"
        salt_step = SALT_STEP.format(venv=SALT_VENV, upgrade=upgrade_step)
    else:
        salt_step = WHEELHOUSE_STEP.format(venv=SALT_VENV, wheels=WHEELHOUSE_DIR)
    downloads = "\n".join(
        f"apt-get install -y -q --download-only -o Dir::Cache::archives={LOCAL_REPO}/ {' '.join(pkgs)}"
        for pkgs in OFFLINE_PACKAGE_SETS
    )
    script = BUILD_SCRIPT.format(repo=LOCAL_REPO, venv=SALT_VENV, downloads=downloads, salt=salt_step)
    _run(
        ["systemd-nspawn", "-q", "-D", str(root), "--register=no", "--keep-unit", "/bin/sh", "-c", script],
        stdin=subprocess.DEVNULL,
    )
    repo = root / LOCAL_REPO.lstrip("/")
    packages = _run(["dpkg-scanpackages", "-m", ".", "/dev/null"], cwd=repo).stdout
    (repo / "Packages").write_text(packages)
    # The local repository becomes the only apt source.
    for path in (root / "etc/apt/sources.list.d").glob("*"):
        path.unlink()
    (root / "etc/apt/sources.list").write_text(f"deb [trusted=yes] file:{LOCAL_REPO} ./\n")
    _run(
        ["systemd-nspawn", "-q", "-D", str(root), "--register=no", "--keep-unit", "apt-get", "update", "-q"],
        stdin=subprocess.DEVNULL,
    )
    if spec.salt:
        units = root / "etc/systemd/system"
        (units / "salt-minion.service").write_text(SALT_MINION_UNIT)
        wants = units / "multi-user.target.wants"
        wants.mkdir(exist_ok=True)
        (wants / "salt-minion.service").symlink_to("/etc/systemd/system/salt-minion.service")
    (root / "root/constraints.txt").unlink()
    (root / "root/requirements.txt").unlink()
    # Each machine gets its own machine-id at first boot.
    (root / "etc/machine-id").write_text("")
    with contextlib.suppress(FileNotFoundError):
        (root / "var/lib/dbus/machine-id").unlink()


# ------------------------------------------------------------- machines ---

# The machine's address on host0 (no networkd inside). No default route: the
# machine reaches the host's bridge address and nothing beyond.
FLEET_NET_UNIT = """\
[Unit]
Description=Address of host0 (mail formula fleet tests)
Before=network-online.target salt-minion.service
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/sbin/ip link set host0 up
ExecStart=/sbin/ip addr replace {address} dev host0

[Install]
WantedBy=multi-user.target
"""

MACHINE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Bridge:
    """The host's side of the test network: a bridge with isolated ports.

    Every machine's veth is a port of it; the host has ``address`` on it, so
    the master and the SMTP peers listen there. Ports are isolated from each
    other (``bridge_slave isolated on``): machines reach the host only. No
    default route is given to the machines, so nothing is forwarded beyond.
    """

    def __init__(self, name: str, prefix: str):
        self.name = name
        self.prefix = prefix
        self.address = f"{prefix}.1"

    def __enter__(self) -> Bridge:
        _run(["ip", "link", "add", self.name, "type", "bridge"])
        try:
            _run(["ip", "addr", "add", f"{self.address}/24", "dev", self.name])
            _run(["ip", "link", "set", self.name, "up"])
        except Exception:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        subprocess.run(["ip", "link", "del", self.name], capture_output=True, check=False)


class MachineError(RuntimeError):
    pass


class Machine:
    """One booted Debian machine: its own copy of an image, systemd as PID 1."""

    def __init__(
        self,
        name: str,
        release: str,
        address: str,
        bridge: Bridge,
        directory: pathlib.Path,
        read_only_binds: dict[str, str] | None = None,
        on_tmpfs: bool = False,
    ):
        self.name = name
        self.release = release
        self.address = address
        self.bridge = bridge
        # {host path: path inside}, mounted read-only at every boot
        self.read_only_binds = read_only_binds or {}
        # 32-bit programs under qemu-user get EOVERFLOW from readdir() on ext4
        # (its 64-bit directory hashes; a real 32-bit kernel hands out 32-bit
        # ones): Cyrus SASL then finds no plugins. tmpfs has small offsets.
        self.on_tmpfs = on_tmpfs
        self.root = directory / name
        self.console_log = directory / f"{name}.console.log"
        self.process: subprocess.Popen | None = None
        self.leader: int | None = None

    # ---- file system, before boot

    def create(self, image_dir: pathlib.Path, files: dict[str, str]) -> None:
        """Copy the image and write ``files`` ({path inside: content}) into it."""
        if self.on_tmpfs:
            self.root.mkdir()
            _run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=4g", "tmpfs", str(self.root)])
            _run(["cp", "-a", f"{image_dir}/.", str(self.root)])
        else:
            _run(["cp", "-a", "--reflink=auto", str(image_dir), str(self.root)])
        fqdn = f"{self.name}.fleet.test"
        base = {
            "/etc/hostname": f"{self.name}\n",
            "/etc/hosts": f"127.0.0.1 localhost\n127.0.1.1 {fqdn} {self.name}\n",
            "/etc/mailname": f"{fqdn}\n",
            # No name server: lookups fail at once and fall back to /etc/hosts.
            "/etc/resolv.conf": "# no DNS in the fleet tests\n",
            "/etc/systemd/system/fleet-net.service": FLEET_NET_UNIT.format(address=f"{self.address}/24"),
        }
        for path, content in {**base, **files}.items():
            self.write(path, content)
        wants = self.root / "etc/systemd/system/multi-user.target.wants/fleet-net.service"
        wants.symlink_to("/etc/systemd/system/fleet-net.service")

    def write(self, path: str, content: str, mode: int = 0o644) -> None:
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            target.unlink()
        target.write_text(content)
        target.chmod(mode)

    def append(self, path: str, content: str) -> None:
        with open(self.root / path.lstrip("/"), "a", encoding="utf-8") as handle:
            handle.write(content)

    # ---- life cycle

    def boot(self, timeout: float = 120) -> float:
        """Boot with systemd-nspawn; return the seconds until systemd is up."""
        started = time.monotonic()
        with open(self.console_log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    "systemd-nspawn",
                    "-q",
                    "-D",
                    str(self.root),
                    "-M",
                    self.name,
                    "--boot",
                    "--register=no",
                    "--keep-unit",
                    "--console=passive",
                    f"--network-bridge={self.bridge.name}",
                    "--resolv-conf=off",
                    "--timezone=off",
                    *(f"--bind-ro={host}:{inside}" for host, inside in self.read_only_binds.items()),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.leader = self._wait_for_leader(started + 30)
        port = f"vb-{self.name}"
        self._wait(lambda: _ok(["ip", "link", "show", port]), started + 30, f"{port} never appeared")
        _run(["ip", "link", "set", "dev", port, "type", "bridge_slave", "isolated", "on"])
        self._wait(self._systemd_up, started + timeout, "systemd never reached running/degraded")
        return time.monotonic() - started

    def _wait_for_leader(self, deadline: float) -> int:
        def leader():
            if self.process.poll() is not None:
                raise MachineError(f"systemd-nspawn exited: {self.console_tail()}")
            children = pathlib.Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            for pid in children.read_text().split() if children.exists() else []:
                if _pid_in_its_namespace(pid) == "1":  # the machine's systemd, not a helper
                    return int(pid)
            return None

        return self._wait(leader, deadline, "no machine leader process")

    def _systemd_up(self):
        result = self.run(["systemctl", "is-system-running"], check=False, timeout=20)
        state = result.stdout.strip()
        if state in ("running", "degraded"):
            return state
        return None

    def _wait(self, predicate, deadline: float, message: str, interval: float = 0.5):
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise MachineError(f"{self.name}: {message}\n{self.console_tail()}")
            time.sleep(interval)

    def console_tail(self, lines: int = 30) -> str:
        if not self.console_log.exists():
            return ""
        return "\n".join(self.console_log.read_text(errors="replace").splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def poweroff(self, timeout: float = 60) -> None:
        """Shut down through systemd; kill what is left after ``timeout``."""
        if not self.running:
            return
        self.run(["systemctl", "poweroff"], check=False, timeout=20)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self.leader = None

    def kill(self) -> None:
        if self.process is None:
            return
        for sig in ("TERM", "KILL"):
            if self.process.poll() is not None:
                break
            subprocess.run(
                ["kill", f"-{sig}", "--", f"-{self.process.pid}"], capture_output=True, check=False
            )
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
        self.leader = None

    def destroy(self) -> None:
        try:
            self.poweroff(timeout=30)
        finally:
            self.kill()
            if self.on_tmpfs:
                subprocess.run(["umount", str(self.root)], capture_output=True, check=False)
            shutil.rmtree(self.root, ignore_errors=True)

    # ---- commands inside

    def run(
        self,
        cmd: list[str],
        *,
        input: bytes | str | None = None,  # noqa: A002 - subprocess's own name
        user: str | None = None,
        check: bool = True,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess:
        """Run ``cmd`` in every namespace of the machine (its network too)."""
        if self.leader is None:
            raise MachineError(f"{self.name} is not running")
        if user:
            cmd = ["runuser", "-u", user, "--", *cmd]
        full = [
            "nsenter",
            "-t",
            str(self.leader),
            "-a",
            "env",
            "-i",
            f"PATH={MACHINE_PATH}",
            "LANG=C.UTF-8",
            "HOME=/root",
            *cmd,
        ]
        result = subprocess.run(
            full,
            input=input,
            capture_output=True,
            text=not isinstance(input, bytes),
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise MachineError(
                f"{self.name}: {' '.join(cmd)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def sh(self, script: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run(["/bin/sh", "-c", script], **kwargs)


def _pid_in_its_namespace(pid: str) -> str | None:
    try:
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            return line.split()[-1]
    return None


def _ok(cmd) -> bool:
    return subprocess.run(cmd, capture_output=True, check=False).returncode == 0


if __name__ == "__main__":
    import concurrent.futures
    import sys

    def build(name):
        begin = time.monotonic()
        return f"{image(name, log=lambda line: None)} {time.monotonic() - begin:.0f} s"

    # At once: debootstrap waits on the network while another build compiles.
    names = sys.argv[1:] or list(IMAGES)
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(names)) as pool:
        for line in pool.map(build, names):
            print(line, flush=True)
