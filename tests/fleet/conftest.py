"""
The fleet: four Debian machines booted with systemd, one real salt-master.

* Images: ``tests/support/machines.py`` (debootstrap, cached under
  /var/cache/mail-formula-tests). Each node boots its own copy.
* Network: a bridge ``mfleet0`` with 198.51.100.1/24 on the host (RFC 5737,
  not used by this host); node N is 198.51.100.1N. Ports are isolated, there
  is no default route: a node reaches the host and nothing else.
* The master and the SMTP peers listen on 198.51.100.1 only. Inside the
  nodes, smtp.fleet.test and mailu.fleet.test name that address (/etc/hosts);
  the peers' certificates come from the session's test CA, which the nodes
  get as /usr/local/share/fleet-ca.pem.
* Everything is stopped and removed at the end of the session, whatever
  happened.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import email.message
import email.utils
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from tests.support import addresses, binfmt, machines
from tests.support.fleet import RET_PORT, Fleet, SaltMaster
from tests.support.smtp_peers import SmtpPeer
from tests.support.wheel_index import WheelIndex

PREFIX = "198.51.100"
BRIDGE = "mfleet0"
HOST = f"{PREFIX}.1"
SMARTHOST_NAME = "smtp.fleet.test"
MAILU_NAME = "mailu.fleet.test"
CA_PATH = "/usr/local/share/fleet-ca.pem"
ADMIN = "ops@fleet.test"
RECIPIENT = "someone@example.test"

RELAY_USER = "relay-user"
RELAY_PASSWORD = "fleet-Relay-pw-71c"
MAILU_USER = "alerts@fleet.test"
MAILU_PASSWORD = "fleet-MailuTok-3e9"
SMARTHOST_PORT = 587
MAILU_DIRECT_PORT = 465
MAILU_QUEUE_PORT = 2587

# minion ID -> (image, address). n1 runs Salt 3006 LTS under the 3008 master (a
# mixed fleet, issue 14); tests/fleet/test_upgrade.py upgrades it at the end.
NODES = {
    "n1": ("bookworm-salt3006", f"{PREFIX}.11"),
    "n2": ("trixie", f"{PREFIX}.12"),
    "n3": ("bookworm", f"{PREFIX}.13"),
    "n4": ("trixie", f"{PREFIX}.14"),
}

RELAY = {
    "relayhost": SMARTHOST_NAME,
    "port": SMARTHOST_PORT,
    "tls": "starttls",
    "user": RELAY_USER,
    "password": RELAY_PASSWORD,
    "ca_file": CA_PATH,
}
MAILU_DIRECT = {
    "host": MAILU_NAME,
    "port": MAILU_DIRECT_PORT,
    "tls": "implicit",
    "user": MAILU_USER,
    "password": MAILU_PASSWORD,
    "ca_file": CA_PATH,
}
MAILU_QUEUED = dict(MAILU_DIRECT, port=MAILU_QUEUE_PORT, tls="starttls", queue=True)


def relay_pillar(**extra):
    return {"container": False, "mode": "relay", "admin": ADMIN, "relay": RELAY, **extra}


def mailu_direct_pillar(**extra):
    return {"container": False, "admin": ADMIN, "senders": ["www-data"], "mailu": MAILU_DIRECT, **extra}


PILLARS = {
    # Debian 12: the local Postfix relay to the authenticated STARTTLS smarthost.
    "n1": relay_pillar(),
    # Debian 13: Mailu direct on 465, msmtp is sendmail.
    "n2": mailu_direct_pillar(),
    # Debian 12: Mailu queued through Postfix, 587-style STARTTLS.
    "n3": {"container": False, "admin": ADMIN, "mailu": MAILU_QUEUED},
    # Debian 13: container detection left to the formula (nspawn), msmtp to the smarthost.
    "n4": {"container": "auto", "mode": "relay", "admin": ADMIN, "senders": ["www-data"], "relay": RELAY},
}
SECRETS = (RELAY_PASSWORD, MAILU_PASSWORD)

FIGURES: dict[str, str] = {}


# A cold image cache: the images are built in the background while the rest
# of the suite runs (debootstrap waits on the network, emulated builds on one
# core each); the fixtures wait for it.
PREBUILD_LOG = machines.CACHE_DIR / "prebuild.log"
_prebuild: dict = {}  # "process": the build's Popen, "started": its monotonic start


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected
def pytest_collection_modifyitems(items):
    wanted = set()
    for item in items:
        if "/fleet/" in str(item.fspath):
            item.add_marker(pytest.mark.fleet)
            if "fleet" in item.fixturenames:
                wanted.update(machines.IMAGES)
            wanted.update(PI_NODES[name][0] for name in PI_NODES if name in item.fixturenames)
    _start_building(sorted(name for name in wanted if not machines.is_cached(name)))


def _start_building(names):
    if not names or os.geteuid() != 0 or not shutil.which("debootstrap"):
        return  # the fixtures say what is missing
    machines.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(PREBUILD_LOG, "w") as log:
        _prebuild["process"] = subprocess.Popen(
            ["nice", "-n", "10", sys.executable, "-m", "tests.support.machines", *names],
            cwd=machines.REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _prebuild["started"] = time.monotonic()


def _wait_for_prebuild(names):
    """Until the background build has made images ``names`` (or has failed)."""
    process = _prebuild.get("process")
    if process is None:
        return
    while not all(machines.is_cached(name) for name in names):
        if process.poll() is not None:
            log = PREBUILD_LOG.read_text(errors="replace")
            pytest.fail(f"building the machine images failed ({process.returncode}):\n{log[-6000:]}")
        time.sleep(2)
    took = time.monotonic() - _prebuild["started"]
    record(f"images {', '.join(names)}", f"built in the background; in use {took:.0f} s after collection")


def pytest_sessionfinish(session):
    process = _prebuild.get("process")
    if process is not None and process.poll() is None:  # the session ended early
        subprocess.run(["kill", "-TERM", "--", f"-{process.pid}"], capture_output=True, check=False)


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("fleet figures")
        for key, value in FIGURES.items():
            terminalreporter.write_line(f"{key}: {value}")


def record(key: str, value: str) -> None:
    FIGURES[key] = value


class Peers:
    """The SMTP peers on the host's bridge address."""

    def __init__(self, ca):
        names = (SMARTHOST_NAME, MAILU_NAME)
        users = {RELAY_USER: RELAY_PASSWORD}
        mailu_users = {MAILU_USER: MAILU_PASSWORD}
        common = {"ca": ca, "host": HOST, "cert_names": names}
        self.smarthost = SmtpPeer(tls="starttls", users=users, port=SMARTHOST_PORT, **common)
        self.mailu_direct = SmtpPeer(
            tls="implicit", users=mailu_users, sender_must_match_login=True, port=MAILU_DIRECT_PORT, **common
        )
        self.mailu_queue = SmtpPeer(
            tls="starttls", users=mailu_users, sender_must_match_login=True, port=MAILU_QUEUE_PORT, **common
        )
        self.all = (self.smarthost, self.mailu_direct, self.mailu_queue)

    def start(self):
        for peer in self.all:
            peer.start()

    def stop(self):
        for peer in self.all:
            peer.stop()

    def count(self, message_id: str) -> int:
        """How often ``message_id`` arrived, over every peer."""
        return sum(peer.mailbox.count(message_id) for peer in self.all)


def message(node: str, to: str = RECIPIENT, subject: str = "fleet") -> email.message.EmailMessage:
    msg = email.message.EmailMessage()
    msg["To"] = to
    msg["Subject"] = f"{subject} from {node}"
    msg["Message-ID"] = email.utils.make_msgid(domain=f"{node}.fleet.test")
    msg.set_content(f"{subject}\n")
    return msg


def message_id(msg) -> str:
    return msg["Message-ID"].strip("<>")


def send(machine, msg, *, user=None, recipients=()):
    """Submit ``msg`` with sendmail in ``machine``: ``-t``, or recipients as arguments."""
    args = ["-oi", *recipients] if recipients else ["-t"]
    result = machine.run(
        ["/usr/sbin/sendmail", *args], input=msg.as_bytes(), user=user, check=False, timeout=60
    )
    assert result.returncode == 0, f"{machine.name}: sendmail as {user or 'root'} failed: {result.stderr!r}"
    return message_id(msg)


def _unused_prefix_or_fail():
    reason = addresses.conflict(PREFIX)
    if reason:
        pytest.fail(f"the fleet's bridge cannot take {reason} (left over from a run? `ip link del {BRIDGE}`)")


@pytest.fixture(scope="session")
def fleet_images():
    """Every image, built once (cached); records build or cache-hit time."""
    if os.geteuid() != 0:
        pytest.fail("the fleet tests boot machines with systemd-nspawn and need root")
    missing = [
        tool for tool in ("debootstrap", "systemd-nspawn", "dpkg-scanpackages") if not shutil.which(tool)
    ]
    if missing:
        pytest.fail(f"missing {missing}: install debootstrap, systemd-container and dpkg-dev (bin/test does)")
    _wait_for_prebuild(machines.IMAGES)
    started = time.monotonic()

    def build(release):
        cached = machines.is_cached(release)
        path = machines.image(release, log=lambda line: None)
        took = time.monotonic() - started
        how = "cached" if cached else "built (all images at once)"
        record(f"image {release}", f"{how} in {took:.1f} s")
        return release, path

    # All at once: debootstrap waits on the network while another compiles.
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(machines.IMAGES)) as pool:
        images = dict(pool.map(build, machines.IMAGES))
    return images


@pytest.fixture(scope="session")
def fleet_bridge():
    """The host's bridge with 198.51.100.1/24; deleted at the end."""
    _unused_prefix_or_fail()
    with machines.Bridge(BRIDGE, PREFIX) as bridge:
        yield bridge


@pytest.fixture(scope="session")
def fleet_peers(test_ca, fleet_bridge):
    peers = Peers(test_ca)
    peers.start()
    yield peers
    peers.stop()


@pytest.fixture(scope="session")
def fleet(fleet_images, fleet_bridge, test_ca, fleet_peers):
    """Master and four booted machines with accepted keys; all removed at the end."""
    bridge = fleet_bridge
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="mf", dir="/tmp"))
    nodes: dict[str, machines.Machine] = {}
    master = SaltMaster(workdir / "m", HOST)
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        stack.callback(master.stop)
        for minion, (release, address) in NODES.items():
            node = machines.Machine(minion, release, address, bridge, workdir)
            stack.callback(node.destroy)
            nodes[minion] = node
        master.start()
        fleet = Fleet(master, nodes)
        for minion, pillar in PILLARS.items():
            fleet.set_pillar(minion, pillar)
        ca_pem = pathlib.Path(test_ca.ca_file).read_text()
        started = time.monotonic()
        for minion, node in nodes.items():
            node.create(
                fleet_images[node.release],
                {
                    "/etc/hosts": (
                        f"127.0.0.1 localhost\n127.0.1.1 {minion}.fleet.test {minion}\n"
                        f"{HOST} {SMARTHOST_NAME} {MAILU_NAME} salt\n"
                    ),
                    "/etc/salt/minion.d/fleet.conf": (
                        f"id: {minion}\nmaster: {HOST}\nmaster_port: {RET_PORT}\n"
                        "acceptance_wait_time: 1\nacceptance_wait_time_max: 2\nrandom_reauth_delay: 0\n"
                        "recon_default: 500\nrecon_max: 2000\nlog_level_logfile: info\n"
                    ),
                    CA_PATH: ca_pem,
                },
            )
        for node in nodes.values():
            node.boot()
        fleet.accept_keys()
        record("fleet boot (4 machines, keys accepted)", f"{time.monotonic() - started:.1f} s")
        yield fleet


@pytest.fixture(scope="session")
def first_apply(fleet):
    """``saltutil.sync_all`` then the first ``state.apply mail`` over the fleet (timed)."""
    synced = fleet.salt("*", "saltutil.sync_all")
    assert set(synced.data) == fleet.ids, synced
    result = fleet.salt("*", "state.apply", "mail")
    record("first state.apply mail, 4 nodes", f"{result.seconds:.1f} s")
    return result


# ------------------------------------------- checks the fleet tests share ---


def assert_no_secret(run):
    for secret in SECRETS:
        assert secret not in run.stdout + run.stderr, "a test password appears in Salt's output"


def assert_clean(run, ids):
    assert set(run.data) == set(ids), run
    for minion in ids:
        assert run.failed(minion) == {}, (minion, run.failed(minion))
    assert_no_secret(run)


def journal(machine, unit="postfix@-", lines=40) -> str:
    return machine.run(["journalctl", "-q", "-n", str(lines), "-u", unit], check=False).stdout


def unit_state(machine, unit="postfix") -> tuple[str, str]:
    active = machine.run(["systemctl", "is-active", unit], check=False).stdout.strip()
    enabled = machine.run(["systemctl", "is-enabled", unit], check=False).stdout.strip()
    return active, enabled


def master_pid(machine) -> int:
    return int(machine.run(["cat", "/var/spool/postfix/pid/master.pid"]).stdout.strip())


def smtp_listeners(machine) -> set[str]:
    out = machine.run(["ss", "-Hltn", "sport = :25"]).stdout
    return {line.split()[3] for line in out.splitlines() if line.strip()}


def deliver_and_count(fleet, peers, machine, msg, peer_name, recipient=RECIPIENT, **kwargs):
    """Send ``msg`` from ``machine``; it must reach ``peer_name`` exactly once."""
    peer = getattr(peers, peer_name)
    mid = send(machine, msg, **kwargs)
    assert peer.mailbox.wait_for_ids([mid], timeout=90), (machine.name, journal(machine))
    time.sleep(1)  # a duplicate would arrive right after
    assert peers.count(mid) == 1
    (got,) = [m for m in peer.mailbox.messages() if m.message_id == mid]
    assert got.rcpt_tos == [recipient]
    return got


# ----------------------------------------- Raspberry Pi machines (issue 13) ---

# name -> (image, address, port of its wheel index on the host)
PI_NODES = {
    "pi64": ("bookworm-arm64", f"{PREFIX}.21", 8641),
    "pi32": ("bookworm-armhf", f"{PREFIX}.22", 8642),
}
# Where the machine sees this checkout (read-only): the README's <this repository>.
UPSTREAM = "/srv/upstream/mail"
# /etc/os-release of 32-bit Raspberry Pi OS (Bookworm).
RASPBIAN_OS_RELEASE = """\
PRETTY_NAME="Raspbian GNU/Linux 12 (bookworm)"
NAME="Raspbian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=raspbian
ID_LIKE=debian
HOME_URL="http://www.raspbian.org/"
SUPPORT_URL="http://www.raspbian.org/RaspbianForums"
BUG_REPORT_URL="http://www.raspbian.org/RaspbianBugs"
"""


def pi_image(image_name) -> pathlib.Path:
    """An ARM image (cached; built in the background when missing)."""
    if os.geteuid() != 0:
        pytest.fail("the Raspberry Pi tests boot machines with systemd-nspawn and need root")
    try:
        binfmt.require(machines.ARM_IMAGES[image_name].arch)
    except binfmt.Unavailable as exc:
        pytest.fail(f"this host cannot run ARM binaries: {exc}")
    _wait_for_prebuild([image_name])
    cached = machines.is_cached(image_name)
    started = time.monotonic()
    path = machines.image(image_name, log=lambda line: None)
    if not cached:
        record(f"image {image_name}", f"built in {time.monotonic() - started:.0f} s")
    return path


@contextlib.contextmanager
def pi_machine(name, fleet_bridge, test_ca):
    """A booted Raspberry Pi stand-in with this checkout at UPSTREAM and pip
    pointed at the host's wheel index for its architecture."""
    image_name, address, port = PI_NODES[name]
    image = pi_image(image_name)
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="mp", dir="/tmp"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        index = stack.enter_context(WheelIndex(machines.wheelhouse(image_name), HOST, port))
        checkout = {str(machines.REPO_ROOT): UPSTREAM}
        machine = machines.Machine(
            name,
            image_name,
            address,
            fleet_bridge,
            workdir,
            read_only_binds=checkout,
            on_tmpfs=machines.ARM_IMAGES[image_name].arch == "armhf",
        )
        stack.callback(machine.destroy)
        files = {
            "/etc/hosts": (
                f"127.0.0.1 localhost\n127.0.1.1 {name}.fleet.test {name}\n"
                f"{HOST} {SMARTHOST_NAME} {MAILU_NAME}\n"
            ),
            "/etc/pip.conf": index.pip_conf,
            CA_PATH: pathlib.Path(test_ca.ca_file).read_text(),
        }
        if name == "pi32":
            files["/etc/os-release"] = RASPBIAN_OS_RELEASE
        machine.create(image, files)
        booted = machine.boot(timeout=300)
        record(f"{name} ({image_name}) boot under emulation", f"{booted:.1f} s")
        yield machine
