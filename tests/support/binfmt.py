"""Foreign binaries through qemu-user: the host side of the ARM machines.

Debian's ``qemu-user-static`` ships the emulators and, in
``/usr/lib/binfmt.d``, the kernel's binfmt_misc lines for them. Registered
here with the flags ``OCF`` (F: the kernel opens the emulator at
registration, so it works inside any root, also a booted ``systemd-nspawn``
machine that has no qemu of its own). ``python -m tests.support.binfmt``
registers every architecture the tests use and prints one line saying
whether this host can run them.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

BINFMT_DIR = pathlib.Path("/proc/sys/fs/binfmt_misc")
LINES_DIR = pathlib.Path("/usr/lib/binfmt.d")
# Debian architecture -> (qemu's name, what `uname -m` says inside)
ARCHITECTURES = {"arm64": ("aarch64", "aarch64"), "armhf": ("arm", "armv7l")}


class Unavailable(RuntimeError):
    """This host cannot run binaries of the architecture."""


def _emulator(arch: str) -> pathlib.Path:
    return pathlib.Path(f"/usr/bin/qemu-{ARCHITECTURES[arch][0]}-static")


def _mounted() -> bool:
    return (BINFMT_DIR / "register").exists()


def register(arch: str) -> None:
    """Make the kernel run ``arch`` binaries with qemu (idempotent)."""
    qemu = ARCHITECTURES[arch][0]
    entry = BINFMT_DIR / f"qemu-{qemu}"
    if not _emulator(arch).exists():
        raise Unavailable(f"{_emulator(arch)} is missing: apt-get install qemu-user-static (bin/test does)")
    if not _mounted():
        mounted = subprocess.run(
            ["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)], capture_output=True, text=True
        )
        if mounted.returncode != 0:
            raise Unavailable(f"cannot mount binfmt_misc: {mounted.stderr.strip()}")
    if entry.exists():
        status = entry.read_text()
        if "enabled" in status and str(_emulator(arch)) in status and "flags: OCF" in status:
            return
        entry.write_text("-1")  # another registration (say without F): replace it
    source = LINES_DIR / f"qemu-{qemu}.conf"
    if not source.exists():
        raise Unavailable(f"{source} is missing: apt-get install qemu-user-static (bin/test does)")
    fields = source.read_text().strip().split(":")
    # :name:type:offset:magic:mask:interpreter:flags
    fields[6], fields[7] = str(_emulator(arch)), "OCF"
    try:
        (BINFMT_DIR / "register").write_text(":".join(fields))
    except OSError as exc:
        raise Unavailable(f"the kernel refused the binfmt_misc line for {qemu}: {exc}") from exc


def require(arch: str) -> None:
    """Register ``arch`` and prove it: an emulated binary must run."""
    register(arch)
    probe = subprocess.run([str(_emulator(arch)), "--version"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        raise Unavailable(f"{_emulator(arch)} does not run: {probe.stderr.strip()}")


def main() -> int:
    try:
        for arch in ARCHITECTURES:
            require(arch)
    except Unavailable as exc:
        print(f"bin/test: this host cannot run ARM binaries, so the Raspberry Pi tests will fail: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
