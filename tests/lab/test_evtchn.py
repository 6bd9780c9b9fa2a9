"""pyxen.evtchn against the real hypervisor: an interdomain pair within dom0 (one handle
binds an unbound port for domain 0, the other binds interdomain to it)."""

import asyncio
import threading

import pytest

from pyxen import evtchn
from pyxen.errors import DomainNotFoundError, HandleClosedError, PyxenError


@pytest.fixture
def pair():
    a, b = evtchn.open(), evtchn.open()
    pa = a.bind_unbound_port(0)
    pb = b.bind_interdomain(0, pa)
    # Xen marks a newly bound interdomain port pending (a notify sent before the bind
    # is not lost): the binding side sees one event first
    assert b.wait(timeout=30) == pb
    assert a.pending() is None and b.pending() is None
    yield a, pa, b, pb
    a.close()
    b.close()


def test_ping_pong(pair):
    a, pa, b, pb = pair
    assert pa != pb
    for _ in range(5):
        a.notify(pa)
        assert b.wait(timeout=30) == pb
        b.notify(pb)
        assert a.wait(timeout=30) == pa
    # nothing more is pending on either side
    assert a.pending() is None and b.pending() is None


def test_masked_until_unmask(pair):
    a, pa, b, pb = pair
    a.notify(pa)
    assert b.wait(timeout=30, unmask=False) == pb
    a.notify(pa)  # latched while masked: delivered once unmasked
    assert b.pending(unmask=False) is None
    b.unmask(pb)
    assert b.wait(timeout=30) == pb


def test_wait_timeout_returns_none(pair):
    a, pa, b, pb = pair
    assert b.wait(timeout=0.2) is None


def test_fileno_is_pollable(pair):
    import select
    a, pa, b, pb = pair
    assert isinstance(b.fileno(), int)
    a.notify(pa)
    r, _, _ = select.select([b], [], [], 30)
    assert r == [b]
    assert b.pending() == pb


def test_async_iteration_and_callbacks(pair):
    a, pa, b, pb = pair
    seen = []
    b.on(pb, seen.append)

    async def main():
        got = []
        it = b.events()
        for _ in range(3):
            asyncio.get_running_loop().call_soon(a.notify, pa)
            got.append(await asyncio.wait_for(it.__anext__(), 30))
        await it.aclose()
        return got

    assert asyncio.run(main()) == [pb, pb, pb]
    assert seen == [pb, pb, pb]
    a.notify(pa)
    assert b.dispatch(timeout=30) == pb
    assert seen == [pb] * 4


def test_close_wakes_waiter_from_another_thread(pair):
    a, pa, b, pb = pair
    out = []

    def waiter():
        try:
            out.append(b.wait())
        except HandleClosedError as e:
            out.append(e)

    t = threading.Thread(target=waiter)
    t.start()
    t.join(0.5)
    b.close()
    t.join(60)
    assert not t.is_alive()
    assert isinstance(out[0], HandleClosedError)
    with pytest.raises(HandleClosedError):
        b.notify(pb)
    b.close()  # idempotent


def test_async_iteration_ends_on_close(pair):
    a, pa, b, pb = pair

    async def main():
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, b.close)
        return [p async for p in b]

    assert asyncio.run(main()) == []


def test_unbind_then_notify_fails(pair):
    a, pa, b, pb = pair
    b.unbind(pb)
    with pytest.raises(evtchn.EvtchnError) as ei:
        b.notify(pb)
    assert isinstance(ei.value, PyxenError)


def test_bad_domid_is_typed_error():
    with evtchn.open() as ev:
        with pytest.raises(evtchn.EvtchnError) as ei:
            ev.bind_interdomain(31000, 1)
        assert isinstance(ei.value, DomainNotFoundError)
        assert ei.value.domid == 31000
        with pytest.raises(evtchn.EvtchnInvalidError):
            ev.bind_interdomain(0, 1 << 20)  # no such remote port


def test_bind_virq():
    with evtchn.open() as ev:
        port = ev.bind_virq(evtchn.Virq.TBUF)  # global, unbound in the lab
        assert port > 0
        ev.unbind(port)


def test_context_manager_closes():
    with evtchn.open() as ev:
        ev.bind_unbound_port(0)
    assert ev.closed
    with pytest.raises(HandleClosedError):
        ev.fileno()
