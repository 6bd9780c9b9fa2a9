"""pyxen.guest HVM builds on real Xen: hvmloader + SeaBIOS + qemu-xen (direct kernel boot of
the lab kernel, marker on the emulated serial port), and rollback that leaves no domain, no
xenstore entries and no qemu process. Each HVM boot costs minutes under TCG: one boot only."""

import os
import time
import uuid

import pytest

from conftest import qemu_pids, run_tool

MARKER = "PYXEN-HVM-OK"
BOOT_TIMEOUT = 3000  # hvmloader + SeaBIOS + kernel under TCG, CPU shared with other labs


@pytest.fixture
def G():
    import pyxen.guest
    return pyxen.guest


@pytest.fixture(autouse=True)
def no_leftovers(xc, xs, G):
    before = {d.domid for d in xc.domains()}
    yield
    for name, domid in G.domain_names(xs).items():
        if name.startswith("pyxen-t-") and domid not in before:
            G.destroy(domid, xc=xc, xs=xs)


def snapshot(xc, xs):
    ls = lambda p: set(xs.ls(p)) if xs.exists(p) else set()  # noqa: E731
    return ({d.domid for d in xc.domains()}, ls("/local/domain"), ls("/vm"), ls("/libxl"),
            ls("/local/domain/0/device-model"), set(qemu_pids()))


def hvm_spec(G, guest_kit, name, **kw):
    return G.BuildSpec(name=name, type="hvm", kernel=guest_kit["kernel"],
                       ramdisk=guest_kit["ramdisk"], memory=kw.pop("memory", 128),
                       cmdline=kw.pop("cmdline", f"console=ttyS0 pyxen.action=wait "
                                                 f"pyxen.marker={MARKER}"), **kw)


def xl_list() -> dict:
    out = {}
    for line in run_tool("xl", "list").splitlines()[1:]:
        f = line.split()
        if len(f) >= 6:
            out[f[0]] = (int(f[1]), int(f[2]), int(f[3]), f[4])
    return out


def test_hvm_rollback_missing_kernel(xc, xs, G, guest_kit, tmp_path):
    before = snapshot(xc, xs)
    spec = hvm_spec(G, guest_kit, "pyxen-t-hvm-nok")
    import dataclasses
    spec = dataclasses.replace(spec, kernel=str(tmp_path / "no-such-vmlinuz"))
    with pytest.raises(G.KernelNotFoundError) as ei:
        G.build(spec, xc=xc, xs=xs)
    assert ei.value.step == "check_files" and "no-such-vmlinuz" in str(ei.value)
    assert snapshot(xc, xs) == before


def test_hvm_rollback_memory_beyond_free(xc, xs, G, guest_kit):
    before = snapshot(xc, xs)
    free_mb = xc.physinfo().free_memory_kb // 1024
    with pytest.raises(G.InsufficientMemoryError) as ei:
        G.build(hvm_spec(G, guest_kit, "pyxen-t-hvm-big", memory=free_mb + 64), xc=xc, xs=xs)
    assert ei.value.step == "check_host" and "free" in ei.value.reason
    assert snapshot(xc, xs) == before


def test_hvm_rollback_when_device_model_fails(xc, xs, G, guest_kit):
    """The domain is built and qemu started, then qemu refuses its arguments: the domain,
    its xenstore entries and the device-model directory all go."""
    before = snapshot(xc, xs)
    with pytest.raises(G.BuildError) as ei:
        G.build(hvm_spec(G, guest_kit, "pyxen-t-hvm-baddm",
                         device_model_args=("-no-such-qemu-option",)), xc=xc, xs=xs)
    e = ei.value
    assert e.step == "device_model_wait" and e.domid is not None
    assert "exited" in e.reason and "no-such-qemu-option" in e.reason
    assert G.wait_gone(xc, e.domid, 20)
    assert snapshot(xc, xs) == before
    assert "pyxen-t-hvm-baddm" not in xl_list()


def test_cli_build_hvm_paused_with_pty_serial(xc, xs, G, guest_kit):
    """`pyxen build --hvm -p`: the domain is built and qemu running (the CLI process
    exits, qemu stays: its own session); the serial pty is published where xl looks."""
    import subprocess
    import sys
    before = snapshot(xc, xs)
    r = subprocess.run([sys.executable, "-m", "pyxen", "build", "--hvm", "--name",
                        "pyxen-t-hvm-cli", "--kernel", guest_kit["kernel"], "--ramdisk",
                        guest_kit["ramdisk"], "--memory", "128", "--extra", "console=ttyS0",
                        "--serial", "pty", "-p"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    domid = G.resolve("pyxen-t-hvm-cli", xs)
    try:
        assert f"domid {domid}" in r.stdout and "device model pid" in r.stdout, r.stdout
        assert xc.domain(domid).paused and xc.domain(domid).hvm
        pid = int(xs.read(f"/local/domain/{domid}/image/device-model-pid"))
        assert qemu_pids().get(pid) == domid
        tty = xs.read(f"/local/domain/{domid}/serial/0/tty").decode()
        assert tty.startswith("/dev/pts/") and os.path.exists(tty)
        assert G.serial_spec(domid, xs=xs) == f"pty:{tty}"
        assert G.qmp(domid, "query-status")["status"] == "running"
        assert xl_list()["pyxen-t-hvm-cli"][0] == domid
    finally:
        G.destroy(domid, xc=xc, xs=xs)
    assert G.wait_gone(xc, domid, 30)
    assert snapshot(xc, xs) == before


def test_hvm_direct_kernel_boot_reaches_marker_on_serial(xc, xs, G, guest_kit):
    uid = str(uuid.uuid4())
    t0 = time.monotonic()
    g = G.build(hvm_spec(G, guest_kit, "pyxen-t-hvm", uuid=uid, vnc=True), xc=xc, xs=xs)
    built = time.monotonic() - t0
    d = f"/local/domain/{g.domid}"
    try:
        info = xc.domain(g.domid)
        assert info.hvm and not info.paused and info.uuid == uid
        assert xl_list()["pyxen-t-hvm"][0] == g.domid
        # libxenguest set the store/console HVM params the guest finds its rings by
        from pyxen._native import xen
        ffi, lib = xen()
        val = ffi.new("uint64_t *")
        for param, want in ((lib.HVM_PARAM_STORE_PFN, g.store_mfn),
                            (lib.HVM_PARAM_STORE_EVTCHN, g.store_port),
                            (lib.HVM_PARAM_CONSOLE_PFN, g.console_mfn),
                            (lib.HVM_PARAM_CONSOLE_EVTCHN, g.console_port)):
            assert lib.xc_hvm_param_get(xc._p(), g.domid, param, val) == 0
            assert val[0] == want, (param, val[0], want)
        assert xs.read(f"{d}/hvmloader/bios") == b"seabios"
        assert xs.read(f"{d}/platform/device-model") == b"qemu_xen"
        assert xs.read(f"/vm/{uid}/image/ostype") == b"hvm"
        assert xs.read(f"/local/domain/0/device-model/{g.domid}/state") == b"running"
        assert xs.read(f"{d}/image/device-model-pid") == str(g.device_model_pid).encode()
        assert qemu_pids().get(g.device_model_pid) == g.domid
        # the VNC port qemu chose, read back through QMP and written where xl looks
        assert g.vnc_port is not None and 5900 <= g.vnc_port < 6000
        assert G.vnc_port(g.domid) == g.vnc_port
        assert xs.read(f"{d}/console/vnc-port") == str(g.vnc_port).encode()
        assert g.serial and g.serial.startswith("file:")
        # the kernel's first line (hvmloader, SeaBIOS and qemu's linuxboot ROM are done),
        # then the init's marker line (the command line echo also holds the marker text)
        out = G.serial_output(g.domid, timeout=BOOT_TIMEOUT, until="Linux version", xs=xs)
        assert "Linux version" in out, out[-3000:]
        kernel_at = time.monotonic() - t0
        left = max(60.0, BOOT_TIMEOUT - kernel_at)
        out = G.serial_output(g.domid, timeout=left, until=f"{MARKER} uname=", xs=xs)
        took = time.monotonic() - t0
        assert f"{MARKER} uname=" in out, out[-3000:]
        steps = ", ".join(f"{k}={v:.2f}" for k, v in g.timings.items() if v > 0.2)
        print(f"\nHVM build {built:.1f}s ({steps}); kernel's first serial line after "
              f"{kernel_at:.0f}s, marker after {took:.0f}s")
        assert not xc.domain(g.domid).shutdown
    finally:
        G.destroy(g.domid, xc=xc, xs=xs, uuid=uid)
    assert G.wait_gone(xc, g.domid, 30)
    assert g.device_model_pid not in qemu_pids()
    for p in (d, f"/vm/{uid}", f"/libxl/{g.domid}",
              f"/local/domain/0/device-model/{g.domid}"):
        assert not xs.exists(p), p
    assert not os.path.exists(g.qmp_path)
    assert "pyxen-t-hvm" not in xl_list()
