"""Lab tests: they run inside a real Xen dom0 (``python -m pyxen.lab run -- python3 -m pytest
tests/lab``, which ``make test`` does). Outside a dom0 they are skipped with that hint;
inside the lab (PYXEN_LAB=1) a missing Xen is an error, never a skip."""

import contextlib
import re
import select
import termios
import threading
import os
import subprocess
import time

import pytest

IN_DOM0 = os.path.exists("/dev/xen/privcmd") and os.path.exists("/proc/xen/capabilities")
IN_LAB = os.environ.get("PYXEN_LAB") == "1"
GUEST_KIT = "/usr/share/pyxen-lab/guest"


def pytest_configure(config):
    if IN_LAB and not IN_DOM0:
        raise pytest.UsageError("PYXEN_LAB=1 but this is not a Xen dom0 (no /dev/xen/privcmd)")


def pytest_collection_modifyitems(config, items):
    if IN_DOM0:
        return
    skip = pytest.mark.skip(reason="needs a Xen dom0: run `make test`, or "
                            "python -m pyxen.lab run -- python3 -m pytest tests/lab")
    for item in items:
        item.add_marker(skip)


@pytest.fixture
def xc():
    import pyxen.ctrl
    with pyxen.ctrl.open() as h:
        yield h


@pytest.fixture
def xs():
    import pyxen.xenstore
    with pyxen.xenstore.open() as h:
        yield h


def run_tool(*argv: str, check: bool = True) -> str:
    """Run one of Xen's own tools (xl, xenstore-*) to compare against: tests only."""
    return subprocess.run(argv, check=check, capture_output=True, text=True).stdout


@pytest.fixture(scope="session")
def xl_info() -> dict:
    out = run_tool("xl", "info")
    info = {}
    for line in out.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            info[k.strip()] = v.strip()
    return info


@pytest.fixture(scope="session")
def guest_kit() -> dict:
    kit = {"kernel": os.path.join(GUEST_KIT, "vmlinuz"),
           "ramdisk": os.path.join(GUEST_KIT, "initrd.cpio.gz")}
    for p in kit.values():
        assert os.path.exists(p), f"lab guest kit missing {p}"
    return kit


def loops_of(path: str) -> list[str]:
    """Loop devices bound to ``path`` (from sysfs)."""
    out = []
    for d in os.listdir("/sys/block"):
        try:
            with open(f"/sys/block/{d}/loop/backing_file") as f:
                if f.read().strip() == os.path.realpath(path):
                    out.append("/dev/" + d)
        except OSError:
            pass
    return out


def qemu_pids() -> dict[int, int]:
    """pid -> domid of every running qemu-xen device model (from /proc)."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{p}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except (OSError, IndexError):
            continue
        if b"-xen-domid" in argv:
            out[int(p)] = int(argv[argv.index(b"-xen-domid") + 1])
    return out


def wait_for(pred, timeout=120.0, step=0.5):
    """Poll ``pred`` until it returns something true or ``timeout`` seconds pass; its last
    value."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


class ConsoleReader(threading.Thread):
    """Reads a domain's console pty (as `xl console` does) into a buffer."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        attrs = termios.tcgetattr(self.fd)
        attrs[3] &= ~(termios.ECHO | termios.ICANON)
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        self.data = b""
        self.stop = False
        self.start()

    def run(self):
        while not self.stop:
            r, _, _ = select.select([self.fd], [], [], 0.5)
            if r:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                self.data += chunk

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")

    def wait(self, pattern: str, timeout: float = 120.0, start: int = 0):
        """The first match of ``pattern`` in the console output after offset ``start``."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while True:
            m = rx.search(self.text(), start)
            if m or time.monotonic() > end:
                return m
            time.sleep(0.5)

    def close(self):
        self.stop = True
        self.join(2)
        os.close(self.fd)


@contextlib.contextmanager
def xl_guest(name: str, kit: dict, cfg_dir, *, memory: int = 128, vcpus: int = 2,
             extra: str = "console=hvc0 pyxen.action=wait", paused: bool = False,
             more: str = ""):
    """A PV guest of the lab's guest kit booted with `xl create` (the reference
    toolstack), destroyed with `xl destroy` on exit. Yields its domid."""
    cfg = os.path.join(str(cfg_dir), f"{name}.cfg")
    with open(cfg, "w") as f:
        f.write(f'name = "{name}"\nkernel = "{kit["kernel"]}"\n'
                f'ramdisk = "{kit["ramdisk"]}"\nextra = "{extra}"\n'
                f"memory = {memory}\nvcpus = {vcpus}\n{more}")
    subprocess.run(["xl", "create", *(["-p"] if paused else []), cfg], check=True,
                   capture_output=True, text=True)
    try:
        yield int(run_tool("xl", "domid", name).strip())
    finally:
        subprocess.run(["xl", "destroy", name], capture_output=True)
