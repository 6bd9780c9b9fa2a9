"""Watch objects (``xs.watch(path)``): one event stream per watch on a shared handle, no
consumer stealing another's events; close from another thread ends pending reads."""

import asyncio
import gc
import select
import threading
import time
import uuid

import pytest

import pyxen.xenstore as X
from pyxen.errors import HandleClosedError


@pytest.fixture
def base(xs):
    path = f"/pyxen-test/{uuid.uuid4().hex[:12]}"
    xs.mkdir(path)
    yield path
    try:
        xs.rm(path)
    except (X.XenStoreError, ValueError):
        pass


def _collect(read, n, timeout=20.0):
    """n events from read(timeout) (fewer if they stop coming), then whatever else comes
    within half a second (there should be nothing)."""
    got, deadline = [], time.monotonic() + timeout
    while len(got) < n:
        left = deadline - time.monotonic()
        ev = read(left) if left > 0 else None
        if ev is None:
            break
        got.append(ev)
    while True:
        ev = read(0.5)
        if ev is None:
            return got
        got.append(ev)


def test_two_watches_on_overlapping_paths_each_get_their_own(xs, base):
    xs.mkdir(f"{base}/a")
    xs.mkdir(f"{base}/b")                      # no implicit parents: one event per write
    xs.watch(base, "legacy")                   # a handle-level reader on the same handle
    wa = xs.watch(f"{base}/a")
    wb = xs.watch(base)
    assert isinstance(wa, X.Watch) and wa.path == f"{base}/a"
    writes = [f"{base}/a/x", f"{base}/b/y", f"{base}/a/z", f"{base}/b/w", f"{base}/a/x"]
    for p in writes:
        xs.write(p, b"1")
    # wb's reader dispatches everything (wa's events too) before wa looks at its own
    evb = _collect(wb.read, 1 + len(writes))
    eva = _collect(wa.read, 1 + 3)
    assert [e.path for e in evb] == [base] + writes
    assert [e.path for e in eva] == [f"{base}/a", f"{base}/a/x", f"{base}/a/z", f"{base}/a/x"]
    assert all(e.token is wb for e in evb) and all(e.token is wa for e in eva)
    legacy = _collect(xs.read_watch, 1 + len(writes))
    assert [(e.path, e.token) for e in legacy] == [(p, "legacy") for p in [base] + writes]
    assert xs.check_watch() is None and wa.check() is None and wb.check() is None
    wa.close()
    wb.close()


def test_threads_reading_their_own_watches_with_interleaved_writes(xs, base):
    paths = [f"{base}/t{i}" for i in range(3)]
    for p in paths:
        xs.mkdir(p)
    watches = [xs.watch(p) for p in paths]
    rounds = 20
    got: dict[int, list] = {}

    def reader(i):
        got[i] = [e.path for e in _collect(watches[i].read, 1 + rounds, timeout=60)]

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    for th in threads:
        th.start()
    for k in range(rounds):
        for p in paths:
            xs.write(f"{p}/n", str(k))
    for th in threads:
        th.join(90)
    assert not any(th.is_alive() for th in threads)
    for i, p in enumerate(paths):
        assert got[i] == [p] + [f"{p}/n"] * rounds, i
    for w in watches:
        w.close()


def test_watch_fileno_with_select(xs, base):
    xs.mkdir(f"{base}/mine")
    xs.mkdir(f"{base}/theirs")
    w = xs.watch(f"{base}/mine")
    other = xs.watch(f"{base}/theirs")
    # the other watch's registration event first: until xenstored has sent it, it may
    # arrive at any time and make our descriptor readable (for a dispatch, not for us)
    assert other.read(10) == X.WatchEvent(f"{base}/theirs", other)
    fd = w.fileno()
    r, _, _ = select.select([fd], [], [], 10)
    assert r == [fd]
    assert w.check() == X.WatchEvent(f"{base}/mine", w)
    assert w.check() is None
    assert select.select([fd], [], [], 0.2)[0] == []
    xs.write(f"{base}/mine/n", b"1")
    assert select.select([fd], [], [], 10)[0] == [fd]
    assert w.check() == X.WatchEvent(f"{base}/mine/n", w)
    assert w.check() is None
    # another watch's event wakes us while it is not yet dispatched, but never reaches
    # us; once check() has dispatched it the descriptor is quiet again
    xs.write(f"{base}/theirs/n", b"1")
    assert select.select([fd], [], [], 10)[0] == [fd]
    assert w.check() is None
    assert select.select([fd], [], [], 0.2)[0] == []
    assert [e.path for e in _collect(other.read, 1)] == [f"{base}/theirs/n"]
    w.close()
    other.close()


def test_async_for_and_timeouts(xs, base):
    async def main():
        loop = asyncio.get_running_loop()
        nthreads = threading.active_count()
        w = xs.watch(base)
        loop.call_later(0.2, xs.write, f"{base}/a1", b"1")
        loop.call_later(0.4, xs.rm, f"{base}/a1")
        seen = []
        async for ev in w:
            assert ev.token is w
            seen.append(ev.path)
            if seen.count(f"{base}/a1") == 2:
                break
        idle = [ev async for ev in w.aevents(timeout=0.3)]
        none = await w.aread(0.2)
        loop.call_later(0.2, xs.write, f"{base}/a2", b"2")
        late = await w.aread(10)
        assert threading.active_count() == nthreads      # no Python thread was started
        w.close()
        after = [ev async for ev in w]                   # a closed Watch: the loop ends
        return seen, idle, none, late, after

    seen, idle, none, late, after = asyncio.run(main())
    assert seen == [base, f"{base}/a1", f"{base}/a1"]
    assert idle == [] and none is None and after == []
    assert late.path == f"{base}/a2"


def test_close_unwatches_and_stops_delivery(xs, base):
    keep = xs.watch(base)
    with xs.watch(base) as w:
        assert w.read(10).path == base
        assert (base, w) in xs.watches
    assert w.closed and (base, w) not in xs.watches
    xs.write(f"{base}/after", b"x")
    with pytest.raises(HandleClosedError):
        w.read(0.5)
    with pytest.raises(HandleClosedError):
        w.check()
    assert list(w.events(0.5)) == []
    w.close()                                           # idempotent
    assert [e.path for e in _collect(keep.read, 2)] == [base, f"{base}/after"]
    # a Watch dropped without close() is unwatched too (at the next dispatch)
    n = len(xs.watches)
    dropped = xs.watch(base)
    del dropped
    gc.collect()
    keep.check()
    assert len(xs.watches) == n
    keep.close()


def test_close_from_another_thread_ends_pending_reads(base):
    h = X.open()
    h.watch(base, "legacy")
    w = h.watch(base)
    assert w.read(10).path == base and h.read_watch(10).path == base
    outcome: dict[str, object] = {}

    def pending(name, fn):
        try:
            outcome[name] = fn()
        except BaseException as e:
            outcome[name] = e

    threads = [threading.Thread(target=pending, args=("watch", lambda: w.read(None))),
               threading.Thread(target=pending, args=("handle", lambda: h.read_watch(None))),
               threading.Thread(target=pending,
                                args=("events", lambda: list(h.events(None))))]
    for th in threads:
        th.start()
    time.sleep(0.5)
    fd = w.fileno()
    assert select.select([fd], [], [], 0)[0] == []
    h.close()
    for th in threads:
        th.join(10)
    assert not any(th.is_alive() for th in threads)
    assert isinstance(outcome["watch"], HandleClosedError), outcome
    assert isinstance(outcome["handle"], HandleClosedError), outcome
    assert outcome["events"] == []                     # the handle-level iterator just ends
    assert select.select([fd], [], [], 10)[0] == [fd]  # select() users wake
    with pytest.raises(HandleClosedError):
        w.check()
    w.close()


def test_close_from_another_thread_ends_async_iteration(base):
    h = X.open()
    h.watch(base, "legacy")
    w = h.watch(base)

    async def drain(it):
        try:
            return [ev.path async for ev in it]
        except HandleClosedError as e:
            return e

    async def main():
        threading.Timer(0.5, h.close).start()
        return await asyncio.wait_for(asyncio.gather(drain(w), drain(h.aevents())), 60)

    res_w, res_h = asyncio.run(main())
    assert isinstance(res_w, HandleClosedError) and isinstance(res_h, HandleClosedError)


def test_wait_state_alongside_user_watch_and_aevents(xs, xc, base):
    from pyxen.devices import Devices, XenbusState
    dev = f"{base}/dev"
    xs.write(f"{dev}/state", str(int(XenbusState.INITIALISING)))
    xs.watch(base, "user")
    w = xs.watch(base)
    states = [XenbusState.INIT_WAIT, XenbusState.INITIALISED, XenbusState.CONNECTED]
    result: dict[str, object] = {}

    def waiter():
        try:
            with Devices(xs=xs, xc=xc) as d:
                d.wait_state(dev, XenbusState.CONNECTED, 60, what="fake device")
            result["ok"] = True
        except BaseException as e:
            result["ok"] = e

    def writer():
        for st in states:
            time.sleep(0.2)
            xs.write(f"{dev}/state", str(int(st)))
            xs.write(f"{base}/other", str(int(st)))

    async def main():
        async def legacy():
            out = []
            async for ev in xs.aevents(timeout=5):
                out.append((ev.path, ev.token))
            return out

        async def mine():
            return [ev.path async for ev in w.aevents(timeout=5)]

        th_w = threading.Thread(target=waiter)
        th_w.start()
        th_x = threading.Thread(target=writer)
        th_x.start()
        res = await asyncio.gather(legacy(), mine())
        th_x.join(30)
        th_w.join(60)
        return res

    legacy, mine = asyncio.run(main())
    assert result.get("ok") is True, result
    want = [base] + [f"{base}/{n}" for _ in states for n in ("dev/state", "other")]
    assert mine == want
    assert legacy == [(p, "user") for p in want]
    w.close()


def test_supervisor_alongside_user_watches(xs, xc, base):
    from pyxen.guest import Supervisor
    xs.watch(base, "user")
    w = xs.watch(base)
    with Supervisor(xc=xc, xs=xs) as sup:
        # the user's readers dispatch the Supervisor's initial @releaseDomain event: kept
        assert xs.read_watch(10).path == base and w.read(10).path == base
        assert sup._watch.read(10).path == "@releaseDomain"
        for k in range(5):
            xs.write(f"{base}/n{k}", b"1")
            assert sup.poll(0.2) == []                 # drains its own stream only
    want = [f"{base}/n{k}" for k in range(5)]
    assert [e.path for e in _collect(xs.read_watch, 5)] == want
    assert [e.path for e in _collect(w.read, 5)] == want
    assert all(p != "@releaseDomain" for p, _ in xs.watches)
    w.close()
