"""Guests are hostile (XSA-175): the checks dom0 applies to what a guest can write, that need
no Xen. The lab test (tests/lab/test_devices.py -k hostile) rewrites a real guest's nodes."""

import subprocess
import sys
import time

import pytest

import pyxen.devices as D
import pyxen.guest as G
from pyxen._text import printable


@pytest.mark.parametrize("path,bdom", [
    ("/local/domain/0/backend/vbd/3/51712", 0),
    ("/local/domain/7/backend/vbd/3/51712", 7),
    ("/local/domain/0/backend/qdisk/3/51712", 0),
])
def test_backend_path_exact_form(path, bdom):
    assert D._backend_domid(path, "vbd", 3, 51712) == bdom


@pytest.mark.parametrize("path", [
    None, "",
    "/local/domain/0/backend/vbd/4/51712",          # another domain's disk
    "/local/domain/0/backend/vbd/3/51728",          # another of its disks
    "/local/domain/0/backend/vif/3/51712",          # another kind
    "/local/domain/0/backend/vbd/3/51712/",
    "/local/domain/0/backend/vbd/3/51712/x",
    "/local/domain/0/backend/vbd/3",
    "/local/domain/00/backend/vbd/3/51712",
    "/local/domain/0/backend/vbd/03/51712",
    "/local/domain/32752/backend/vbd/3/51712",      # DOMID_FIRST_RESERVED
    "/local/domain/3/device/vbd/51712",
    "/libxl/3/device/vbd/51712",
    " /local/domain/0/backend/vbd/3/51712",
    "/local/domain/0/backend/vbd/3/51712\n",
    "/local/domain/0/backend/vbd/3/51712\x1b[2J",
])
def test_backend_path_anything_else_refused(path):
    assert D._backend_domid(path, "vbd", 3, 51712) is None


def test_console_backend_kind():
    assert D._backend_domid("/local/domain/0/backend/console/3/1", "console", 3, 1) == 0
    assert D._backend_domid("/local/domain/0/backend/vbd/3/1", "console", 3, 1) is None


@pytest.mark.parametrize("raw,n", [
    (b"8", 8), (b"0", 0), ("4294967295", 4294967295), (b"007", 7),
    (None, -1), (b"", -1), (b" 8", -1), (b"+8", -1), (b"8_0", -1), (b"-1", -1),
    (b"4294967296", -1), (b"9" * 5000, -1), (b"\xff", -1), (b"0x10", -1),
])
def test_guest_numbers_are_bounded(raw, n):
    assert D._uint(raw) == n


def test_printable():
    assert printable("/local/domain/0/backend/vbd/3/51712") == \
        "/local/domain/0/backend/vbd/3/51712"
    assert printable(b"\x1b[2Jx") == "\\x1b[2Jx"
    assert printable("a\x07b\x7fc\x9bd") == "a\\x07b\\x7fc\\x9bd"     # BEL, DEL, C1 CSI
    assert printable("\u202eevil") == "\\u202eevil"                  # bidi override
    assert printable(b"\xff\xfe") == "\\xff\\xfe"                    # not UTF-8
    assert printable("Vm caf\u00e9 \u2192") == "Vm caf\u00e9 \u2192"  # printable kept
    assert printable(None) == ""


def test_rows_escape_guest_bytes():
    from pyxen.config import DiskSpec, NicSpec
    d = D.DiskInfo(domid=1, devid=51776, vdev="xvde", backend_id=0, frontend_id=1,
                   state=D.XenbusState.CONNECTED, backend_state=D.XenbusState.CONNECTED,
                   evtch=8, rref=8, backend="/x\x1b[2J\x1b]0;owned\x07",
                   frontend="/local/domain/1/device/vbd/51776", disk=DiskSpec(vdev="xvde"))
    row = d.row()
    assert "\x1b" not in row and "\x07" not in row and "\\x1b[2J" in row
    n = D.NicInfo(domid=1, devid=0, backend_id=0, mac="00:16:3e:00:00:01\x1bc",
                  state=None, backend_state=None, evtch=-1, rref_tx=-1, rref_rx=-1,
                  backend="/b\r\n", frontend="/f", bridge=None, ifname="vif1.0",
                  nic=NicSpec(mac="00:16:3e:00:00:01"))
    assert n.row().isprintable() and "\\x1bc" in n.row() and "/b\\x0d\\x0a" in n.row()


def test_cli_errors_escape(capsys):
    from pyxen.cli import fail
    assert fail(D.DeviceError("vbd: \x1b[2Jboom\x9b")) == 1
    err = capsys.readouterr().err
    assert err == "pyxen: vbd: \\x1b[2Jboom\\x9b\n"


@pytest.mark.parametrize("tty", ["/dev/sda", "/dev/tty1", "/dev/pts/ptmx", "/dev/pts/03",
                                 "/dev/pts/1/../../sda", "/tmp/pts/1", "/dev/pts/1\n",
                                 "/dev/pts/", "", b"/dev/pts/\x1b[2J"])
def test_console_tty_must_be_a_pts(tty):
    with pytest.raises(G.ConsoleTtyError, match="not a /dev/pts/N"):
        G.check_console_pty(5, tty)


def test_console_tty_not_dom0s_own_terminal():
    """A real pty that no xenconsoled serves (here: one this test opens, standing in for
    an administrator's terminal) is refused, before xenstore is asked anything."""
    import os
    import pty
    master, slave = pty.openpty()
    try:
        name = os.ttyname(slave)
        with pytest.raises(G.ConsoleTtyError, match="not served by xenconsoled"):
            G.check_console_pty(5, name)
    finally:
        os.close(master)
        os.close(slave)


def test_device_model_pid_must_be_a_qemu():
    """The pid comes from a node the guest can write: a process whose command line says
    -xen-domid N but is no qemu is not the device model, nor are pid 1 and ourselves."""
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                          "-xen-domid", "7"])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(f"/proc/{p.pid}/cmdline", "rb") as f:
                if b"-xen-domid" in f.read():
                    break
            time.sleep(0.02)
        assert not G._is_device_model(p.pid, 7)
        assert not G.kill_device_model(7, p.pid)
        assert p.poll() is None                      # still running: not signalled
    finally:
        p.kill()
        p.wait()
    assert not G._is_device_model(1, 0) and not G._is_device_model(0, 0)
    import os
    assert not G._is_device_model(os.getpid(), 7)
