"""asyncio throughout, on real Xen: libxl creation, destruction and death events on the
running loop (libxl's osevent hooks: its fds and timeouts on the loop, no helper thread),
device attach/detach awaited on xenstore watches, a guest build and its console marker
awaited, two awaits at once on one handle, and cancellation leaving nothing behind.

Guests: the lab kit as a PV guest, created paused where it need not run (a paused guest
costs no CPU under TCG); one pyxen.guest build boots (``pyxen.action=watch``) and is
reused for the console and the device tests."""

import asyncio
import os
import threading

import pytest

from conftest import loops_of, run_tool, wait_for

MARKER = "PYXEN-ASYNC-UP"
BOOT_TIMEOUT = 240
IMG = "/var/tmp/pyxen-async-{}.img"
PATTERN = bytes.fromhex("50595845 4e2d4153 594e4301 02030405".replace(" ", ""))


def make_img(tag: str, size=8 << 20) -> str:
    path = IMG.format(tag)
    with open(path, "wb") as f:
        f.truncate(size)
        f.write(PATTERN)
    return path


@pytest.fixture(scope="module")
def ctx():
    import pyxen.light
    with pyxen.light.open() as c:
        yield c


def kit_cfg(guest_kit, name, *, action="wait", more=""):
    from pyxen.config import parse_string
    return parse_string(f"""
name = '{name}'
kernel = '{guest_kit["kernel"]}'
ramdisk = '{guest_kit["ramdisk"]}'
extra = 'console=hvc0 pyxen.action={action}'
memory = 96
vcpus = 1
{more}""", filename=f"{name}.cfg")


def xl_names() -> dict:
    out = {}
    for line in run_tool("xl", "list").splitlines()[1:]:
        f = line.split()
        if len(f) >= 6:
            out[f[0]] = int(f[1])
    return out


def snapshot(xs) -> tuple:
    """What a domain leaves behind: domains, their xenstore directories, the /libxl and
    /vm mirrors, dom0's vbd backends."""
    def ls(p):
        return set(xs.ls(p)) if xs.exists(p) else set()
    return (set(xl_names().values()), ls("/local/domain"), ls("/libxl"), ls("/vm"),
            ls("/local/domain/0/backend/vbd"))


def test_acreate_then_death_event_on_adestroy(ctx, guest_kit, xs):
    """await ctx.acreate(cfg) (unpaused: libxl's unpause after completion), a death watch
    awaited while the domain is destroyed with await ctx.adestroy: DOMAIN_DEATH. The
    awaits run on the loop's own thread: no thread appears while they run."""
    from pyxen.light import EventType
    name = "pyxen-async-one"
    before = snapshot(xs)
    threads: list[int] = []

    async def count_threads():
        while True:
            threads.append(threading.active_count())
            await asyncio.sleep(0.05)

    async def main():
        counter = asyncio.ensure_future(count_threads())
        try:
            domid = await ctx.acreate(kit_cfg(guest_kit, name), timeout=300)
            assert xl_names()[name] == domid
            info = ctx.info(domid)
            assert not info.paused and not info.shutdown
            events = []
            with ctx.watch_death(domid) as w:
                async def collect():
                    async for ev in w:
                        events.append(ev)
                reader = asyncio.ensure_future(collect())
                await asyncio.sleep(0)
                await ctx.adestroy(domid)
                await asyncio.wait_for(reader, 60)   # the iteration ends with the death
            assert events and events[-1].type == EventType.DOMAIN_DEATH
            assert events[-1].domid == domid
            return domid
        finally:
            counter.cancel()

    start = threading.active_count()
    domid = asyncio.run(main())
    assert threads and max(threads) == start, (start, threads)
    assert name not in xl_names() and not ctx.exists(domid)
    assert wait_for(lambda: snapshot(xs) == before, 30), (snapshot(xs), before)


def test_two_concurrent_awaits_on_one_context(ctx, guest_kit, xs):
    """Two creations awaited at once on one Context (asyncio.gather), then both death
    watches awaited while both destructions are awaited at once."""
    from pyxen.light import EventType
    names = ["pyxen-async-a", "pyxen-async-b"]
    before = snapshot(xs)

    async def main():
        ids = await asyncio.gather(*(ctx.acreate(kit_cfg(guest_kit, n), paused=True,
                                                 timeout=300) for n in names))
        assert len(set(ids)) == 2
        assert {n: xl_names().get(n) for n in names} == dict(zip(names, ids))
        watches = [ctx.watch_death(d) for d in ids]
        try:
            deaths = asyncio.gather(*(w.await_for(EventType.DOMAIN_DEATH, timeout=120)
                                      for w in watches))
            await asyncio.sleep(0)
            await asyncio.gather(*(ctx.adestroy(d) for d in ids))
            evs = await deaths
        finally:
            for w in watches:
                w.close()
        assert [ev.domid for ev in evs] == list(ids)
        assert all(ev.type == EventType.DOMAIN_DEATH for ev in evs)
        return ids

    ids = asyncio.run(main())
    assert not any(ctx.exists(d) for d in ids)
    assert wait_for(lambda: snapshot(xs) == before, 30), (snapshot(xs), before)


def test_cancelled_acreate_leaves_nothing(ctx, guest_kit, xs):
    """A creation whose await is cancelled while libxl is still attaching its disk (the
    block hotplug script): aborted, driven to its end and destroyed. No domain, no
    xenstore entries, no loop device on the disk's file."""
    name = "pyxen-async-cancel"
    img = make_img("cancel")
    before = snapshot(xs)

    async def main():
        op = ctx.create_async(kit_cfg(guest_kit, name, more=(
            f"disk = ['format=raw, vdev=xvda, access=rw, target={img}']")), paused=True)
        task = asyncio.ensure_future(op.await_(timeout=300))
        await asyncio.sleep(0)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return op

    try:
        op = asyncio.run(main())
        assert op.done
        assert name not in xl_names()
        assert wait_for(lambda: snapshot(xs) == before, 30), (snapshot(xs), before)
        assert wait_for(lambda: loops_of(img) == [], 30), loops_of(img)
    finally:
        if ctx.exists(name):
            ctx.destroy(name)
        os.unlink(img)


@pytest.fixture(scope="module")
def booted(guest_kit):
    """One pyxen.guest build (awaited with abuild) booting the kit with
    pyxen.action=watch; its console's marker awaited. Destroyed at the end."""
    import pyxen.guest as G
    spec = G.BuildSpec(name="pyxen-async-guest", kernel=guest_kit["kernel"],
                       ramdisk=guest_kit["ramdisk"], memory=128,
                       cmdline=f"console=hvc0 pyxen.action=watch pyxen.marker={MARKER}")

    async def main():
        g = await G.abuild(spec)
        out = await G.await_console_marker(g.domid, MARKER, timeout=BOOT_TIMEOUT)
        return g, out

    g, out = asyncio.run(main())
    try:
        yield {"guest": g, "console": out}
    finally:
        G.destroy(g.domid, uuid=g.uuid)


def test_abuild_and_console_marker(booted, xc):
    g, out = booted["guest"], booted["console"]
    assert out.endswith(MARKER), out[-2000:]
    assert "PYXEN-GUEST-OK" in out or MARKER in out
    info = xc.domain(g.domid)
    assert not info.paused and not info.shutdown
    assert xl_names()["pyxen-async-guest"] == g.domid


def test_console_marker_timeout_is_typed(booted):
    import pyxen.guest as G
    from pyxen.errors import GuestWaitTimeout, PyxenError

    async def main():
        await G.await_console_marker(booted["guest"].domid, "NEVER-PRINTED", timeout=1)

    with pytest.raises(GuestWaitTimeout) as ei:
        asyncio.run(main())
    assert isinstance(ei.value, PyxenError) and isinstance(ei.value, TimeoutError)
    assert ei.value.domid == booted["guest"].domid


def test_async_console_close_from_another_thread(booted):
    """A pending read raises HandleClosedError when the console is closed elsewhere."""
    import pyxen.guest as G
    from pyxen.errors import HandleClosedError

    async def main():
        con = await G.AsyncConsole.open(booted["guest"].domid)
        threading.Timer(0.5, con.close).start()
        with pytest.raises(HandleClosedError):
            await con.read_until("NEVER-PRINTED", timeout=60)
        assert con.closed
        con.close()                     # idempotent

    asyncio.run(main())


def test_aattach_adetach_file_disk(booted, xs):
    """A file disk attached with await devs.aattach_disk (Connected of backend and
    frontend awaited), the guest reads its pattern, then await devs.adetach_disk: the
    entries and the loop device are gone and the guest saw the disk go."""
    import pyxen.devices as D
    import pyxen.guest as G
    from pyxen.devices import XenbusState
    domid = booted["guest"].domid
    img = make_img("disk")

    async def main():
        with D.Devices() as devs:
            con = await G.AsyncConsole.open(domid)
            try:
                info = await devs.aattach_disk(domid, f"format=raw, vdev=xvdc, access=rw, "
                                               f"target={img}", timeout=120)
                assert info.state == XenbusState.CONNECTED
                assert info.backend_state == XenbusState.CONNECTED
                assert len(loops_of(img)) == 1
                seen = await con.read_until(b"PYXEN-DISK xvdc", timeout=120)
                rest = await con.read_until(b"\n", timeout=30)
                assert f"head={PATTERN.hex()}".encode() in rest, (seen + rest)[-500:]
                assert await devs.adetach_disk(domid, "xvdc", timeout=60) is True
                await con.read_until(b"PYXEN-DISK-GONE xvdc", timeout=60)
                return info
            finally:
                con.close()

    try:
        info = asyncio.run(main())
        fe = f"/local/domain/{domid}/device/vbd/{info.devid}"
        assert not xs.exists(fe) and not xs.exists(info.backend)
        assert not xs.exists(f"/libxl/{domid}/device/vbd/{info.devid}")
        assert wait_for(lambda: loops_of(img) == [], 30), loops_of(img)
    finally:
        os.unlink(img)


def test_await_state_timeout_is_typed(booted):
    import pyxen.devices as D
    from pyxen.devices import DeviceTimeout, XenbusState
    domid = booted["guest"].domid

    async def main():
        with D.Devices() as devs:
            # a domain's directory has no state node: Closed is never reached
            await devs.await_state(f"/local/domain/{domid}", XenbusState.CLOSED, 1,
                                   what="test")

    with pytest.raises(DeviceTimeout) as ei:
        asyncio.run(main())
    assert "after 1s" in str(ei.value) and ei.value.wanted == XenbusState.CLOSED


def test_cancelled_aattach_leaves_nothing(booted, xs):
    """aattach_disk cancelled while it awaits Connected: the disk is removed again (as
    the blocking form's rollback does): no entries, no loop device."""
    import pyxen.devices as D
    domid = booted["guest"].domid
    img = make_img("cancel-disk")
    before = snapshot(xs)
    vbds = set(xs.ls(f"/local/domain/{domid}/device/vbd")) \
        if xs.exists(f"/local/domain/{domid}/device/vbd") else set()

    async def main():
        with D.Devices() as devs:
            task = asyncio.ensure_future(devs.aattach_disk(
                domid, f"format=raw, vdev=xvdd, access=rw, target={img}", timeout=120))
            await asyncio.sleep(0)      # the entries are written, Connected awaited
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    try:
        asyncio.run(main())
        after = set(xs.ls(f"/local/domain/{domid}/device/vbd")) \
            if xs.exists(f"/local/domain/{domid}/device/vbd") else set()
        assert after == vbds
        assert wait_for(lambda: snapshot(xs) == before, 30), (snapshot(xs), before)
        assert wait_for(lambda: loops_of(img) == [], 30), loops_of(img)
    finally:
        os.unlink(img)


def test_cancelled_abuild_leaves_nothing(guest_kit, xs):
    """abuild cancelled at once: the build finishes in the executor, then the guest is
    destroyed (domain and xenstore entries)."""
    import pyxen.guest as G
    spec = G.BuildSpec(name="pyxen-async-cancelled", kernel=guest_kit["kernel"],
                       ramdisk=guest_kit["ramdisk"], memory=64, paused=True,
                       cmdline="console=hvc0 pyxen.action=wait")
    before = snapshot(xs)

    async def main():
        task = asyncio.ensure_future(G.abuild(spec))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert "pyxen-async-cancelled" not in xl_names()
    assert wait_for(lambda: snapshot(xs) == before, 30), (snapshot(xs), before)


def test_pending_death_await_raises_when_context_closes(guest_kit):
    """A pending await on a Context closed from another thread raises HandleClosedError."""
    import pyxen.light
    from pyxen.errors import HandleClosedError
    c = pyxen.light.open()

    async def main():
        w = c.watch_death(0)            # dom0 never dies: the await stays pending
        threading.Timer(0.5, c.close).start()
        with pytest.raises(HandleClosedError):
            await w.await_for(timeout=60)
        w.close()

    try:
        asyncio.run(main())
    finally:
        c.close()
