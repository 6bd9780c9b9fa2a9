"""PVH guests on real Xen: built in-process by pyxen.guest (an HVM container, no device
model, the lab kernel at its PVH entry point, the PV console) and through libxl
(pyxen.light with a ``type='pvh'`` DomainConfig); xl and xenstore are the reference."""

import re
import subprocess
import sys

import pytest

from conftest import ConsoleReader, run_tool, wait_for

MARKER = "PYXEN-PVH-OK"
BOOT_TIMEOUT = 600  # a PVH kernel runs nested under TCG: slower than PV; the CPU is shared


@pytest.fixture
def G():
    import pyxen.guest
    return pyxen.guest


@pytest.fixture
def spec(guest_kit, G):
    def make(name, extra="pyxen.action=wait", **kw):
        return G.BuildSpec(name=name, type="pvh", kernel=guest_kit["kernel"],
                           ramdisk=guest_kit["ramdisk"], memory=kw.pop("memory", 128),
                           cmdline=f"console=hvc0 {extra}".strip(), **kw)
    return make


@pytest.fixture(autouse=True)
def no_leftovers(xc, xs, G):
    before = {d.domid for d in xc.domains()}
    yield
    for name, domid in G.domain_names(xs).items():
        if name.startswith("pyxen-t-") and domid not in before:
            G.destroy(domid, xc=xc, xs=xs)


def xl_list() -> dict:
    out = {}
    for line in run_tool("xl", "list").splitlines()[1:]:
        f = line.split()
        if len(f) >= 6:
            out[f[0]] = (int(f[1]), int(f[2]), int(f[3]), f[4])
    return out


def snapshot(xc, xs):
    ls = lambda p: set(xs.ls(p)) if xs.exists(p) else set()  # noqa: E731
    return ({d.domid for d in xc.domains()}, ls("/local/domain"), ls("/vm"), ls("/libxl"),
            ls("/local/domain/0/backend/console"), ls("/local/domain/0/device-model"))


def test_pvh_boots_to_marker_and_destroy_leaves_nothing(xc, xs, spec, G):
    before = snapshot(xc, xs)
    g = G.build(spec("pyxen-t-pvh", f"pyxen.action=wait pyxen.marker={MARKER}", vcpus=2),
                xc=xc, xs=xs)
    try:
        info = xc.domain(g.domid)
        assert info.hvm and not info.paused
        assert g.device_model_pid is None
        d = f"/local/domain/{g.domid}"
        assert xs.read(f"/libxl/{g.domid}/type") == b"pvh"
        assert xs.read(f"{d}/console/type") == b"xenconsoled"
        assert xs.read(f"{d}/store/ring-ref") == str(g.store_mfn).encode()
        assert not xs.exists(f"/vm/{g.uuid}/image") and not xs.exists(f"{d}/platform")
        out = G.console_output(g.domid, timeout=BOOT_TIMEOUT, until=f"{MARKER} uname=", xs=xs)
        assert f"{MARKER} uname=" in out, out[-3000:]
        line = out[out.index(f"{MARKER} uname="):].splitlines()[0]
        # both vCPUs: the guest found the second one in pyxen's ACPI MADT
        assert "cpus=2" in line and "mem_kb=" in line, line
        lst = xl_list()
        assert lst["pyxen-t-pvh"][0] == g.domid
        info = xc.domain(g.domid)
        assert not (info.shutdown or info.dying or info.paused)
        assert lst["pyxen-t-pvh"][1] == info.memory_kb // 1024
        # the guest's own xenstore connection works: xenbus wrote its control features
        assert wait_for(lambda: xs.get(f"{d}/control/feature-poweroff") == b"1", 60)
    finally:
        G.destroy(g.domid, xc=xc, xs=xs, uuid=g.uuid)
    assert G.wait_gone(xc, g.domid, 30)
    assert "pyxen-t-pvh" not in xl_list()
    assert snapshot(xc, xs) == before


def test_pvh_xenstore_tree_matches_xl(xc, xs, spec, G, guest_kit, tmp_path):
    """The same PVH guest from `xl create -p` and from pyxen: the same xenstore paths and
    permissions, the same values where they do not depend on the build."""
    cfg = tmp_path / "pvh.cfg"
    cfg.write_text(f'type = "pvh"\nname = "pyxen-t-pvhref"\nkernel = "{guest_kit["kernel"]}"\n'
                   f'ramdisk = "{guest_kit["ramdisk"]}"\nextra = "console=hvc0"\n'
                   'memory = 128\nvcpus = 1\n')
    run_tool("xl", "create", "-p", str(cfg))
    ref = G.resolve("pyxen-t-pvhref", xs)
    g = G.build(spec("pyxen-t-pvhmine", "", paused=True), xc=xc, xs=xs)

    def tree(domid):
        alias_id = lambda s: re.sub(rf"(?<![0-9]){domid}(?![0-9])", "ID", s)  # noqa: E731
        out = {}
        roots = [f"/local/domain/{domid}", f"/libxl/{domid}",
                 f"/local/domain/0/backend/console/{domid}"]
        vm = xs.read(f"/local/domain/{domid}/vm").decode()
        for root, alias in [(r, alias_id(r)) for r in roots] + [(vm, "/vm/U")]:
            for path, value in xs.walk(root):
                out[alias + alias_id(path[len(root):])] = (value, alias_id(
                    str(xs.get_permissions(path))))
        return out

    try:
        theirs_info, mine_info = xc.domain(ref), xc.domain(g.domid)
        mine, theirs = tree(g.domid), tree(ref)
    finally:
        run_tool("xl", "destroy", "pyxen-t-pvhref")
        G.destroy(g.domid, xc=xc, xs=xs, uuid=g.uuid)
    assert theirs_info.hvm and mine_info.hvm
    ours_only = {k for k in mine if "/pyxen" not in k} - set(theirs)
    missing = set(theirs) - set(mine) - {"/local/domain/ID/console/tty"}
    assert not missing and not ours_only, (sorted(missing), sorted(ours_only))
    varying = ("ring-ref", "port", "name", "/vm", "uuid", "start_time", "domid", "frontend-id",
               "frontend", "backend", "tty")
    for k, (value, perms) in theirs.items():
        assert mine[k][1] == perms, k
        if not k.endswith(varying):
            assert mine[k][0] == value, k
    # the HVM special pages: xenstore and console rings at the same guest frames as libxl's
    assert mine["/local/domain/ID/store/ring-ref"] == theirs["/local/domain/ID/store/ring-ref"]
    assert mine["/local/domain/ID/console/ring-ref"] == \
        theirs["/local/domain/ID/console/ring-ref"]


def test_pvh_bad_specs_create_nothing(xc, xs, spec, G):
    before = snapshot(xc, xs)
    for bad in (dict(memory=0), dict(maxmem=256), dict(vnc=True), dict(boot="c"),
                dict(features="writable_page_tables"), dict(serial="pty"),
                dict(device_model="/usr/libexec/xen-qemu-system-i386")):
        with pytest.raises(G.SpecError):
            G.build(G.BuildSpec(**{**spec("pyxen-t-pvhbad").__dict__, **bad}), xc=xc, xs=xs)
    with pytest.raises(G.KernelNotFoundError) as ei:
        G.build(G.BuildSpec(**{**spec("pyxen-t-pvhbad").__dict__, "kernel": None}),
                xc=xc, xs=xs)
    assert ei.value.step == "check_files" and ei.value.domid is None
    assert snapshot(xc, xs) == before


def test_pvh_rollback_not_a_kernel(xc, xs, spec, G):
    """A file that is no PVH kernel fails inside libxenguest, after the domain exists."""
    before = snapshot(xc, xs)
    with pytest.raises(G.BuildError) as ei:
        G.build(G.BuildSpec(**{**spec("pyxen-t-pvhnok").__dict__, "kernel": "/etc/hostname"}),
                xc=xc, xs=xs)
    assert ei.value.step in ("xc_dom_kernel_file", "xc_dom_parse_image"), ei.value
    assert ei.value.domid is not None
    assert G.wait_gone(xc, ei.value.domid, 30)
    assert snapshot(xc, xs) == before


def test_pvh_rollback_real_memory_failure(xc, xs, spec, G):
    before = snapshot(xc, xs)
    free_mb = xc.physinfo().free_memory_kb // 1024
    with pytest.raises(G.InsufficientMemoryError) as ei:
        G.build(spec("pyxen-t-pvhmem", memory=free_mb + 64), xc=xc, xs=xs, check_memory=False)
    assert ei.value.domid is not None
    assert G.wait_gone(xc, ei.value.domid, 30)
    assert snapshot(xc, xs) == before


def test_cli_build_pvh_paused(xc, xs, guest_kit, G):
    r = subprocess.run([sys.executable, "-m", "pyxen", "build", "--pvh", "--name",
                        "pyxen-t-pvhcli", "--kernel", guest_kit["kernel"], "--ramdisk",
                        guest_kit["ramdisk"], "--memory", "128", "--extra", "console=hvc0",
                        "-p"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    domid = G.resolve("pyxen-t-pvhcli", xs)
    try:
        info = xc.domain(domid)
        assert f"domid {domid}" in r.stdout and info.paused and info.hvm
        assert xs.read(f"/libxl/{domid}/type") == b"pvh"
        assert "pyxen-t-pvhcli" in xl_list()
    finally:
        G.destroy(domid, xc=xc, xs=xs)
    assert G.wait_gone(xc, domid, 30)


def test_pvh_through_libxl_boots_to_marker(xc, xs, guest_kit):
    """The same guest kit as a ``type='pvh'`` DomainConfig created through libxl."""
    import pyxen.light
    from pyxen.config import DomainType, parse_string
    cfg = parse_string(f"type = 'pvh'\nname = 'pyxen-t-pvhlight'\n"
                       f"kernel = '{guest_kit['kernel']}'\nramdisk = '{guest_kit['ramdisk']}'\n"
                       f"extra = 'console=hvc0 pyxen.action=wait pyxen.marker={MARKER}'\n"
                       "memory = 128\nvcpus = 1\n", filename="pvh.cfg")
    assert cfg.type == DomainType.PVH
    with pyxen.light.open() as ctx:
        domid = ctx.create(cfg, paused=True)
        console = None
        try:
            assert xc.domain(domid).hvm
            assert run_tool("xenstore-read", f"/libxl/{domid}/type").strip() == "pvh"
            console = ConsoleReader(ctx.console_tty(domid))
            ctx.unpause(domid)
            assert wait_for(lambda: f"{MARKER} uname=".encode() in console.data,
                            BOOT_TIMEOUT), console.data[-3000:]
            assert xl_list()["pyxen-t-pvhlight"][0] == domid
        finally:
            if console:
                console.close()
            if ctx.exists(domid):
                ctx.destroy(domid)
    assert "pyxen-t-pvhlight" not in xl_list()
    assert wait_for(lambda: not xs.exists(f"/local/domain/{domid}"), 30)
