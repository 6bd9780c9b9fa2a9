"""pyxen.ring's protocol logic on ordinary memory (the ring is only memory): a FrontRing and
a BackRing in one process over a bytearray or an ffi.new buffer; sizes as ring.h computes
them, the notification hold-off rules, overflow from a hostile peer, the console ring."""

import random
import struct
import threading

import pytest

from pyxen import ring
from pyxen.errors import (ArgumentError, HandleClosedError, PyxenError, ReadOnlyError,
                          RingFullError, RingLayoutError, RingOverflowError)

ffi, lib = ring.native()
PAGE = ring.PAGE_SIZE
BLK = ("blkif_request_t", "blkif_response_t")
HDR = struct.Struct("<4I")  # req_prod, req_event, rsp_prod, rsp_event


def pair(nbytes=PAGE, types=BLK, buf=None):
    buf = bytearray(nbytes) if buf is None else buf
    return buf, ring.FrontRing(buf, *types), ring.BackRing(buf, *types)


@pytest.mark.parametrize("tag,req,rsp", [
    ("blkif", "blkif_request_t", "blkif_response_t"),
    ("netif_tx", "netif_tx_request_t", "netif_tx_response_t"),
    ("netif_rx", "netif_rx_request_t", "netif_rx_response_t")])
@pytest.mark.parametrize("order", [0, 1, 2, 4])
def test_size_is_ring_h_size(tag, req, rsp, order):
    # the compiler's DEFINE_RING_TYPES layout: entry = the union, entries after the header
    entry = ffi.sizeof(f"union {tag}_sring_entry")
    offset = ffi.offsetof(f"struct {tag}_sring", "ring")
    nbytes = PAGE << order
    fit = (nbytes - offset) // entry
    want = 1 << (fit.bit_length() - 1)  # __RD32: rounded down to a power of two
    assert ring.ring_size(req, rsp, nbytes) == want
    r = ring.FrontRing(bytearray(nbytes), req, rsp)
    assert r.size == want and r._entry == entry and r._offset == offset


def test_known_sizes():
    assert ring.ring_size(*BLK) == 32             # blkfront's BLK_RING_SIZE for one page
    assert ring.ring_size(*BLK, 4 * PAGE) == 128
    assert ring.ring_size("netif_tx_request_t", "netif_tx_response_t") == 256
    assert ring.ring_size("netif_rx_request_t", "netif_rx_response_t") == 256


def test_init_writes_the_header_as_shared_ring_init():
    buf = bytearray(b"\xff" * PAGE)
    ring.FrontRing(buf, *BLK)
    assert HDR.unpack_from(buf) == (0, 1, 0, 1)
    assert buf[16:64] == bytes(48)  # pvt and __pad zeroed
    assert buf[64] == 0xFF          # entries untouched


def test_views_are_the_slots_and_copies_are_private():
    buf, f, b = pair()
    req = f.next_request()
    req.id, req.operation, req.sector_number = 0x1122334455667788, lib.BLKIF_OP_WRITE, 99
    req.seg[10].gref = 77
    assert struct.unpack_from("<Q", buf, 64 + ffi.offsetof("blkif_request_t", "id"))[0] \
        == 0x1122334455667788
    assert f.push_requests() is True  # first request: req_event is 1
    assert HDR.unpack_from(buf)[0] == 1
    got = b.get_request()
    assert (got.id, got.operation, got.sector_number, got.seg[10].gref) == \
        (0x1122334455667788, lib.BLKIF_OP_WRITE, 99, 77)
    req.id = 5  # the frontend changes the slot afterwards: the backend's copy is its own
    assert got.id == 0x1122334455667788
    assert b.request_view(0).id == 5
    assert b.get_request() is None


def test_put_forms():
    _, f, b = pair(types=("netif_tx_request_t", "netif_tx_response_t"))
    f.put_request({"gref": 3, "offset": 4, "flags": 5, "id": 6, "size": 7})
    c = ffi.new("netif_tx_request_t *", {"id": 9})
    f.put_request(c)
    f.put_request(c[0])
    f.put_request(bytes(ffi.buffer(c)))
    f.push_requests()
    reqs = b.take_requests()
    assert [(r.gref, r.id, r.size) for r in reqs] == [(3, 6, 7), (0, 9, 0), (0, 9, 0), (0, 9, 0)]
    with pytest.raises(ArgumentError):
        f.put_request(b"short")
    with pytest.raises(ArgumentError):
        f.put_request({"no_such_field": 1})
    with pytest.raises(ArgumentError):
        f.put_request({"id": 1 << 20})
    with pytest.raises(TypeError):
        f.put_request(ffi.new("blkif_response_t *"))
    with pytest.raises(TypeError):
        f.put_request(3.5)
    for r in reqs:
        b.put_response({"id": r.id, "status": lib.NETIF_RSP_OKAY})
    b.push_responses()
    assert [r.id for r in f.take_responses()] == [6, 9, 9, 9]


def test_ffi_new_buffer_and_multi_page():
    buf = ffi.new("char[]", 8 * PAGE)
    f = ring.FrontRing(buf, *BLK)
    b = ring.BackRing(buf, *BLK)
    assert f.size == 256
    for i in range(256):
        f.put_request({"id": i})
    assert f.full and f.free_requests == 0
    with pytest.raises(RingFullError):
        f.put_request({"id": 1})
    with pytest.raises(RingFullError):
        f.next_request()
    f.push_requests()
    assert b.unconsumed_requests() == 256
    assert [r.id for r in b.take_requests()] == list(range(256))
    # the backend answers nothing more than it consumed
    for i in range(256):
        b.put_response({"id": i})
    with pytest.raises(RingFullError):
        b.put_response({"id": 0})
    b.push_responses()
    assert [r.id for r in f.take_responses(100)] == list(range(100))
    assert f.unconsumed_responses() == 156 and f.free_requests == 100


def test_notification_hold_off_rules():
    _, f, b = pair()
    # the backend asked (req_event = 1) for the first request
    f.put_request({"id": 1})
    assert f.push_requests() is True
    # it has not re-armed: more requests need no notification
    f.put_request({"id": 2})
    assert f.push_requests() is False
    assert f.push_requests() is False  # nothing new
    assert [r.id for r in b.take_requests()] == [1, 2]
    assert b.final_check_for_requests() is False  # arms req_event = req_cons + 1
    assert b.req_event == 3
    f.put_request({"id": 3})
    f.put_request({"id": 4})
    assert f.push_requests() is True  # both published at once: one notification
    # final check with work waiting does not re-arm
    assert b.final_check_for_requests() is True and b.req_event == 3
    assert [r.id for r in b.take_requests()] == [3, 4]
    # responses: rsp_event starts at 1
    for i in range(4):
        b.put_response({"id": i})
    assert b.push_responses() is True
    assert b.push_responses() is False
    assert len(f.take_responses()) == 4
    assert f.final_check_for_responses() is False and f.rsp_event == 5
    assert (f.pushes, f.notifications, b.pushes, b.notifications) == (4, 2, 2, 1)


def test_notify_callback_called_only_when_needed():
    calls = []
    buf = bytearray(PAGE)
    f = ring.FrontRing(buf, *BLK, notify=lambda: calls.append("b"))
    b = ring.BackRing(buf, *BLK, notify=lambda: calls.append("f"))
    f.put_request({"id": 1})
    f.push_requests()
    f.put_request({"id": 2})
    f.push_requests()
    assert calls == ["b"]
    b.take_requests()
    b.put_response({"id": 1})
    b.push_responses()
    assert calls == ["b", "f"]


def run_random(seed, n=10_000, nbytes=PAGE):
    """One frontend and one backend interleaved at random; a side that found no work
    sleeps (after its final check) until notified. Returns the counters."""
    rnd = random.Random(seed)
    buf, f, b = pair(nbytes)
    f_sleeping = b_sleeping = False
    next_id, got = 0, []
    f_woken = b_woken = 0
    steps = 0
    while len(got) < n:
        steps += 1
        assert steps < 50 * n, "no progress: a lost wakeup"
        if rnd.random() < 0.5 and not f_sleeping:
            # frontend: produce a batch, push, collect responses; sleep if nothing to do
            for _ in range(min(rnd.randint(0, 12), f.free_requests, n - next_id)):
                f.put_request({"id": next_id, "sector_number": next_id * 3})
                next_id += 1
            if f.push_requests():
                if b_sleeping:
                    b_woken += 1
                b_sleeping = False
            else:
                # the rule under test: no notification only while the backend is awake
                assert not b_sleeping or b.unconsumed_requests() == 0
            rsps = f.take_responses(rnd.randint(1, 40))
            for r in rsps:
                assert r.id == len(got) and r.status == lib.BLKIF_RSP_OKAY
                got.append(r.id)
            if not rsps and (next_id == n or f.full) and not f.final_check_for_responses():
                f_sleeping = True
        elif not b_sleeping:
            for r in b.take_requests(rnd.randint(1, 20)):
                assert r.sector_number == r.id * 3
                b.put_response({"id": r.id, "operation": lib.BLKIF_OP_READ,
                                "status": lib.BLKIF_RSP_OKAY})
            if b.push_responses():
                if f_sleeping:
                    f_woken += 1
                f_sleeping = False
            if not b.final_check_for_requests():
                b_sleeping = True
        else:
            assert not (f_sleeping and b_sleeping and b.unconsumed_requests() == 0
                        and f.unconsumed_responses() == 0 and len(got) < n), "deadlock"
    assert got == list(range(n))
    return f, b, f_woken, b_woken


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ten_thousand_requests_none_lost(seed):
    f, b, f_woken, b_woken = run_random(seed)
    assert b.req_cons == f.rsp_cons == 10_000
    # notifications were suppressed while the peer was awake, yet every sleeper woke
    assert 0 < f.notifications < f.pushes and 0 < b.notifications < b.pushes
    assert b_woken <= f.notifications and f_woken <= b.notifications


def test_two_threads_sleep_and_wake_by_the_rules():
    # each side sleeps on its own "event channel" (a threading.Event) after a final check
    # that found nothing, and is woken only by pushes that report a notification is needed
    n = 10_000
    buf = bytearray(2 * PAGE)
    to_back, to_front = threading.Event(), threading.Event()
    f = ring.FrontRing(buf, *BLK, notify=to_back.set)
    b = ring.BackRing(buf, *BLK, notify=to_front.set)
    errors = []

    def backend():
        done = 0
        try:
            while done < n:
                reqs = b.take_requests()
                for r in reqs:
                    b.put_response({"id": r.id, "status": lib.BLKIF_RSP_OKAY})
                done += len(reqs)
                if reqs:
                    b.push_responses()
                elif not b.final_check_for_requests():
                    assert to_back.wait(timeout=60), f"backend never woken after {done}"
                    to_back.clear()
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    t = threading.Thread(target=backend)
    t.start()
    sent, got = 0, []
    while len(got) < n and not errors:
        if sent < n and not f.full:
            while sent < n and not f.full:
                f.put_request({"id": sent})
                sent += 1
            f.push_requests()
        rsps = f.take_responses()
        got += [r.id for r in rsps]
        if not rsps and (sent == n or f.full) and not f.final_check_for_responses():
            assert to_front.wait(timeout=60), f"frontend never woken after {len(got)}"
            to_front.clear()
    t.join(60)
    assert not errors and not t.is_alive()
    assert got == list(range(n))
    assert 0 < f.notifications <= f.pushes and 0 < b.notifications <= b.pushes


def test_ten_thousand_multi_page_and_index_wrap():
    f, b, _, _ = run_random(7, n=3000, nbytes=4 * PAGE)
    assert f.size == 128
    # attach at indexes about to wrap modulo 2**32
    start = 0xFFFFFFFF - 50
    buf = bytearray(PAGE)
    f = ring.FrontRing(buf, *BLK, start=start)
    HDR.pack_into(buf, 0, start, start + 1, start, start + 1)
    b = ring.BackRing(buf, *BLK, start=start)
    for i in range(200):
        f.put_request({"id": i})
        assert f.push_requests() is True  # the backend re-arms after each request
        assert [r.id for r in b.take_requests()] == [i]
        assert b.final_check_for_requests() is False
        b.put_response({"id": i})
        b.push_responses()
        assert [r.id for r in f.take_responses()] == [i]
        assert f.final_check_for_responses() is False
    assert b.req_cons == (start + 200) & 0xFFFFFFFF


def test_hostile_req_prod_is_detected():
    buf, f, b = pair()
    for i in range(3):
        f.put_request({"id": i})
    f.push_requests()
    assert len(b.take_requests(2)) == 2
    for bogus in (33, 34, 1000, 0x80000000, 0xFFFFFFFF):  # rsp_prod_pvt is 0, size 32
        struct.pack_into("<I", buf, 0, bogus)
        for check in (b.unconsumed_requests, b.take_requests, b.final_check_for_requests,
                      b.get_request):
            with pytest.raises(RingOverflowError) as ei:
                check()
            assert ei.value.prod == bogus and ei.value.limit == 32
            assert isinstance(ei.value, PyxenError) and isinstance(ei.value, ValueError)
        assert b.req_cons == 2  # nothing consumed
    # exactly a full ring beyond the answered responses is legitimate
    struct.pack_into("<I", buf, 0, 32)
    assert b.unconsumed_requests() == 30  # 32 - req_cons; never more than 32 in flight
    struct.pack_into("<I", buf, 0, 3)
    assert [r.id for r in b.take_requests()] == [2]


def test_in_flight_limit_with_a_hostile_front():
    # RING_REQUEST_CONS_OVERFLOW: the back never consumes more than it can answer
    buf, f, b = pair()
    struct.pack_into("<I", buf, 0, 32)
    assert len(b.take_requests()) == 32
    assert b.unconsumed_requests() == 0 and b.take_requests() == []
    b.put_response({"id": 0})
    b.push_responses()
    struct.pack_into("<I", buf, 0, 33)
    assert len(b.take_requests()) == 1


def test_hostile_rsp_prod_is_detected():
    buf, f, b = pair()
    struct.pack_into("<I", buf, 8, 33)
    with pytest.raises(RingOverflowError):
        f.take_responses()
    with pytest.raises(RingOverflowError):
        f.final_check_for_responses()
    assert f.rsp_cons == 0


def test_layout_errors():
    with pytest.raises(RingLayoutError):
        ring.FrontRing(bytearray(PAGE), "no_such_t", "blkif_response_t")
    with pytest.raises(RingLayoutError):
        ring.FrontRing(bytearray(PAGE), "blkif_request_t *", "blkif_response_t")
    with pytest.raises(RingLayoutError):
        ring.FrontRing(bytearray(100), *BLK)  # not one entry after the header
    with pytest.raises(RingLayoutError):
        ring.FrontRing(memoryview(bytearray(PAGE + 1))[1:], *BLK)  # misaligned
    with pytest.raises(ReadOnlyError):
        ring.FrontRing(bytes(PAGE), *BLK)
    with pytest.raises(TypeError):
        ring.BackRing(object(), *BLK)


def test_close_releases_the_buffer_and_views_stay_valid():
    buf = bytearray(PAGE)
    f = ring.FrontRing(buf, *BLK)
    v = f.next_request()
    with pytest.raises(BufferError):
        buf.append(0)  # exported while the ring is open
    f.close()
    f.close()
    with pytest.raises(HandleClosedError):
        f.push_requests()
    with pytest.raises(HandleClosedError):
        _ = f.req_prod
    v.id = 3  # the view keeps its own export: still the bytearray's memory
    assert struct.unpack_from("<Q", buf, 72)[0] == 3
    del v
    buf.append(0)
    with ring.BackRing(buf, *BLK) as b:
        assert not b.closed
    assert b.closed


# ------------------------------------------------------------------ the console ring

IN, OUT = ffi.offsetof("struct xencons_interface", "in"), \
    ffi.offsetof("struct xencons_interface", "out")
IDX = ffi.offsetof("struct xencons_interface", "in_cons")


def test_console_both_ends():
    page = bytearray(PAGE)
    guest = ring.ConsoleRing(page, side="frontend")
    back = ring.ConsoleRing(page)
    assert guest.space() == 2048 and back.space() == 1024
    assert guest.write(b"hello ") == 6 and guest.write(b"world") == 5
    assert page[OUT:OUT + 11] == b"hello world"
    assert back.readable() == 11 and back.peek() == b"hello world"
    assert back.read(6) == b"hello " and back.read() == b"world" and back.read() == b""
    assert back.history() == b"hello world"
    assert back.write(b"x" * 2000) == 1024  # the in ring holds 1024
    assert guest.read(24) == b"x" * 24 and back.write(b"abc" * 10) == 24
    assert guest.readable() == 1024
    data = guest.read()
    assert data == b"x" * 1000 + (b"abc" * 10)[:24]


def test_console_wraps_and_history():
    page = bytearray(PAGE)
    guest, back = ring.ConsoleRing(page, side="frontend"), ring.ConsoleRing(page)
    sent = b"".join(b"line %05d\n" % i for i in range(1000))
    got = b""
    for i in range(0, len(sent), 700):
        assert guest.write(sent[i:i + 700]) == len(sent[i:i + 700])
        got += back.read()
    assert got == sent
    assert back.history() == sent[-2048:]


def test_console_read_only_and_hostile():
    page = bytearray(PAGE)
    struct.pack_into("<4I", page, IDX, 0, 0, 0, 5)
    page[OUT:OUT + 5] = b"abcde"
    ro = ring.ConsoleRing(bytes(page))
    assert ro.peek() == b"abcde" and ro.history() == b"abcde" and not ro.writable
    with pytest.raises(ReadOnlyError):
        ro.read()
    with pytest.raises(ReadOnlyError):
        ro.write(b"x")
    struct.pack_into("<4I", page, IDX, 0, 0, 10, 3000)  # out_prod 2990 ahead of out_cons
    back = ring.ConsoleRing(page)
    with pytest.raises(RingOverflowError):
        back.read()
    struct.pack_into("<4I", page, IDX, 5000, 0, 0, 0)  # in_cons beyond in_prod
    with pytest.raises(RingOverflowError):
        back.write(b"x")
    with pytest.raises(RingLayoutError):
        ring.ConsoleRing(bytearray(100))
    with pytest.raises(ArgumentError):
        ring.ConsoleRing(page, side="guest")  # type: ignore[arg-type]
    back.close()
    with pytest.raises(HandleClosedError):
        back.peek()


def test_a_mapping_refuses_unmap_while_a_ring_is_open():
    from pyxen._mapped import Mapping, MappingBusyError

    class Core:  # what a Mapping needs of its handle: the C handle and a release
        raw, released = None, 0

        def release(self):
            self.released += 1

    mem, unmapped = ffi.new("char[]", PAGE), []
    core = Core()
    m = Mapping(ffi, core, mem, PAGE, True, lambda raw, addr: unmapped.append(addr))
    f = ring.FrontRing(m, *BLK)
    view = f.request_view(0)
    with pytest.raises(MappingBusyError):
        m.unmap()
    f.close()
    m.unmap()  # the slot view keeps the memory mapped until it goes
    assert not unmapped
    view.id = 9
    del view
    import gc
    gc.collect()
    assert len(unmapped) == 1 and core.released == 1
