"""pyxen.devices against real blkback/netback and a real guest's blkfront/netfront.

One PV guest (created with `xl create`, so that xl's own block-attach works on it too) runs
the guest kit with ``pyxen.action=watch``: it prints a PYXEN-DISK line (head bytes, ro flag,
write test) for each new disk, PYXEN-DISK-GONE when one goes, PYXEN-NET for each new NIC."""

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import ConsoleReader, loops_of, run_tool, wait_for

NAME = "pyxen-dev-pv"
IMG = "/var/tmp/pyxen-dev-{}.img"
PATTERN = bytes.fromhex("50595845 4e2d4445 56530102 03f0fe42".replace(" ", ""))
BRIDGE = "pyxbr0"


def make_img(tag: str, size=8 << 20, pattern=PATTERN) -> str:
    path = IMG.format(tag)
    with open(path, "wb") as f:
        f.truncate(size)
        f.write(pattern)
    return path


def xl_block_rows(dom) -> dict:
    out = run_tool("xl", "block-list", str(dom))
    return {int(l.split()[0]): l.split() for l in out.splitlines()[1:] if l.strip()}


def xl_network_rows(dom) -> dict:
    out = run_tool("xl", "network-list", str(dom))
    return {int(l.split()[0]): l.split() for l in out.splitlines()[1:] if l.strip()}


def xl_block_attach(dom, spec: str) -> None:
    """`xl block-attach`; once more if libxl killed its block script for taking longer
    than libxl's 10 s hotplug timeout (the emulated lab can be that slow)."""
    r = subprocess.run(["xl", "block-attach", str(dom), spec], capture_output=True, text=True)
    if r.returncode and "async_exec_timeout" in r.stderr:
        print("xl block-attach: hotplug script timed out; retrying")
        r = subprocess.run(["xl", "block-attach", str(dom), spec], capture_output=True,
                           text=True)
    assert r.returncode == 0, r.stderr


def entries_gone(xs, domid, kind, devid) -> bool:
    return not any(xs.exists(p) for p in (
        f"/local/domain/{domid}/device/{kind}/{devid}",
        f"/local/domain/0/backend/{kind}/{domid}/{devid}",
        f"/libxl/{domid}/device/{kind}/{devid}"))


@pytest.fixture(scope="module")
def dev():
    import pyxen.devices as D
    with D.Devices() as d:
        yield d


@pytest.fixture(scope="module")
def guest(guest_kit, tmp_path_factory):
    cfg = tmp_path_factory.mktemp("dev") / "guest.cfg"
    cfg.write_text(f"""name = '{NAME}'
kernel = '{guest_kit["kernel"]}'
ramdisk = '{guest_kit["ramdisk"]}'
extra = 'console=hvc0 pyxen.action=watch pyxen.marker=PYXEN-DEV-UP'
memory = 128
vcpus = 1
on_crash = 'preserve'
""")
    subprocess.run(["xl", "destroy", NAME], capture_output=True)
    t0 = time.monotonic()
    subprocess.run(["xl", "create", "-p", str(cfg)], check=True, capture_output=True)
    console = None
    try:
        domid = int(run_tool("xl", "domid", NAME).strip())
        import pyxen.xenstore as X
        with X.open() as xs:
            tty = xs.read_str(f"/local/domain/{domid}/console/tty")
        console = ConsoleReader(tty)
        run_tool("xl", "unpause", NAME)
        assert console.wait(r"PYXEN-DEV-UP", 300), console.text()[-2000:]
        print(f"guest {domid} up after {time.monotonic() - t0:.1f}s")
        yield {"domid": domid, "console": console}
    finally:
        if console:
            console.close()
        subprocess.run(["xl", "destroy", NAME], capture_output=True)
        for tag in ("file", "ro", "xl", "px", "cli", "bad"):
            if os.path.exists(IMG.format(tag)):
                os.chmod(IMG.format(tag), 0o644)
                os.unlink(IMG.format(tag))


def snapshot(xs, domid) -> dict:
    """Every xenstore node under the guest's device dirs (to show nothing was written)."""
    out = {}
    for base in (f"/local/domain/{domid}/device", f"/local/domain/0/backend/vbd/{domid}",
                 f"/local/domain/0/backend/vif/{domid}", f"/libxl/{domid}/device"):
        if xs.exists(base):
            out.update(dict(xs.walk(base)))
    return out


# ---- errors before anything is written -------------------------------------------------

def test_bad_specs_write_nothing(dev, guest, xs):
    import pyxen.devices as D
    domid = guest["domid"]
    img = make_img("bad")
    before = snapshot(xs, domid)
    with pytest.raises(D.DeviceSpecError, match="unknown parameter"):
        dev.attach_disk(NAME, f"format=raw, vdev=xvdj, frob=1, target={img}")
    with pytest.raises(D.DeviceSpecError, match="no target"):
        dev.attach_disk(domid, "format=raw, vdev=xvdj, access=rw")
    with pytest.raises(D.DeviceSpecError, match="No such file"):
        dev.attach_disk(domid, "format=raw, vdev=xvdj, target=/var/tmp/no-such.img")
    with pytest.raises(D.BackendDomainError):
        dev.attach_disk(domid, f"format=raw, vdev=xvdj, backend=no-such-dom, target={img}")
    with pytest.raises(D.DomainNotFoundError):
        dev.attach_disk("no-such-domain", f"format=raw, vdev=xvdj, target={img}")
    with pytest.raises(D.DeviceSpecError, match="invalid vdev"):
        dev.attach_disk(domid, f"format=raw, vdev=xyz, target={img}")
    with pytest.raises(D.DeviceSpecError, match="qcow2"):
        dev.attach_disk(domid, f"format=qcow2, vdev=xvdj, target={img}")
    os.chmod(img, 0o444)
    with pytest.raises(D.DeviceSpecError, match="read-only"):
        dev.attach_disk(domid, f"format=raw, vdev=xvdj, access=rw, target={img}")
    with pytest.raises(D.DeviceSpecError, match="vif-route"):
        dev.attach_nic(domid, "bridge=xenbr0, script=vif-route")
    with pytest.raises(D.DeviceSpecError, match="vif-nat"):
        dev.attach_nic(domid, "script=/etc/xen/scripts/vif-nat")
    with pytest.raises(D.DeviceSpecError, match="does not exist"):
        dev.attach_nic(domid, "bridge=no-such-br0")
    with pytest.raises(D.DeviceSpecError, match="unknown vif parameter"):
        dev.attach_nic(domid, "bridge=xenbr0, colour=blue")
    with pytest.raises(D.DeviceNotFoundError):
        dev.detach(domid, "vbd", "xvdz")
    assert snapshot(xs, domid) == before
    assert loops_of(img) == []


# ---- a file-backed disk ----------------------------------------------------------------

def test_file_disk_attach_read_list_detach(dev, guest, xs):
    import pyxen.devices as D
    domid, con = guest["domid"], guest["console"]
    img = make_img("file")
    mark = len(con.text())
    t0 = time.monotonic()
    info = dev.attach_disk(NAME, f"format=raw, vdev=xvde, access=rw, target={img}",
                           timeout=180)         # the first attach after boot
    print(f"attach took {time.monotonic() - t0:.2f}s")
    devid = D.vdev_to_devid("xvde")
    assert info.devid == devid == 51776
    assert info.state == D.XenbusState.CONNECTED
    assert info.backend_state == D.XenbusState.CONNECTED
    be = f"/local/domain/0/backend/vbd/{domid}/{devid}"
    fe = f"/local/domain/{domid}/device/vbd/{devid}"
    lx = f"/libxl/{domid}/device/vbd/{devid}"
    assert info.backend == be
    # the layout and permissions libxl uses
    assert str(xs.get_permissions(fe)) == f"n{domid} r0"
    assert str(xs.get_permissions(be)) == f"n0 r{domid}"
    assert str(xs.get_permissions(f"{fe}/virtual-device")) == f"n{domid} r0"
    for k, v in {"params": img, "mode": "w", "type": "phy", "dev": "xvde",
                 "device-type": "disk", "removable": "0", "bootable": "1", "online": "1",
                 "frontend": fe, "frontend-id": str(domid),
                 "script": "/etc/xen/scripts/block", "hotplug-status": "connected"}.items():
        assert xs.read_str(f"{be}/{k}") == v, k
    for k, v in {"backend": be, "backend-id": "0", "virtual-device": str(devid),
                 "device-type": "disk"}.items():
        assert xs.read_str(f"{fe}/{k}") == v, k
    for k in ("params", "mode", "type", "dev", "device-type", "removable", "frontend",
              "backend"):
        assert xs.exists(f"{lx}/{k}"), k
    # a loop device, set up by ioctl, feeds blkback
    loops = loops_of(img)
    assert len(loops) == 1
    node = xs.read_str(f"{be}/node")
    assert loops == [node] and xs.read_str(f"{be}/physical-device-path") == node
    st = os.stat(node)
    assert xs.read_str(f"{be}/physical-device") == "%x:%x" % (os.major(st.st_rdev),
                                                             os.minor(st.st_rdev))
    # the guest reads the pattern back
    m = con.wait(r"PYXEN-DISK xvde sectors=(\d+) ro=(\d) head=([0-9a-f]+) write=(\w+)", 120,
                 mark)
    assert m, con.text()[mark:]
    print(m.group(0))
    assert m.group(1) == str(8 << 11) and m.group(2) == "0"
    assert m.group(3) == PATTERN.hex() and m.group(4) == "ok"
    # xl block-list shows the same row as pyxen
    rows = xl_block_rows(NAME)
    mine = {d.devid: d for d in dev.list_disks(NAME)}
    assert rows[devid] == mine[devid].row().split()
    assert sorted(rows) == sorted(mine)
    # detach
    t0 = time.monotonic()
    assert dev.detach(NAME, "vbd", "xvde") is True
    print(f"detach took {time.monotonic() - t0:.2f}s")
    assert entries_gone(xs, domid, "vbd", devid)
    assert devid not in xl_block_rows(NAME)
    assert loops_of(img) == []
    assert con.wait(r"PYXEN-DISK-GONE xvde", 60, mark), con.text()[mark:]


def test_vdev_in_use(dev, guest, xs):
    import pyxen.devices as D
    img = make_img("file")
    dev.attach_disk(NAME, f"vdev=xvdf, target={img}")
    try:
        before = snapshot(xs, guest["domid"])
        with pytest.raises(D.DeviceBusyError):
            dev.attach_disk(NAME, f"format=raw, vdev=xvdf, access=ro, target={img}")
        with pytest.raises(D.DeviceBusyError):     # same devid, other spelling
            dev.attach_disk(NAME, f"format=raw, vdev=d5p0, access=ro, target={img}")
        assert snapshot(xs, guest["domid"]) == before
        assert len(loops_of(img)) == 1
    finally:
        dev.detach(NAME, "vbd", "xvdf")
    assert loops_of(img) == []


def test_timeout_names_state_and_force_detach(dev, guest, xs):
    """With the guest paused its frontend cannot connect: attach times out naming the
    frontend's state and leaves nothing; a detach that cannot close is forced."""
    import pyxen.devices as D
    domid = guest["domid"]
    img = make_img("file")
    run_tool("xl", "pause", NAME)
    try:
        with pytest.raises(D.DeviceTimeout) as ei:
            dev.attach_disk(NAME, f"format=raw, vdev=xvdk, target={img}", timeout=5)
        print(ei.value)
        # blkback waits in InitWait for the (paused) frontend, still Initialising
        assert ei.value.state == D.XenbusState.INIT_WAIT
        assert ei.value.path == f"/local/domain/0/backend/vbd/{domid}/51872"
        assert f"/local/domain/{domid}/device/vbd/51872 stuck in state INITIALISING" \
            in str(ei.value)
        assert entries_gone(xs, domid, "vbd", 51872)
        assert wait_for(lambda: loops_of(img) == [], 30)
        info = dev.attach_disk(NAME, f"format=raw, vdev=xvdk, target={img}", wait=False)
        assert info.backend_state == D.XenbusState.INIT_WAIT
        assert dev.detach(NAME, "vbd", "xvdk", timeout=3) is False    # forced
        assert entries_gone(xs, domid, "vbd", 51872)
        assert wait_for(lambda: loops_of(img) == [], 30)
    finally:
        run_tool("xl", "unpause", NAME)


# ---- a phy: loop device, read-only ------------------------------------------------------

def test_phy_loop_read_only(dev, guest, xs):
    domid, con = guest["domid"], guest["console"]
    img = make_img("ro")
    loop = run_tool("losetup", "-f", "--show", img).strip()
    try:
        mark = len(con.text())
        info = dev.attach_disk(domid, f"phy:{loop},xvdg,r")
        assert info.vdev == "xvdg" and not info.disk.readwrite
        be = info.backend
        st = os.stat(loop)
        assert xs.read_str(f"{be}/physical-device") == "%x:%x" % (os.major(st.st_rdev),
                                                                 os.minor(st.st_rdev))
        assert xs.read_str(f"{be}/mode") == "r"
        assert not xs.exists(f"{be}/node")          # not our loop device
        m = con.wait(r"PYXEN-DISK xvdg sectors=\d+ ro=(\d) head=([0-9a-f]+) write=(\w+)",
                     120, mark)
        assert m, con.text()[mark:]
        print(m.group(0))
        assert m.group(1) == "1" and m.group(2) == PATTERN.hex() and m.group(3) == "fail"
        assert dev.detach(domid, "vbd", info.devid)
        assert entries_gone(xs, domid, "vbd", info.devid)
        assert loops_of(img) == [loop]               # the user's loop device stays
    finally:
        subprocess.run(["losetup", "-d", loop])


# ---- a vif on a bridge --------------------------------------------------------------------

@pytest.fixture
def bridge():
    subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
    subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)
    yield BRIDGE
    subprocess.run(["ip", "link", "del", BRIDGE])


def test_vif_on_bridge(dev, guest, xs, bridge):
    import pyxen.devices as D
    domid, con = guest["domid"], guest["console"]
    mark = len(con.text())
    mac = "00:16:3e:5a:11:22"
    ifname = "pyxvif0"
    info = dev.attach_nic(NAME, f"bridge={bridge},mac={mac},vifname={ifname}")
    assert info.devid == 0 and info.mac == mac and info.ifname == ifname
    assert info.state == D.XenbusState.CONNECTED
    assert info.backend_state == D.XenbusState.CONNECTED
    assert not os.path.exists(f"/sys/class/net/vif{domid}.0")     # renamed
    assert D.bridge_of(ifname) == bridge and D.if_is_up(ifname)
    assert os.path.exists(f"/sys/class/net/{bridge}/brif/{ifname}")
    be, fe = info.backend, info.frontend
    assert str(xs.get_permissions(be)) == f"n0 r{domid}"
    assert str(xs.get_permissions(f"{fe}/mtu")) == f"n0 r{domid}"
    for k, v in {"mac": mac, "bridge": bridge, "handle": "0", "type": "vif",
                 "script": "/etc/xen/scripts/vif-bridge",
                 "hotplug-status": "connected", "vifname": ifname}.items():
        assert xs.read_str(f"{be}/{k}") == v, k
    assert xs.read_str(f"{fe}/mac") == mac and xs.read_str(f"{fe}/handle") == "0"
    m = con.wait(r"PYXEN-NET (\w+) mac=([0-9a-f:]+)", 120, mark)
    assert m, con.text()[mark:]
    print(m.group(0))
    assert m.group(1) == "eth0" and m.group(2) == mac
    rows = xl_network_rows(NAME)
    assert rows[0] == info.row().split() == dev.list_nics(NAME)[0].row().split()
    assert dev.detach(NAME, "vif", 0)
    assert entries_gone(xs, domid, "vif", 0)
    assert wait_for(lambda: not os.path.exists(f"/sys/class/net/{ifname}"), 30)
    assert 0 not in xl_network_rows(NAME)


# ---- interplay with xl -----------------------------------------------------------------

def test_xl_attached_disk_listed_and_detached_by_pyxen(dev, guest, xs):
    domid = guest["domid"]
    img = make_img("xl")
    xl_block_attach(NAME, f"format=raw, vdev=xvdh, access=rw, target={img}")
    devid = 51824
    mine = {d.devid: d for d in dev.list_disks(NAME)}
    assert devid in mine and mine[devid].vdev == "xvdh"
    assert mine[devid].disk.pdev_path == img and mine[devid].disk.readwrite
    assert xl_block_rows(NAME)[devid] == mine[devid].row().split()
    assert len(loops_of(img)) == 1                    # xl's block script's losetup
    assert dev.detach(NAME, "vbd", "xvdh")
    assert entries_gone(xs, domid, "vbd", devid)
    assert devid not in xl_block_rows(NAME)
    assert loops_of(img) == []                        # released through `node`


def test_pyxen_attached_disk_listed_and_detached_by_xl(dev, guest, xs):
    domid = guest["domid"]
    img = make_img("px")
    info = dev.attach_disk(NAME, f"format=raw, vdev=xvdi, access=rw, target={img}")
    rows = xl_block_rows(NAME)
    assert rows[info.devid] == info.row().split()
    run_tool("xl", "block-detach", NAME, "xvdi")
    assert entries_gone(xs, domid, "vbd", info.devid)
    assert wait_for(lambda: loops_of(img) == [], 30)


def test_consoles(dev, guest, xs):
    domid = guest["domid"]
    cons = dev.list_consoles(NAME)
    assert cons[0].devid == 0 and cons[0].type == "xenconsoled"
    assert cons[0].tty == xs.read_str(f"/local/domain/{domid}/console/tty")
    assert cons[0].backend == f"/local/domain/0/backend/console/{domid}/0"
    assert cons[0].port > 0


# ---- the command line -----------------------------------------------------------------

def pyxen_cli(*argv):
    return subprocess.run([sys.executable, "-m", "pyxen", *argv], capture_output=True,
                          text=True)


def test_cli(guest, xs):
    domid = guest["domid"]
    img = make_img("cli")
    r = pyxen_cli("block-attach", NAME, "format=raw,", "vdev=xvdj,", "access=ro,",
                  f"target={img}", "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["vdev"] == "xvdj" and got["state"] == 4 and got["disk"]["readwrite"] is False
    r = pyxen_cli("block-list", NAME)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["Vdev", "BE", "handle", "state", "evt-ch", "ring-ref",
                                "BE-path"]
    xl = xl_block_rows(NAME)
    assert {int(l.split()[0]): l.split() for l in lines[1:]} == xl
    r = pyxen_cli("block-list", NAME, "--libxl")       # the same, through libxl
    assert r.returncode == 0, r.stderr
    assert {int(l.split()[0]): l.split() for l in r.stdout.splitlines()[1:]} == xl
    r = pyxen_cli("block-attach", NAME, f"format=raw,vdev=xvdj,target={img}")
    assert r.returncode == 1 and r.stderr.startswith("pyxen: ") and "in use" in r.stderr
    r = pyxen_cli("block-detach", NAME, str(got["devid"]))
    assert r.returncode == 0, r.stderr
    assert entries_gone(xs, domid, "vbd", got["devid"])
    r = pyxen_cli("block-list", "no-such-domain")
    assert r.returncode == 1 and "no-such-domain" in r.stderr
    r = pyxen_cli("network-list", NAME, "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == []
    r = pyxen_cli("network-attach", NAME, "bridge=xenbr0", "script=vif-nat")
    assert r.returncode == 1 and "vif-nat" in r.stderr


# ---- guests are hostile (XSA-175) ------------------------------------------------------

NAME_B = "pyxen-dev-pv-b"
ESC = b"\x1b[2J\x1b]0;owned\x07"          # clear screen, set the terminal's title


@pytest.fixture(scope="module")
def guest_b(guest_kit, tmp_path_factory):
    """A second watching guest: the victim whose devices guest A's frontend points at."""
    cfg = tmp_path_factory.mktemp("devb") / "guest-b.cfg"
    cfg.write_text(f"""name = '{NAME_B}'
kernel = '{guest_kit["kernel"]}'
ramdisk = '{guest_kit["ramdisk"]}'
extra = 'console=hvc0 pyxen.action=watch pyxen.marker=PYXEN-DEVB-UP'
memory = 128
vcpus = 1
""")
    subprocess.run(["xl", "destroy", NAME_B], capture_output=True)
    t0 = time.monotonic()
    subprocess.run(["xl", "create", "-p", str(cfg)], check=True, capture_output=True)
    console = None
    try:
        domid = int(run_tool("xl", "domid", NAME_B).strip())
        import pyxen.xenstore as X
        with X.open() as xs:
            tty = xs.read_str(f"/local/domain/{domid}/console/tty")
        console = ConsoleReader(tty)
        run_tool("xl", "unpause", NAME_B)
        assert console.wait(r"PYXEN-DEVB-UP", 300), console.text()[-2000:]
        print(f"guest B {domid} up after {time.monotonic() - t0:.1f}s")
        yield {"domid": domid, "console": console}
    finally:
        if console:
            console.close()
        subprocess.run(["xl", "destroy", NAME_B], capture_output=True)
        for tag in ("hostA", "hostB"):
            if os.path.exists(IMG.format(tag)):
                os.unlink(IMG.format(tag))


def as_guest(xs, path, value, guest):
    """Write ``value`` at ``path`` as dom0, where ``guest`` could write it itself: the node
    (or, for a new node, the directory it goes in) is owned by that guest."""
    probe = path if xs.exists(path) else path.rsplit("/", 1)[0]
    perms = xs.get_permissions(probe)
    assert perms.owner == guest, f"{probe} is not guest {guest}'s: {perms}"
    xs.write(path, value)


def tree(xs, *bases) -> dict:
    out = {}
    for base in bases:
        out.update(dict(xs.walk(base)))
    return out


def test_hostile_frontend_cannot_steer_detach_or_list(dev, guest, guest_b, xs, bridge):
    """Guest A rewrites its frontends (nodes it owns) to name guest B's backends and to
    carry escape sequences. With A's /libxl mirror, and again without it, pyxen lists A's
    devices truthfully and detaches A's own: B's backends, loop device and bridge port
    stay. A frontend dom0 has no record of is refused with a typed error."""
    import pyxen.devices as D
    a, b = guest["domid"], guest_b["domid"]
    con_b = guest_b["console"]
    vdev = "xvdl"
    devid = D.vdev_to_devid(vdev)
    img_a, img_b = make_img("hostA"), make_img("hostB")
    mark_b = len(con_b.text())
    ia = dev.attach_disk(a, f"format=raw, vdev={vdev}, access=rw, target={img_a}", timeout=180)
    ib = dev.attach_disk(b, f"format=raw, vdev={vdev}, access=rw, target={img_b}", timeout=180)
    assert con_b.wait(rf"PYXEN-DISK {vdev} ", 120, mark_b), con_b.text()[mark_b:]
    na = dev.attach_nic(a, f"bridge={bridge},mac=00:16:3e:5a:33:01")
    nb = dev.attach_nic(b, f"bridge={bridge},mac=00:16:3e:5a:33:02")
    be_a, be_b, vbe_a, vbe_b = ia.backend, ib.backend, na.backend, nb.backend
    fe_a, vfe_a = ia.frontend, na.frontend
    assert be_a == f"/local/domain/0/backend/vbd/{a}/{devid}"
    assert vbe_b == f"/local/domain/0/backend/vif/{b}/0"
    loop_a, loop_b = xs.read_str(f"{be_a}/node"), xs.read_str(f"{be_b}/node")
    assert loops_of(img_b) == [loop_b]
    if_a, if_b = na.ifname, nb.ifname
    assert D.bridge_of(if_a) == D.bridge_of(if_b) == bridge
    b_before = tree(xs, be_b, vbe_b, ib.frontend, nb.frontend, f"/libxl/{b}/device")

    def b_untouched():
        assert tree(xs, be_b, vbe_b, ib.frontend, nb.frontend, f"/libxl/{b}/device") == \
            b_before
        assert loops_of(img_b) == [loop_b]
        assert D.bridge_of(if_b) == bridge and D.if_is_up(if_b)
        assert f"PYXEN-DISK-GONE {vdev}" not in con_b.text()[mark_b:]

    def cli_clean(r):
        assert r.returncode == 0, r.stderr
        assert "\x1b" not in r.stdout + r.stderr and "\x07" not in r.stdout + r.stderr
        return r.stdout

    try:
        # 1. the mirror is there: A's frontends name B's backend, and carry escapes
        as_guest(xs, f"{fe_a}/backend", be_b, a)
        as_guest(xs, f"{fe_a}/backend-id", ESC, a)
        as_guest(xs, f"{fe_a}/event-channel", ESC, a)
        as_guest(xs, f"{vfe_a}/backend", vbe_b.encode() + ESC, a)
        as_guest(xs, f"{vfe_a}/backend-id", str(b), a)
        as_guest(xs, f"{vfe_a}/mac", ESC, a)
        disk = {d.devid: d for d in dev.list_disks(NAME)}[devid]
        assert disk.backend == be_a and disk.backend_id == 0 and disk.vdev == vdev
        assert disk.evtch == -1                        # not a number: not taken as one
        assert disk.disk.pdev_path == img_a and disk.physical_device_path == loop_a
        nic = {n.devid: n for n in dev.list_nics(NAME)}[0]
        assert nic.backend == vbe_a and nic.backend_id == 0 and nic.mac == "00:16:3e:5a:33:01"
        out = cli_clean(pyxen_cli("block-list", NAME))
        row = [l.split() for l in out.splitlines()[1:] if l.split()[0] == str(devid)]
        assert row and row[0][1] == "0" and row[0][-1] == be_a, out
        assert be_b not in out
        out = cli_clean(pyxen_cli("network-list", NAME))
        assert vbe_a in out and vbe_b not in out and "00:16:3e:5a:33:01" in out, out
        got = json.loads(cli_clean(pyxen_cli("block-list", NAME, "--json")))
        assert [d["backend"] for d in got if d["devid"] == devid] == [be_a]
        b_untouched()

        # 2. no mirror (as for a device some other tool wrote): rebuilt from dom0's own
        # backend directory, never from the frontend, which now names B's exactly
        xs.rm(f"/libxl/{a}/device/vbd/{devid}")
        xs.rm(f"/libxl/{a}/device/vif/0")
        as_guest(xs, f"{vfe_a}/backend", vbe_b, a)
        disk = {d.devid: d for d in dev.list_disks(NAME)}[devid]
        assert disk.backend == be_a and disk.vdev == vdev and disk.disk.pdev_path == img_a
        nic = {n.devid: n for n in dev.list_nics(NAME)}[0]
        assert nic.backend == vbe_a and nic.mac == "00:16:3e:5a:33:01"
        out = cli_clean(pyxen_cli("block-list", NAME))
        assert be_a in out and be_b not in out, out
        out = cli_clean(pyxen_cli("network-list", NAME))
        assert vbe_a in out and vbe_b not in out, out
        t0 = time.monotonic()
        cli_clean(pyxen_cli("block-detach", NAME, vdev))
        print(f"block-detach of the mirror-less disk took {time.monotonic() - t0:.2f}s")
        assert entries_gone(xs, a, "vbd", devid)
        assert wait_for(lambda: loops_of(img_a) == [], 30)        # A's loop device
        assert dev.detach(NAME, "vif", "00:16:3e:5a:33:01", timeout=20) in (True, False)
        assert entries_gone(xs, a, "vif", 0)
        assert wait_for(lambda: not os.path.exists(f"/sys/class/net/{if_a}"), 30)
        b_untouched()

        # 3. a frontend dom0 has no record of at all (no mirror, no backend): refused
        fake = f"/local/domain/{a}/device/vbd/{devid}"
        xs.write(f"{fake}/backend", be_b)
        xs.write(f"{fake}/backend-id", "0")
        xs.set_permissions(fake, f"n{a} r0")
        xs.set_permissions(f"{fake}/backend", f"n{a} r0")
        assert devid not in {d.devid for d in dev.list_disks(NAME)}
        with pytest.raises(D.DeviceNotFoundError, match="trust") as ei:
            dev.detach(NAME, "vbd", vdev)
        print(ei.value)
        with pytest.raises(D.DeviceNotFoundError, match="trust"):
            dev.disk_info(a, devid)
        r = pyxen_cli("block-detach", NAME, str(devid))
        assert r.returncode == 1 and r.stderr.startswith("pyxen: ") and "trust" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert xs.read(f"{fake}/backend") == be_b.encode()    # nothing done for it, either
        xs.rm(fake)
        b_untouched()
        # B's own devices still detach normally
        assert dev.detach(NAME_B, "vbd", vdev)
        assert dev.detach(NAME_B, "vif", 0, timeout=20) in (True, False)
        assert entries_gone(xs, b, "vbd", devid) and entries_gone(xs, b, "vif", 0)
        assert wait_for(lambda: loops_of(img_b) == [], 30)
        assert con_b.wait(rf"PYXEN-DISK-GONE {vdev}", 60, mark_b), con_b.text()[mark_b:]
    finally:
        for dom, kind, which in ((a, "vbd", devid), (a, "vif", 0), (b, "vbd", devid),
                                 (b, "vif", 0)):
            try:
                dev.detach(dom, kind, which, timeout=10)
            except D.DeviceError:
                pass
            for p in (f"/local/domain/{dom}/device/{kind}/{which}",
                      f"/local/domain/0/backend/{kind}/{dom}/{which}",
                      f"/libxl/{dom}/device/{kind}/{which}"):
                if xs.exists(p):
                    xs.rm(p)


def test_hostile_console_tty_vnc_and_name(guest, guest_b, xs, tmp_path):
    """Guest A's console tty (a node in its own home) names guest B's console, a pty no
    xenconsoled serves, garbage; its console/vnc-* name a VNC display elsewhere; it has
    B's name. dom0 opens none of those ptys, gives no such VNC address, and refuses the
    ambiguous name, each with a typed error. (xl's 4.17 layout leaves these nodes to
    dom0, ``n0 r<domid>``; by the project's rule anything under a guest's home is the
    guest's, so they are written as dom0 here.)"""
    import pty

    import pyxen.devices as D
    import pyxen.guest as G
    import pyxen.light as L
    a, b = guest["domid"], guest_b["domid"]
    tty_path = f"/local/domain/{a}/console/tty"
    tty_a = xs.read_str(tty_path)
    tty_b = xs.read_str(f"/local/domain/{b}/console/tty")
    print(f"{tty_path} {tty_a} ({xs.get_permissions(tty_path)})")
    # the real ones pass: xenconsoled holds their masters
    assert G.console_tty(a, xs=xs) == tty_a and G.console_tty(b, xs=xs) == tty_b
    os.close(G.open_console(a, xs=xs))
    assert D.list_consoles(NAME)[0].tty == tty_a

    def console_cli():
        return subprocess.run([sys.executable, "-m", "pyxen", "console", NAME],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60)

    master, slave = pty.openpty()         # stands in for an administrator's terminal
    try:
        for value, why in ((tty_b, f"domain {b}'s"), (os.ttyname(slave), "not served"),
                           (b"/dev/pts/0" + ESC, "not a /dev/pts/N"),
                           (b"/dev/sda", "not a /dev/pts/N")):
            xs.write(tty_path, value)
            with pytest.raises(G.ConsoleTtyError, match=why):
                G.console_tty(a, xs=xs)
            with pytest.raises(G.ConsoleTtyError):
                G.open_console(a, xs=xs)
            r = console_cli()
            assert r.returncode == 1 and r.stderr.startswith("pyxen: "), r
            assert "\x1b" not in r.stderr and "\x07" not in r.stderr
            assert D.list_consoles(NAME)[0].tty is None      # not reported as A's either
        with L.open() as ctx:
            with pytest.raises(G.ConsoleTtyError):
                ctx.console_tty(NAME)
    finally:
        os.close(master)
        os.close(slave)
        xs.write(tty_path, tty_a)
    assert G.console_tty(a, xs=xs) == tty_a

    # a VNC display of the guest's choosing (PV guest: there is no device model)
    base = f"/local/domain/{a}/console"
    try:
        xs.write(f"{base}/vnc-port", "5901")
        xs.write(f"{base}/vnc-listen", b"203.0.113.7" + ESC)
        with L.open() as ctx:
            with pytest.raises(L.LibxlError) as ei:
                ctx.vnc(NAME)
        assert ei.value.code == "NOTFOUND"
        r = pyxen_cli("vnc", NAME)
        assert r.returncode == 1 and "203.0.113.7" not in r.stdout + r.stderr, r
        assert "\x1b" not in r.stdout + r.stderr
    finally:
        for k in ("vnc-port", "vnc-listen"):
            if xs.exists(f"{base}/{k}"):
                xs.rm(f"{base}/{k}")

    # two domains with one name
    name_path = f"/local/domain/{a}/name"
    try:
        xs.write(name_path, NAME_B)
        with pytest.raises(D.DomainNotFoundError, match="ambiguous"):
            D.list_disks(NAME_B)
        with pytest.raises(G.DomainNotFoundError, match="ambiguous"):
            G.resolve(NAME_B)
        r = pyxen_cli("block-detach", NAME_B, "xvdl")
        assert r.returncode == 1 and "ambiguous" in r.stderr, r
    finally:
        xs.write(name_path, NAME)
    D.list_disks(NAME_B)
