"""pyxen.light against the real libxl in the lab dom0, compared with what `xl` sees.

One PV guest (the lab's guest kit) serves the module: created through pyxen.light, watched
on its console, paused, ballooned, vcpu-set, its config retrieved, and finally destroyed."""

import os
import re
import json
import select
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from pyxen.config import ConfigError, ConfigWarning, DomainConfig, parse_file, parse_string

from conftest import ConsoleReader, wait_for

DATA = Path(__file__).resolve().parents[1] / "host" / "data"
NAME = "pyxen-light-pv"
DISK = "/var/tmp/pyxen-light-disk.img"
DISK2 = "/var/tmp/pyxen-light-disk2.img"


def xl_list() -> dict:
    """`xl list` as {name: dict(id, mem, vcpus, state)}."""
    out = subprocess.run(["xl", "list"], check=True, capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines()[1:]:
        f = line.split()
        if len(f) >= 5:
            rows[f[0]] = {"id": int(f[1]), "mem": int(f[2]), "vcpus": int(f[3]),
                          "state": f[4]}
    return rows


def xl_block_list(dom) -> list[int]:
    """The devids (Vdev column) `xl block-list` prints."""
    out = subprocess.run(["xl", "block-list", str(dom)], check=True, capture_output=True,
                         text=True).stdout
    return sorted(int(line.split()[0]) for line in out.splitlines()[1:] if line.strip())


@pytest.fixture(scope="module")
def ctx():
    import pyxen.light
    with pyxen.light.open() as c:
        yield c


@pytest.fixture(scope="module")
def pv_config(guest_kit):
    with open(DISK, "wb") as f:
        f.truncate(16 << 20)
    text = f"""
name = '{NAME}'
kernel = '{guest_kit["kernel"]}'
ramdisk = '{guest_kit["ramdisk"]}'
extra = 'console=hvc0 pyxen.action=wait'
memory = 128
vcpus = 2
vif = ['bridge=xenbr0']
disk = ['format=raw, vdev=xvda, access=rw, target={DISK}']
on_crash = 'preserve'
"""
    return parse_string(text, filename="pyxen-light-pv.cfg")


@pytest.fixture(scope="module")
def guest(ctx, pv_config):
    assert NAME not in xl_list()
    t0 = time.monotonic()
    domid = ctx.create(pv_config, paused=True)
    console = None
    try:
        console = ConsoleReader(ctx.console_tty(domid))
        assert ctx.info(domid).paused and "p" in xl_list()[NAME]["state"]
        ctx.unpause(domid)
        print(f"created {NAME} as domain {domid} in {time.monotonic() - t0:.1f}s")
        # the guest is up when its init prints the marker on hvc0
        assert wait_for(lambda: b"PYXEN-GUEST-OK" in console.data, 300), console.data[-2000:]
        print(f"guest up after {time.monotonic() - t0:.1f}s")
        yield {"domid": domid, "console": console}
    finally:
        if console:
            console.close()
        if ctx.exists(domid):
            ctx.destroy(domid)
        os.unlink(DISK)


# ---- config conversion through libxl (needs a ctx, so a lab test) ---------------------

@pytest.mark.parametrize("name", ["winxp.cfg", "linux.cfg", "xlexample.hvm",
                                  "xlexample.pvlinux", "xlexample.pvhlinux"])
def test_round_trip_through_libxl(ctx, name):
    """config → libxl JSON → libxl_domain_config (from_json) → JSON (to_json) → config."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        cfg = parse_file(DATA / name)
    js = ctx.config_to_libxl(cfg)
    assert js["c_info"]["name"] == cfg.name
    back = DomainConfig.from_libxl_json(js, like=cfg)
    assert back == cfg
    assert ctx.config_to_libxl(back) == js  # a fixed point


def test_libxl_rejects_bad_json(ctx):
    from pyxen.light import LibxlError
    with pytest.raises(LibxlError) as ei:
        ctx.config_to_libxl({"c_info": {"type": "no-such-type", "name": "x"}})
    assert ei.value.call == "libxl_domain_config_from_json"


# ---- lookups and errors ---------------------------------------------------------------

def test_list_has_dom0(ctx):
    doms = ctx.list()
    assert doms[0].domid == 0 and doms[0].name == "Domain-0"
    d0 = ctx.info("Domain-0")
    assert d0.domid == 0 and not d0.dying
    assert abs(d0.memory_mb - xl_list()["Domain-0"]["mem"]) <= 1


def test_unknown_domain(ctx):
    from pyxen.light import DomainNotFound
    with pytest.raises(DomainNotFound):
        ctx.info("no-such-domain")
    with pytest.raises(DomainNotFound):
        ctx.info(4000)
    with pytest.raises(DomainNotFound):
        ctx.pause(4000)
    with pytest.raises(DomainNotFound):
        ctx.destroy("no-such-domain")


def test_create_missing_kernel_leaves_nothing(ctx):
    from pyxen.light import LibxlError
    cfg = parse_string("name='pyxen-light-bad'\nkernel='/nonexistent/vmlinuz'\nmemory=32\n")
    before = {d.domid for d in ctx.list()}
    with pytest.raises(LibxlError) as ei:
        ctx.create(cfg)
    assert ei.value.call == "libxl_domain_create_new"
    assert "pyxen-light-bad" not in xl_list()
    assert wait_for(lambda: {d.domid for d in ctx.list()} == before, 30)
    assert not ctx.exists("pyxen-light-bad")


# ---- the guest ------------------------------------------------------------------------

def test_guest_runs_and_xl_agrees(ctx, guest):
    domid = guest["domid"]
    row = xl_list()[NAME]
    assert row["id"] == domid
    info = ctx.info(NAME)
    assert info.domid == domid and info.name == NAME
    assert info.type is not None and info.type.value == "pv"
    assert abs(info.memory_mb - row["mem"]) <= 1
    assert info.vcpu_online == row["vcpus"] == 2
    mine = {d.name: d for d in ctx.list()}
    assert set(mine) == set(xl_list())
    for name, r in xl_list().items():
        assert mine[name].domid == r["id"]
        assert mine[name].vcpu_online == r["vcpus"]


def test_console_shows_marker(guest):
    con = guest["console"]
    line = re.search(rb"PYXEN-GUEST-OK[^\r\n]*", con.data).group(0).decode()
    assert "cpus=2" in line
    assert "xvda" in line  # the file-backed disk reached the guest


def test_retrieve_config(ctx, guest, pv_config):
    got = ctx.retrieve_config(NAME)
    assert got.name == NAME and got.type == pv_config.type
    assert got.kernel == pv_config.kernel and got.ramdisk == pv_config.ramdisk
    assert got.cmdline == pv_config.cmdline
    assert got.memory == 128 and got.vcpus == 2
    assert [n.mac for n in got.nics] == [n.mac for n in pv_config.nics]
    assert got.nics[0].bridge == "xenbr0"
    assert [d.vdev for d in got.disks] == ["xvda"]
    assert got.disks[0].pdev_path == DISK


def test_pause_unpause_seen_by_xl(ctx, guest):
    ctx.pause(NAME)
    try:
        assert "p" in xl_list()[NAME]["state"]
        assert ctx.info(NAME).paused
    finally:
        ctx.unpause(guest["domid"])
    assert "p" not in xl_list()[NAME]["state"]
    assert not ctx.info(NAME).paused


def test_mem_set_seen_by_xl(ctx, guest, xs):
    ctx.mem_set(NAME, 96)
    domid = guest["domid"]
    assert xs.read(f"/local/domain/{domid}/memory/target") == b"98304"
    # the guest's balloon driver gives the memory back; xl list shows it
    assert wait_for(lambda: xl_list()[NAME]["mem"] <= 97, 120), xl_list()[NAME]


def test_vcpu_set_seen_by_xl(ctx, guest, xs):
    ctx.set_vcpus_online(NAME, 1)
    assert xs.read(f"/local/domain/{guest['domid']}/cpu/1/availability") == b"offline"
    assert wait_for(lambda: xl_list()[NAME]["vcpus"] == 1, 120), xl_list()[NAME]
    assert ctx.info(NAME).vcpu_online == 1
    # Back up: libxl marks vcpu 1 available in xenstore; onlining it is the guest's job
    # (udev in a full distro; the lab's busybox guest has none), so check libxl's side.
    ctx.set_vcpus_online(NAME, 2)
    assert xs.read(f"/local/domain/{guest['domid']}/cpu/1/availability") == b"online"
    assert xs.read(f"/local/domain/{guest['domid']}/cpu/0/availability") == b"online"
    from pyxen.light import LibxlInvalid
    with pytest.raises(LibxlInvalid):
        ctx.set_vcpus_online(NAME, 3)


def pyxen_cli(*argv):
    return subprocess.run([sys.executable, "-m", "pyxen", *argv], capture_output=True,
                          text=True)


def test_cli_verbs(ctx, guest):
    domid = guest["domid"]
    r = pyxen_cli("pause", NAME, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"domid": domid, "name": NAME, "action": "pause"}
    assert "p" in xl_list()[NAME]["state"]
    r = pyxen_cli("unpause", str(domid))
    assert r.returncode == 0 and r.stdout == "", r.stderr
    assert "p" not in xl_list()[NAME]["state"]
    r = pyxen_cli("mem-set", str(domid), "100m", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["target_kb"] == 102400
    r = pyxen_cli("vcpu-set", NAME, "2")
    assert r.returncode == 0, r.stderr
    for verb in ("destroy", "pause", "shutdown"):
        r = pyxen_cli(verb, "no-such-domain")
        assert r.returncode == 1 and r.stderr.startswith("pyxen: "), r
        assert "no-such-domain is an invalid domain identifier (rc=-6)" in r.stderr
    r = pyxen_cli("mem-set", NAME, "lots")
    assert r.returncode == 1 and "invalid memory size" in r.stderr


def test_cli_create_bad_config(tmp_path):
    bad = tmp_path / "bad.cfg"
    bad.write_text("name='x'\nmemory=128\nfrobnicate=1\n")
    r = pyxen_cli("create", str(bad))
    assert r.returncode == 1
    assert f"{bad}:3: frobnicate: unknown key" in r.stderr
    assert "x" not in xl_list()


@pytest.fixture
def disk2():
    """A loop device over a file (set up with losetup, a test tool): the block hotplug
    script then has no losetup of its own to do."""
    with open(DISK2, "wb") as f:
        f.truncate(8 << 20)
    dev = subprocess.run(["losetup", "-f", "--show", DISK2], check=True, capture_output=True,
                         text=True).stdout.strip()
    yield dev
    subprocess.run(["losetup", "-d", dev], check=False)
    os.unlink(DISK2)


def test_block_attach_list_detach(ctx, guest, disk2):
    from pyxen.light import LibxlError
    before = ctx.disk_list(NAME)
    assert [d.vdev for d in before] == ["xvda"]
    assert [d.devid for d in before] == xl_block_list(NAME)
    t0 = time.monotonic()
    ctx.disk_add(NAME, f"format=raw, vdev=xvdb, access=rw, target={disk2}")
    print(f"disk_add took {time.monotonic() - t0:.1f}s")
    try:
        mine = {d.vdev: d for d in ctx.disk_list(NAME)}
        assert set(mine) == {"xvda", "xvdb"}
        assert sorted(d.devid for d in mine.values()) == xl_block_list(NAME)
        assert mine["xvdb"].disk.pdev_path == disk2 and mine["xvdb"].disk.readwrite
        assert mine["xvdb"].backend.startswith("/local/domain/0/backend/vbd/")
        # the guest's blkfront connects (xenbus state 4)
        assert wait_for(lambda: {d.vdev: d for d in ctx.disk_list(NAME)}["xvdb"].state == 4,
                        90)
    finally:
        ctx.disk_remove(NAME, "xvdb")
    assert wait_for(lambda: len(xl_block_list(NAME)) == 1, 60), xl_block_list(NAME)
    assert [d.vdev for d in ctx.disk_list(NAME)] == ["xvda"]
    with pytest.raises(LibxlError):
        ctx.disk_remove(NAME, "xvdz")
    with pytest.raises(ConfigError):
        ctx.disk_add(NAME, "format=raw, access=rw")  # no vdev
    assert len(xl_block_list(NAME)) == 1


def test_cli_block(guest, disk2):
    r = pyxen_cli("block-attach", NAME, f"format=raw,vdev=xvdc,access=ro,target={disk2}")
    assert r.returncode == 0, r.stderr
    assert len(xl_block_list(NAME)) == 2
    r = pyxen_cli("block-list", NAME, "--json")
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    assert sorted(d["devid"] for d in listed) == xl_block_list(NAME)
    xvdc = [d for d in listed if d["disk"]["vdev"] == "xvdc"][0]
    assert xvdc["disk"]["readwrite"] is False
    r = pyxen_cli("block-list", str(guest["domid"]))
    assert r.stdout.splitlines()[0].split() == ["Vdev", "BE", "handle", "state", "evt-ch",
                                                "ring-ref", "BE-path"]
    r = pyxen_cli("block-detach", NAME, str(xvdc["devid"]))
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: len(xl_block_list(NAME)) == 1, 60), xl_block_list(NAME)


def xl_network_list(dom) -> list[str]:
    """The MACs `xl network-list` prints."""
    out = subprocess.run(["xl", "network-list", str(dom)], check=True, capture_output=True,
                         text=True).stdout
    return sorted(line.split()[2] for line in out.splitlines()[1:] if line.strip())


def test_nic_add_list_remove(ctx, guest, pv_config):
    from pyxen.light import LibxlError
    before = ctx.nic_list(NAME)
    assert [n.mac for n in before] == [n.mac for n in pv_config.nics]
    assert sorted(n.mac for n in before) == xl_network_list(NAME)
    assert before[0].nic.bridge == "xenbr0"
    new = ctx.nic_add(NAME, "bridge=xenbr0,mac=00:16:3e:5a:17:01")
    try:
        assert new.mac == "00:16:3e:5a:17:01" and new.devid != before[0].devid
        assert xl_network_list(NAME) == sorted([before[0].mac, new.mac])
        # the guest's netfront connects (xenbus state 4)
        assert wait_for(lambda: {n.mac: n for n in ctx.nic_list(NAME)}[new.mac].state == 4,
                        90)
    finally:
        ctx.nic_remove(NAME, "00:16:3e:5a:17:01")
    assert wait_for(lambda: xl_network_list(NAME) == [before[0].mac], 60), \
        xl_network_list(NAME)
    with pytest.raises(LibxlError):
        ctx.nic_remove(NAME, "00:16:3e:00:00:99")


def xl_vcpu_hard(dom) -> dict:
    out = subprocess.run(["xl", "vcpu-list", str(dom)], check=True, capture_output=True,
                         text=True).stdout
    rows = {}
    for line in out.splitlines()[1:]:
        p = line.split()
        rows[int(p[2])] = " ".join(p[6:]).split(" / ")[0].strip()
    return rows


def test_vcpu_pin_seen_by_xl(ctx, guest):
    from pyxen.light import LibxlInvalid
    ncpus = ctx.max_cpus()
    target = "1" if ncpus > 1 else "0"
    ctx.vcpu_pin(NAME, 0, target)
    assert xl_vcpu_hard(NAME)[0] == target
    assert ctx.vcpu_list(NAME)[0].hard == {int(target)}
    r = pyxen_cli("vcpu-pin", str(guest["domid"]), "all", "all", "--json")
    assert r.returncode == 0, r.stderr
    assert all(v["hard"] == list(range(ncpus)) for v in json.loads(r.stdout)["vcpus"])
    assert set(xl_vcpu_hard(NAME).values()) == {"all"}
    with pytest.raises(LibxlInvalid):
        ctx.vcpu_pin(NAME, 0, str(ncpus + 7))
    with pytest.raises(LibxlInvalid):
        ctx.vcpu_pin(NAME, 9, "0")
    r = pyxen_cli("vcpu-pin", "no-such-domain", "0", "0")
    assert r.returncode == 1 and "no-such-domain is an invalid domain identifier" in r.stderr


def _kit_cfg(guest_kit, name, action, *, more=""):
    return parse_string(f"""
name = '{name}'
kernel = '{guest_kit["kernel"]}'
ramdisk = '{guest_kit["ramdisk"]}'
extra = 'console=hvc0 pyxen.action={action}'
memory = 128
vcpus = 1
{more}""", filename=f"{name}.cfg")


def test_create_async_and_death_notification(ctx, guest_kit):
    """create_async (libxl ao with for_event), then libxl_evenable_domain_death: the guest
    powers itself off (DOMAIN_SHUTDOWN, reason poweroff); destroying it gives DOMAIN_DEATH."""
    from pyxen.light import EventType, ShutdownReason
    name = "pyxen-light-async"
    op = ctx.create_async(_kit_cfg(guest_kit, name, "poweroff"), paused=True)
    try:
        domid = op.wait(timeout=300)
        assert op.done and op.console_available and op.domid == domid
        assert xl_list()[name]["id"] == domid and "p" in xl_list()[name]["state"]
        with ctx.watch_death(name) as w:
            ctx.unpause(domid)
            ev = w.wait_for(EventType.DOMAIN_SHUTDOWN, timeout=300)
            assert ev is not None, "no DOMAIN_SHUTDOWN event"
            assert ev.domid == domid and ev.shutdown_reason == ShutdownReason.POWEROFF
            assert ctx.info(domid).shutdown  # no xl daemon: the domain stays, shut down
            ctx.destroy(domid)
            ev = w.wait_for(EventType.DOMAIN_DEATH, timeout=60)
            assert ev is not None and ev.domid == domid
        assert not ctx.exists(name)
    finally:
        if ctx.exists(name):
            ctx.destroy(name)


def test_create_async_failure_leaves_nothing(ctx):
    from pyxen.light import LibxlError
    cfg = parse_string("name='pyxen-light-bad2'\nkernel='/nonexistent/vmlinuz'\nmemory=32\n")
    before = {d.domid for d in ctx.list()}
    try:
        op = ctx.create_async(cfg)
    except LibxlError as e:  # libxl may fail it before going asynchronous
        assert e.call == "libxl_domain_create_new"
    else:
        with pytest.raises(LibxlError) as ei:
            op.wait(timeout=120)
        assert ei.value.call == "libxl_domain_create_new" and op.done
    assert wait_for(lambda: {d.domid for d in ctx.list()} == before, 30)


def _read_pty(fd, until: bytes, timeout: float) -> bytes:
    buf = b""
    end = time.monotonic() + timeout
    while until not in buf and time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 1)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    return buf


def _cli_under_pty(*argv):
    import pty
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-m", "pyxen", *argv])
    return pid, fd


def test_cli_create_c_and_console_by_name(ctx, guest_kit, tmp_path):
    """`pyxen create -c` attaches the console while the guest boots; `pyxen console NAME`
    (a name, not an id) shows what the guest prints next. Both under a pty, as a user."""
    name = "pyxen-light-console"
    cfg = tmp_path / f"{name}.cfg"
    cfg.write_text(f"name='{name}'\nkernel='{guest_kit['kernel']}'\n"
                   f"ramdisk='{guest_kit['ramdisk']}'\n"
                   "extra='console=hvc0 pyxen.action=watch pyxen.marker=PYXEN-LIGHT-CON'\n"
                   "memory=128\nvcpus=1\n")
    pid, fd = _cli_under_pty("create", "-c", str(cfg))
    try:
        out = _read_pty(fd, b"PYXEN-LIGHT-CON uname=", 300)
        assert b"PYXEN-LIGHT-CON uname=" in out, out[-2000:]
        assert f"Domain {name} created as domid".encode() in out
        os.write(fd, b"\x1d")  # Ctrl-] leaves the console
        assert os.waitpid(pid, 0)[1] == 0
        os.close(fd)
        pid, fd = _cli_under_pty("console", name)
        time.sleep(1)
        ctx.nic_add(name, "bridge=xenbr0,mac=00:16:3e:5a:17:02")
        out = _read_pty(fd, b"mac=00:16:3e:5a:17:02", 120)
        assert b"PYXEN-NET" in out and b"mac=00:16:3e:5a:17:02" in out, out[-2000:]
        os.write(fd, b"\x1d")
        assert os.waitpid(pid, 0)[1] == 0
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
        if ctx.exists(name):
            ctx.destroy(name)


HVM_NAME = "pyxen-light-hvm"


def test_hvm_create_and_vnc(ctx, guest_kit, tmp_path):
    """An HVM guest (hvmloader + qemu-xen from the dom0, direct kernel boot, a vif, a
    file-backed disk, VNC on) through pyxen.light; its VNC address as libxl recorded it."""
    img = tmp_path / "hvm.img"
    with open(img, "wb") as f:
        f.truncate(16 << 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        cfg = _kit_cfg(guest_kit, HVM_NAME, "wait", more=f"""
builder = 'hvm'
device_model = '/usr/lib/xen/bin/qemu-dm'
device_model_version = 'qemu-xen'
disk = ['format=raw,vdev=hda,access=rw,target={img}']
vif = ['bridge=xenbr0,mac=00:16:3e:38:d4:15']
serial = 'pty'
boot = 'c'
vnc = 1
vncviewer = 0
vnclisten = '127.0.0.1'
sdl = 0
""")
    assert cfg.device_model_version == "qemu-xen"
    op = ctx.create_async(cfg.replace(memory=256))
    try:
        domid = op.wait(timeout=600)
        assert xl_list()[HVM_NAME]["id"] == domid
        info = ctx.info(HVM_NAME)
        assert info.type is not None and info.type.value == "hvm"
        vnc = ctx.vnc(HVM_NAME, timeout=60)
        assert vnc.domid == domid and vnc.host == "127.0.0.1" and vnc.port >= 5900
        from pyxen.xenstore import open as xs_open
        with xs_open() as xs:
            assert xs.read(f"/local/domain/{domid}/console/vnc-port") == str(vnc.port).encode()
        r = pyxen_cli("vnc", HVM_NAME, "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["port"] == vnc.port
        r = pyxen_cli("vnc", str(domid))
        assert r.returncode == 0 and r.stdout.startswith(f"127.0.0.1:{vnc.display} "), r
    finally:
        if ctx.exists(HVM_NAME):
            ctx.destroy(HVM_NAME)
    assert wait_for(lambda: HVM_NAME not in xl_list(), 60)


def test_vnc_of_pv_guest_is_typed(ctx, guest):
    from pyxen.light import LibxlError
    with pytest.raises(LibxlError) as ei:
        ctx.vnc(NAME)
    assert ei.value.code == "NOTFOUND"
    r = pyxen_cli("vnc", NAME)
    assert r.returncode == 1 and r.stderr.startswith("pyxen: ")


def test_destroy_removes_domain(ctx, guest):
    ctx.destroy(NAME)
    assert wait_for(lambda: NAME not in xl_list(), 60)
    assert not ctx.exists(NAME)
    assert not ctx.exists(guest["domid"])
