"""A Ctrl-C at every step leaves nothing behind, on the real hypervisor.

Each test runs an operation once to learn its steps (``pyxen._interrupt.point`` names them),
then again and again with a real SIGINT sent to this process at step N, and checks with
Xen's own tools and the kernel's view (xl list, xenstore-ls, /proc, sysfs, the bridge) that no
domain, xenstore entry, qemu, loop device, bridge port or fd is left. The rollbacks also get
a second SIGINT while they run: they must finish all the same.
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid

import pytest

from conftest import loops_of, qemu_pids, run_tool, wait_for, xl_guest

import pyxen._interrupt as interrupt

IMG = "/var/tmp/pyxen-intr.img"


def fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def qemu_domids() -> set[int]:
    return set(qemu_pids().values())


def zombies() -> set[int]:
    """This process's children that exited and were not reaped."""
    out = set()
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            out.add(int(p))
    return out


def xenstore_dirs() -> tuple:
    def ls(p):
        out = run_tool("xenstore-list", p, check=False)
        return frozenset(out.split())
    return (ls("/local/domain"), ls("/vm"), ls("/libxl"), ls("/local/domain/0/device-model"),
            ls("/local/domain/0/backend/vbd"), ls("/local/domain/0/backend/vif"))


def xl_names() -> set[str]:
    return {line.split()[0] for line in run_tool("xl", "list").splitlines()[1:] if line.strip()}


def world() -> tuple:
    """What an interrupted operation must not change."""
    return (xl_names(), xenstore_dirs(), frozenset(qemu_domids()), frozenset(fds()))


def same(after: tuple, before: tuple) -> bool:
    """Nothing left behind: the same domains, xenstore entries and qemus, and no fd that
    was not open before (the garbage collector may close older ones meanwhile)."""
    return after[:3] == before[:3] and after[3] <= before[3]


@contextlib.contextmanager
def record():
    seen: list[str] = []
    interrupt.FAULT = seen.append
    try:
        yield seen
    finally:
        interrupt.FAULT = None


@contextlib.contextmanager
def sigint_at(step: str, nth: int = 1, *, again_at: str | None = None):
    """Send this process SIGINT when ``step`` is reached for the ``nth`` time, and once more
    when ``again_at`` is (a second Ctrl-C, e.g. during the rollback)."""
    count = {"n": 0, "fired": False, "again": False}

    def hook(name: str) -> None:
        if name == step and not count["fired"]:
            count["n"] += 1
            if count["n"] == nth:
                count["fired"] = True
                os.kill(os.getpid(), signal.SIGINT)
        elif again_at and name == again_at and count["fired"] and not count["again"]:
            count["again"] = True
            os.kill(os.getpid(), signal.SIGINT)
    interrupt.FAULT = hook
    try:
        yield count
    finally:
        interrupt.FAULT = None


def steps_of(seen: list[str], prefix: str) -> list[str]:
    out: list[str] = []
    for s in seen:
        if s.startswith(prefix) and s not in out:
            out.append(s)
    return out


# -- guest.build: PV and HVM ------------------------------------------------------------

@pytest.fixture
def G():
    import pyxen.guest
    return pyxen.guest


def pv_spec(G, kit, name):
    return G.BuildSpec(name=name, kernel=kit["kernel"], ramdisk=kit["ramdisk"], memory=128,
                       cmdline="console=hvc0 pyxen.action=wait", uuid=str(uuid.uuid4()))


def hvm_spec(G, kit, name):
    return G.BuildSpec(name=name, type="hvm", kernel=kit["kernel"], ramdisk=kit["ramdisk"],
                       memory=128, cmdline="console=ttyS0 pyxen.action=wait",
                       uuid=str(uuid.uuid4()), vnc=False, serial="none")


def pvh_spec(G, kit, name):
    return G.BuildSpec(name=name, type="pvh", kernel=kit["kernel"], ramdisk=kit["ramdisk"],
                       memory=128, cmdline="console=hvc0 pyxen.action=wait",
                       uuid=str(uuid.uuid4()))


@pytest.mark.parametrize("kind", ["pv", "hvm", "pvh"])
def test_guest_build_interrupted_at_every_step_leaves_nothing(xc, xs, G, guest_kit, kind):
    make = {"pv": pv_spec, "hvm": hvm_spec, "pvh": pvh_spec}[kind]
    name = f"pyxen-t-intr-{kind}"
    earlier = zombies()  # another test's children are not this one's concern
    with record() as seen:
        g = G.build(make(G, guest_kit, name), xc=xc, xs=xs)
    if kind == "hvm":
        # a qemu that dies by itself is reaped, never left a zombie of this process
        os.kill(g.device_model_pid, signal.SIGKILL)
        assert wait_for(lambda: g.device_model_pid in zombies(), 10)
    G.destroy(g.domid, xc=xc, xs=xs, uuid=g.uuid)
    assert not zombies() - earlier
    assert wait_for(lambda: name not in xl_names(), 30)
    steps = steps_of(seen, "guest.") + steps_of(seen, "ctrl.")
    assert "guest.create_domain" in steps and "ctrl.xc_domain_create" in steps
    if kind == "hvm":
        assert "guest.device_model_started" in steps
    before = world()
    tried = []
    for step in steps:
        with sigint_at(step, again_at="guest.rollback") as hit:
            with pytest.raises(KeyboardInterrupt):
                G.build(make(G, guest_kit, name), xc=xc, xs=xs)
        assert hit["fired"], step
        tried.append(step)
        after = world()
        assert same(after, before), f"interrupt at {step} (second one during the rollback: " \
                                f"{hit['again']}) left {after} (before: {before})"
    print(f"{kind}: interrupted at {len(tried)} steps: {' '.join(tried)}")
    assert len(tried) >= {"pv": 10, "hvm": 15, "pvh": 15}[kind]


# -- light.create (libxl) ---------------------------------------------------------------

def light_config(kit, name):
    from pyxen.config import parse_string
    return parse_string(f"name = '{name}'\nkernel = '{kit['kernel']}'\n"
                        f"ramdisk = '{kit['ramdisk']}'\nextra = 'console=hvc0 pyxen.action=wait'\n"
                        "memory = 128\nvcpus = 1\n", filename="intr.cfg")


@pytest.fixture(scope="module")
def create_waits(guest_kit) -> int:
    """How many times one creation through libxl passes its wait loop (learned once)."""
    import pyxen.light
    with pyxen.light.open() as ctx, record() as seen:
        domid = ctx.create(light_config(guest_kit, "pyxen-t-intr-light"), paused=True)
        ctx.destroy(domid)
    n = seen.count("light.create_wait")
    assert n >= 1 and "light.create_completed" in seen
    return n


# create() is create_async().wait(): every step through the one, the middle through both
@pytest.mark.parametrize("step,where,how", [("light.create_started", "first", "sync"),
                                            ("light.create_wait", "first", "sync"),
                                            ("light.create_wait", "middle", "sync"),
                                            ("light.create_wait", "late", "sync"),
                                            ("light.create_completed", "first", "sync"),
                                            ("light.create_wait", "middle", "async")])
def test_light_create_interrupted_leaves_nothing(guest_kit, create_waits, step, where, how):
    import pyxen.light
    nth = {"first": 1, "middle": max(1, create_waits // 2),
           "late": max(1, 3 * create_waits // 4)}[where]
    name = "pyxen-t-intr-light"
    assert wait_for(lambda: name not in xl_names(), 60)
    before = world()
    with pyxen.light.open() as ctx:
        with sigint_at(step, nth) as hit:
            with pytest.raises(KeyboardInterrupt):
                if how == "sync":
                    ctx.create(light_config(guest_kit, name))
                else:
                    ctx.create_async(light_config(guest_kit, name)).wait()
        if not hit["fired"]:
            pytest.fail(f"{step} was reached fewer than {nth} times")
        assert wait_for(lambda: name not in xl_names(), 60), "libxl's domain is left"
    assert wait_for(lambda: same(world(), before), 30), (world(), before)


# -- devices: attach_disk / attach_nic to a running guest ---------------------------------

def bridge_ports(bridge: str) -> set[str]:
    try:
        return set(os.listdir(f"/sys/class/net/{bridge}/brif"))
    except OSError:
        return set()


@pytest.fixture(scope="module")
def running(guest_kit, tmp_path_factory):
    with xl_guest("pyxen-t-intr-dev", guest_kit, tmp_path_factory.mktemp("cfg")) as domid:
        yield domid


def test_device_attach_interrupted_at_every_step_leaves_nothing(running, xs):
    import pyxen.devices as D
    with open(IMG, "wb") as f:
        f.truncate(4 << 20)
    domid = running
    try:
        with D.Devices() as dev:
            # learn the steps with one real attach + detach of each kind
            with record() as seen:
                dev.attach_disk(domid, f"format=raw, vdev=xvdc, access=rw, target={IMG}")
                dev.detach(domid, "vbd", "xvdc")
                nic = dev.attach_nic(domid, "bridge=xenbr0")
                dev.detach(domid, "vif", nic.devid)
            disk_steps = steps_of(seen, "devices.loop") + steps_of(seen, "devices.vbd")
            nic_steps = steps_of(seen, "devices.vif")
            assert len(disk_steps) == 5 and len(nic_steps) == 4, (disk_steps, nic_steps)
            assert not loops_of(IMG)
            base_ports = bridge_ports("xenbr0")
            before = world()
            for step in disk_steps:
                with sigint_at(step) as hit, pytest.raises(KeyboardInterrupt):
                    dev.attach_disk(domid, f"format=raw, vdev=xvdc, access=rw, target={IMG}")
                assert hit["fired"], step
                assert wait_for(lambda: not loops_of(IMG), 15), f"{step}: loop device left"
                assert not dev.list_disks(domid), f"{step}: vbd left"
                assert same(world(), before), f"{step}: {world()} != {before}"
            for step in nic_steps:
                with sigint_at(step) as hit, pytest.raises(KeyboardInterrupt):
                    dev.attach_nic(domid, "bridge=xenbr0")
                assert hit["fired"], step
                assert not dev.list_nics(domid), f"{step}: vif left"
                assert wait_for(lambda: bridge_ports("xenbr0") == base_ports, 15), \
                    f"{step}: bridge port left: {bridge_ports('xenbr0') - base_ports}"
                assert same(world(), before), f"{step}: {world()} != {before}"
            # a detach cut short finishes the removal: no entries, no loop, no bridge port
            for kind, step in [(k, s) for k in ("vbd", "vif")
                               for s in ("devices.detach_closing", "devices.detach_closed")]:
                if kind == "vbd":
                    dev.attach_disk(domid, f"format=raw, vdev=xvdc, access=rw, target={IMG}")
                    which: str | int = "xvdc"
                else:
                    which = dev.attach_nic(domid, "bridge=xenbr0").devid
                with sigint_at(step) as hit, pytest.raises(KeyboardInterrupt):
                    dev.detach(domid, kind, which)
                assert hit["fired"], (kind, step)
                assert wait_for(lambda: not loops_of(IMG), 15), f"detach {step}: loop left"
                assert not dev.list_disks(domid) and not dev.list_nics(domid), step
                assert wait_for(lambda: bridge_ports("xenbr0") == base_ports, 15), step
                assert wait_for(lambda: same(world(), before), 15), f"detach {step}: {world()}"
            # and the guest still takes a disk afterwards
            info = dev.attach_disk(domid, f"format=raw, vdev=xvdc, access=rw, target={IMG}")
            assert info.state == D.XenbusState.CONNECTED
            dev.detach(domid, "vbd", "xvdc")
            assert wait_for(lambda: not loops_of(IMG), 15)
    finally:
        os.unlink(IMG)


def loop_bound(dev: str) -> bool:
    return os.path.exists(f"/sys/block/{os.path.basename(dev)}/loop/backing_file")


@pytest.mark.parametrize("change", ["renamed", "deleted", "relative"])
def test_detach_releases_the_loop_device_whatever_became_of_the_file(running, change):
    """The loop device pyxen bound is released at detach even when the target was given
    as a relative path, or renamed or deleted while attached (the device has no autoclear
    here, so nothing else would free it)."""
    import pyxen.devices as D
    domid = running
    work = "/var/tmp/pyxen-intr-dir"
    os.makedirs(work, exist_ok=True)
    img = os.path.join(work, "disk.img")
    with open(img, "wb") as f:
        f.truncate(4 << 20)
    cwd = os.getcwd()
    try:
        target = img
        if change == "relative":
            os.chdir(work)
            target = "disk.img"
        with D.Devices() as dev:
            # wait=False binds without autoclear: only detach's release frees the device
            info = dev.attach_disk(domid, f"format=raw, vdev=xvdd, access=rw, target={target}",
                                   wait=False)
            assert wait_for(lambda: dev.disk_info(domid, info.devid).state
                            == D.XenbusState.CONNECTED, 60)
            node = dev.disk_info(domid, info.devid).physical_device_path
            assert node and node.startswith("/dev/loop") and loop_bound(node)
            if change == "renamed":
                os.rename(img, img + ".moved")
            elif change == "deleted":
                os.unlink(img)
            os.chdir("/")
            assert dev.detach(domid, "vbd", "xvdd")
            assert wait_for(lambda: not loop_bound(node), 15), f"{node} still bound"
            assert not dev.list_disks(domid)
    finally:
        os.chdir(cwd)
        for p in (img, img + ".moved"):
            if os.path.exists(p):
                os.unlink(p)
