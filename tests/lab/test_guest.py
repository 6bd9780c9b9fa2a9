"""pyxen.guest on real Xen: PV direct build of the lab guest kit, console, lifecycle,
rollback; xl is the reference for what the hypervisor and xenstore hold."""

import os
import time
import uuid

import pytest

from conftest import run_tool

MARKER = "PYXEN-GUEST-OK"
BOOT_TIMEOUT = 240  # a PV kernel under TCG takes ~10-20 s to its marker; others share the CPU


@pytest.fixture
def guest_mod():
    import pyxen.guest
    return pyxen.guest


@pytest.fixture
def spec(guest_kit, guest_mod):
    def make(name, extra="", **kw):
        return guest_mod.BuildSpec(name=name, kernel=guest_kit["kernel"],
                                   ramdisk=guest_kit["ramdisk"], memory=kw.pop("memory", 128),
                                   cmdline=f"console=hvc0 {extra}".strip(), **kw)
    return make


@pytest.fixture(autouse=True)
def no_leftovers(xc, xs, guest_mod):
    """Every test starts and ends with only dom0 plus foreign domains; our names cleaned."""
    before = {d.domid for d in xc.domains()}
    yield
    for name, domid in guest_mod.domain_names(xs).items():
        if name.startswith("pyxen-t-") and domid not in before:
            guest_mod.destroy(domid, xc=xc, xs=xs)


def xl_list() -> dict:
    """name -> (domid, mem MiB, vcpus, state) from `xl list`."""
    out = {}
    for line in run_tool("xl", "list").splitlines()[1:]:
        f = line.split()
        if len(f) >= 6:
            out[f[0]] = (int(f[1]), int(f[2]), int(f[3]), f[4])
    return out


def snapshot(xc, xs):
    return ({d.domid for d in xc.domains()}, set(xs.ls("/local/domain")),
            set(xs.ls("/vm")) if xs.exists("/vm") else set(),
            set(xs.ls("/libxl")) if xs.exists("/libxl") else set())


def test_paused_build_matches_xl_and_xenstore(xc, xs, spec, guest_mod):
    uid = str(uuid.uuid4())
    g = guest_mod.build(spec("pyxen-t-paused", "pyxen.action=wait", uuid=uid, vcpus=2,
                             memory=96, maxmem=128, paused=True), xc=xc, xs=xs)
    try:
        info = xc.domain(g.domid)
        assert info.paused and not info.hvm and info.max_vcpus == 2
        assert info.uuid == uid
        lst = xl_list()
        assert "pyxen-t-paused" in lst, lst
        domid, mem, vcpus, state = lst["pyxen-t-paused"]
        # xl's VCPUs column counts online vCPUs: a PV guest starts with vCPU 0 only
        assert domid == g.domid and vcpus == info.online_vcpus == 1 and state == info.state
        assert mem == info.memory_kb // 1024 and 94 <= mem <= 97
        d = f"/local/domain/{g.domid}"
        assert xs.read(f"{d}/name") == b"pyxen-t-paused"
        assert xs.read(f"{d}/vm") == f"/vm/{uid}".encode()
        assert xs.read(f"/vm/{uid}/uuid") == uid.encode()
        assert xs.read(f"{d}/memory/target") == b"98304"
        assert xs.read(f"{d}/memory/static-max") == b"131072"
        assert xs.read(f"{d}/store/port") == str(g.store_port).encode()
        assert xs.read(f"{d}/store/ring-ref") == str(g.store_mfn).encode()
        assert xs.read(f"{d}/console/port") == str(g.console_port).encode()
        assert xs.read(f"{d}/console/ring-ref") == str(g.console_mfn).encode()
        assert xs.read(f"{d}/console/type") == b"xenconsoled"
        assert xs.read(f"{d}/cpu/1/availability") == b"online"
        assert xs.read(f"{d}/control/platform-feature-multiprocessor-suspend") == b"1"
        assert str(xs.get_permissions(d)) == f"n0 r{g.domid}"
        assert str(xs.get_permissions(f"{d}/control/shutdown")) == f"n{g.domid}"
        assert str(xs.get_permissions(f"{d}/data")) == f"n{g.domid}"
        assert str(xs.get_permissions(f"/vm/{uid}")) == f"n0 r{g.domid}"
        assert str(xs.get_permissions(f"/libxl/{g.domid}")) == "n0"
        assert str(xs.get_permissions(f"{d}/console/backend-id")) == f"n{g.domid} r0"
        be = f"/local/domain/0/backend/console/{g.domid}/0"
        assert xs.read(f"{d}/console/backend") == be.encode()
        assert xs.read(f"{be}/frontend") == f"{d}/console".encode()
        assert xs.is_domain_introduced(g.domid)
        # xl's view of the same domain's xenstore home
        assert run_tool("xenstore-read", f"{d}/name").strip() == "pyxen-t-paused"
        # xenconsoled picked the console up (it writes the pty into console/tty)
        assert guest_mod.console_tty(g.domid, xs=xs, timeout=30).startswith("/dev/pts/")
    finally:
        guest_mod.destroy(g.domid, xc=xc, xs=xs, uuid=uid)
    assert guest_mod.wait_gone(xc, g.domid, 20)
    assert not xs.exists(f"/local/domain/{g.domid}") and not xs.exists(f"/vm/{uid}")
    assert not xs.exists(f"/libxl/{g.domid}") and not xs.exists(be)
    assert "pyxen-t-paused" not in xl_list()


def test_xenstore_tree_matches_xl(xc, xs, spec, guest_mod, guest_kit, tmp_path):
    """The same guest built by `xl create -p` and by pyxen: the same xenstore paths, the
    same permissions, the same values where they do not depend on the build."""
    cfg = tmp_path / "ref.cfg"
    kernel, ramdisk = guest_kit["kernel"], guest_kit["ramdisk"]
    cfg.write_text(f'name = "pyxen-t-xlref"\nkernel = "{kernel}"\nramdisk = "{ramdisk}"\n'
                   'extra = "console=hvc0"\nmemory = 128\nvcpus = 1\n')
    run_tool("xl", "create", "-p", str(cfg))
    ref = guest_mod.resolve("pyxen-t-xlref", xs)
    g = guest_mod.build(spec("pyxen-t-mine", paused=True), xc=xc, xs=xs)

    def tree(domid):
        import re
        alias_id = lambda s: re.sub(rf"(?<![0-9]){domid}(?![0-9])", "ID", s)  # noqa: E731
        out = {}
        roots = [f"/local/domain/{domid}", f"/libxl/{domid}",
                 f"/local/domain/0/backend/console/{domid}"]
        vm = xs.read(f"/local/domain/{domid}/vm").decode()
        for root, alias in [(r, alias_id(r)) for r in roots] + [(vm, "/vm/U")]:
            for path, value in xs.walk(root):
                key = alias + alias_id(path[len(root):])
                perms = alias_id(str(xs.get_permissions(path)))
                out[key] = (value, perms)
        return out

    try:
        mine, theirs = tree(g.domid), tree(ref)
    finally:
        run_tool("xl", "destroy", "pyxen-t-xlref")
        guest_mod.destroy(g.domid, xc=xc, xs=xs, uuid=g.uuid)
    ours_only = {k for k in mine if "/pyxen" not in k} - set(theirs)
    missing = set(theirs) - set(mine) - {"/local/domain/ID/console/tty"}
    assert not missing and not ours_only, (sorted(missing), sorted(ours_only))
    varying = ("ring-ref", "port", "name", "/vm", "uuid", "start_time", "domid", "frontend-id",
               "frontend", "backend", "tty")
    for k, (value, perms) in theirs.items():
        if k in mine:
            assert mine[k][1] == perms, k
            if not k.endswith(varying):
                assert mine[k][0] == value, k


def test_boot_marker_then_poweroff_destroys(xc, xs, spec, guest_mod):
    g = guest_mod.build(spec("pyxen-t-boot", on_poweroff="destroy"), xc=xc, xs=xs)
    with guest_mod.Supervisor(xc=xc, xs=xs) as sup:
        sup.add(g)
        out = guest_mod.console_output(g.domid, timeout=BOOT_TIMEOUT, until=MARKER, xs=xs)
        assert MARKER in out, out[-2000:]
        line = out[out.index(MARKER):].splitlines()[0]
        assert "cpus=1" in line and "mem_kb=" in line
        events = sup.run(until=lambda evs: any(e.domid == g.domid for e in evs), timeout=120)
    assert [(e.reason, e.action.value) for e in events] == [("poweroff", "destroy")]
    assert guest_mod.wait_gone(xc, g.domid, 20)
    assert not xs.exists(f"/local/domain/{g.domid}") and not xs.exists(f"/vm/{g.uuid}")
    assert "pyxen-t-boot" not in xl_list()


def test_wait_guest_runs_and_xl_sees_it(xc, xs, spec, guest_mod):
    g = guest_mod.build(spec("pyxen-t-wait", "pyxen.action=wait pyxen.marker=WAIT-MARK"),
                        xc=xc, xs=xs)
    try:
        out = guest_mod.console_output(g.domid, timeout=BOOT_TIMEOUT, until="WAIT-MARK", xs=xs)
        assert "WAIT-MARK" in out, out[-2000:]
        time.sleep(2)
        info = xc.domain(g.domid)
        assert not info.shutdown and not info.paused
        assert xl_list()["pyxen-t-wait"][0] == g.domid
        # the guest's own xenstore connection works: its frontend wrote control features
        assert xs.get(f"/local/domain/{g.domid}/control/feature-poweroff") in (b"1", b"")
    finally:
        guest_mod.destroy(g.domid, xc=xc, xs=xs, uuid=g.uuid)
    assert guest_mod.wait_gone(xc, g.domid, 20)


def test_reboot_restarts_once(xc, xs, spec, guest_mod):
    g = guest_mod.build(spec("pyxen-t-reboot", "pyxen.action=reboot", on_reboot="restart"),
                        xc=xc, xs=xs)
    with guest_mod.Supervisor(xc=xc, xs=xs, max_restarts=1) as sup:
        sup.add(g)
        first = sup.run(until=lambda evs: len(evs) >= 1, timeout=BOOT_TIMEOUT)
        assert [(e.reason, e.action.value) for e in first] == [("reboot", "restart")], first
        new = first[0].new_domid
        assert new is not None and new != g.domid and first[0].error is None
        assert xl_list()["pyxen-t-reboot"][0] == new
        assert xs.read(f"/local/domain/{new}/vm") == f"/vm/{g.uuid}".encode()
        second = sup.run(until=lambda evs: len(evs) >= 1, timeout=BOOT_TIMEOUT)
        assert [(e.domid, e.reason) for e in second] == [(new, "reboot")], second
        assert second[0].new_domid is None and "limit" in second[0].error
    assert guest_mod.wait_gone(xc, new, 20) and guest_mod.wait_gone(xc, g.domid, 1)
    assert "pyxen-t-reboot" not in xl_list()


def test_rollback_missing_kernel(xc, xs, spec, guest_mod, tmp_path):
    before = snapshot(xc, xs)
    s = spec("pyxen-t-nokernel")
    with pytest.raises(guest_mod.KernelNotFoundError) as ei:
        guest_mod.build(guest_mod.BuildSpec(**{**s.__dict__, "kernel": str(tmp_path / "nope")}),
                        xc=xc, xs=xs)
    assert ei.value.step == "check_files" and "nope" in str(ei.value)
    assert ei.value.domid is None
    assert snapshot(xc, xs) == before


def test_rollback_memory_beyond_free(xc, xs, spec, guest_mod):
    before = snapshot(xc, xs)
    free_mb = xc.physinfo().free_memory_kb // 1024
    with pytest.raises(guest_mod.InsufficientMemoryError) as ei:
        guest_mod.build(spec("pyxen-t-bigmem", memory=free_mb + 64), xc=xc, xs=xs)
    assert ei.value.step == "check_host" and "free" in ei.value.reason
    assert snapshot(xc, xs) == before


def test_rollback_real_memory_failure(xc, xs, spec, guest_mod):
    """Skip pyxen's free-memory check: the hypervisor's own refusal is mapped and the
    half-built domain (created, event channels, p2m) is destroyed."""
    before = snapshot(xc, xs)
    free_mb = xc.physinfo().free_memory_kb // 1024
    with pytest.raises(guest_mod.InsufficientMemoryError) as ei:
        guest_mod.build(spec("pyxen-t-realmem", memory=free_mb + 64), xc=xc, xs=xs,
                        check_memory=False)
    assert ei.value.step.startswith("xc_dom_") and ei.value.domid is not None
    assert guest_mod.wait_gone(xc, ei.value.domid, 20)
    assert snapshot(xc, xs) == before


def test_rollback_bad_kernel_image(xc, xs, spec, guest_mod, guest_kit):
    """A file that is not a kernel fails inside libxenguest, after the domain exists."""
    before = snapshot(xc, xs)
    s = spec("pyxen-t-badimage")
    bad = guest_mod.BuildSpec(**{**s.__dict__, "kernel": "/etc/hostname"})
    with pytest.raises(guest_mod.BuildError) as ei:
        guest_mod.build(bad, xc=xc, xs=xs)
    assert ei.value.step in ("xc_dom_kernel_file", "xc_dom_parse_image"), ei.value
    assert ei.value.domid is not None
    assert guest_mod.wait_gone(xc, ei.value.domid, 20)
    assert snapshot(xc, xs) == before


def test_spec_errors_create_nothing(xc, xs, spec, guest_mod):
    before = snapshot(xc, xs)
    for bad in (dict(memory=0), dict(vcpus=-1), dict(name=""), dict(uuid="not-a-uuid"),
                dict(on_crash="explode"), dict(memory=64, maxmem=32)):
        kw = {**spec("pyxen-t-spec").__dict__, **bad}
        with pytest.raises(guest_mod.SpecError):
            guest_mod.build(guest_mod.BuildSpec(**kw), xc=xc, xs=xs)
    assert snapshot(xc, xs) == before


def test_duplicate_name_refused(xc, xs, spec, guest_mod):
    g = guest_mod.build(spec("pyxen-t-dup", paused=True), xc=xc, xs=xs)
    try:
        before = snapshot(xc, xs)
        with pytest.raises(guest_mod.SpecError) as ei:
            guest_mod.build(spec("pyxen-t-dup", paused=True), xc=xc, xs=xs)
        assert "already exists" in str(ei.value)
        assert snapshot(xc, xs) == before
    finally:
        guest_mod.destroy(g.domid, xc=xc, xs=xs, uuid=g.uuid)


def test_cli_build_paused(xc, xs, guest_kit, guest_mod):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "pyxen", "build", "--name", "pyxen-t-cli",
                        "--kernel", guest_kit["kernel"], "--ramdisk", guest_kit["ramdisk"],
                        "--memory", "128", "--extra", "console=hvc0", "-p"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    domid = guest_mod.resolve("pyxen-t-cli", xs)
    assert f"domid {domid}" in r.stdout and xc.domain(domid).paused
    guest_mod.destroy(domid, xc=xc, xs=xs)
    r = subprocess.run([sys.executable, "-m", "pyxen", "build", "--name", "pyxen-t-cli2",
                        "--kernel", "/nonexistent"], capture_output=True, text=True)
    assert r.returncode == 1 and "check_files" in r.stderr


def test_cli_console_interactive_ctrl_bracket_leaves(xc, xs, spec, guest_mod):
    """`pyxen console NAME` on a terminal: shows the guest's console, Ctrl-] leaves."""
    import pty
    import select
    import subprocess
    import sys
    g = guest_mod.build(spec("pyxen-t-console", "pyxen.action=wait pyxen.marker=CONSOLE-MARK"),
                        xc=xc, xs=xs)
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "pyxen", "console", "pyxen-t-console"],
                         stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    seen = b""
    try:
        end = time.monotonic() + BOOT_TIMEOUT
        # the init's line, not the kernel's echo of its command line early in the boot
        mark = b"CONSOLE-MARK uname="
        while mark not in seen and time.monotonic() < end:
            r, _, _ = select.select([master], [], [], 1)
            if r:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
        assert mark in seen, seen[-2000:]
        os.write(master, b"\x1d")
        # a terminal keeps reading: a full pty would block the console's write to it
        end = time.monotonic() + 30
        while p.poll() is None and time.monotonic() < end:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    os.read(master, 65536)
                except OSError:
                    pass
        assert p.wait(timeout=1) == 0
        d = xc.domain(g.domid)  # still up: neither shut down nor dying (it may be runnable,
        assert not (d.shutdown or d.dying or d.paused)  # i.e. neither r nor b, under load)
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
        os.close(master)
        guest_mod.destroy(g.domid, xc=xc, xs=xs, uuid=g.uuid)
    assert guest_mod.wait_gone(xc, g.domid, 20)


def test_crash_preserve_keeps_domain(xc, xs, spec, guest_mod):
    g = guest_mod.build(spec("pyxen-t-crash", "pyxen.action=crash", on_crash="preserve"),
                        xc=xc, xs=xs)
    try:
        with guest_mod.Supervisor(xc=xc, xs=xs) as sup:
            sup.add(g)
            events = sup.run(until=lambda evs: len(evs) >= 1, timeout=BOOT_TIMEOUT)
        assert [(e.domid, e.reason, e.action.value) for e in events] == \
            [(g.domid, "crash", "preserve")], events
        info = xc.domain(g.domid)
        assert info.crashed and info.state[4] == "c"
        assert xl_list()["pyxen-t-crash"][3] == info.state
        assert xs.read(f"/local/domain/{g.domid}/name") == b"pyxen-t-crash"
    finally:
        guest_mod.destroy(g.domid, xc=xc, xs=xs, uuid=g.uuid)
    assert guest_mod.wait_gone(xc, g.domid, 20)


def test_cli_console_unknown_name_is_xl_like_error(xs):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "pyxen", "console", "pyxen-t-no-such-guest"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "pyxen-t-no-such-guest is an invalid domain identifier" in r.stderr
    assert "Traceback" not in r.stderr
