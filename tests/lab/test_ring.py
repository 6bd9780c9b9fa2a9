"""pyxen.ring against the real hypervisor: a frontend over pages shared with gntshr and a
backend over the same pages mapped with gnttab (dom0 to dom0), notifications through an
interdomain event-channel pair; 10,000 requests to a backend in another process, the
notification hold-off rules, a multi-page ring, a hostile req_prod, and a running PV
guest's console ring read through a foreign mapping."""

import json
import os
import struct
import subprocess
import sys
import time

import pytest

from conftest import run_tool, xl_guest
from pyxen import evtchn, foreignmemory, gnttab, ring
from pyxen.errors import ReadOnlyError, RingFullError, RingOverflowError

ffi, lib = ring.native()
BLK = ("blkif_request_t", "blkif_response_t")
BACKEND = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ring_backend.py")
WAIT = 120.0


@pytest.fixture(scope="module", autouse=True)
def drivers():
    for dev, mod in (("/dev/xen/gntdev", "xen-gntdev"), ("/dev/xen/gntalloc", "xen-gntalloc")):
        if not os.path.exists(dev):
            subprocess.run(["modprobe", mod], check=False)
        assert os.path.exists(dev), f"no {dev} in the lab dom0"


@pytest.fixture
def gs():
    with gnttab.open_share() as h:
        yield h


@pytest.fixture
def gt():
    with gnttab.open() as h:
        yield h


@pytest.fixture
def channel():
    """(front handle, front port, back handle, back port): an interdomain pair in dom0,
    the back's initial pending event taken."""
    with evtchn.open() as a, evtchn.open() as b:
        pa = a.bind_unbound_port(0)
        pb = b.bind_interdomain(0, pa)
        assert b.wait(timeout=WAIT) == pb  # bind_interdomain leaves the new port pending
        yield a, pa, b, pb


def test_hold_off_rules_over_a_granted_page(gs, gt, channel):
    a, pa, b, pb = channel
    with gs.share(0) as sp, gt.map(0, sp.refs[0], writable=True) as m:
        front = ring.FrontRing(sp, *BLK, notify=lambda: a.notify(pa))
        back = ring.BackRing(m, *BLK, notify=lambda: b.notify(pb))
        with front, back:
            hold_off(front, back, a, pa, b, pb, sp, m)


def hold_off(front, back, a, pa, b, pb, sp, m):
    """The hold-off sequence of ring.h, each notification (or none) seen on the channel."""
    assert front.size == back.size == 32
    assert struct.unpack_from("<4I", m.buffer) == (0, 1, 0, 1)  # SHARED_RING_INIT, seen
    # the backend wants the first request notified (req_event 1)
    req = front.next_request()
    req.id, req.operation, req.sector_number = 1, lib.BLKIF_OP_READ, 7
    assert front.push_requests() is True
    assert b.wait(timeout=WAIT) == pb
    # it is awake (has not re-armed): the next push sends nothing
    front.put_request({"id": 2, "operation": lib.BLKIF_OP_READ, "sector_number": 14})
    assert front.push_requests() is False
    assert b.wait(timeout=0.5) is None  # no event was sent
    got = back.take_requests()
    assert [(r.id, r.sector_number) for r in got] == [(1, 7), (2, 14)]
    # done: arm req_event, sleep; the next request is notified again
    assert back.final_check_for_requests() is False
    assert struct.unpack_from("<I", sp.buffer, 4)[0] == 3  # req_event, front's view
    front.put_request({"id": 3})
    assert front.push_requests() is True
    assert b.wait(timeout=WAIT) == pb
    assert [r.id for r in back.take_requests()] == [3]
    # responses: rsp_event starts at 1
    for r in (1, 2, 3):
        back.put_response({"id": r, "status": lib.BLKIF_RSP_OKAY})
    assert back.push_responses() is True
    assert a.wait(timeout=WAIT) == pa
    with pytest.raises(RingFullError):
        back.put_response({"id": 4})  # more responses than requests consumed
    back.close()
    assert [r.id for r in front.take_responses()] == [1, 2, 3]
    assert front.final_check_for_responses() is False
    assert (front.pushes, front.notifications) == (3, 2)
    front.close()


@pytest.mark.parametrize("pages,count", [(1, 10_000), (4, 2_000)], ids=["1page", "4pages"])
def test_requests_to_a_backend_process_none_lost(gs, pages, count):
    with evtchn.open() as a:
        pa = a.bind_unbound_port(0)
        with gs.share(0, pages) as sp:
            front = ring.FrontRing(sp, *BLK, notify=lambda: a.notify(pa))
            assert front.size == ring.ring_size(*BLK, pages * ring.PAGE_SIZE)
            proc = subprocess.Popen([sys.executable, BACKEND, str(pa), str(count),
                                     *map(str, sp.refs)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                assert proc.stdout.readline().strip() == "READY", proc.stderr.read()
                sent, got, events = 0, [], 0
                while len(got) < count:
                    if sent < count and not front.full:
                        while sent < count and not front.full:
                            front.put_request({"id": sent, "operation": lib.BLKIF_OP_READ,
                                               "sector_number": sent * 7})
                            sent += 1
                        front.push_requests()
                    rsps = front.take_responses()
                    for r in rsps:
                        assert r.status == lib.BLKIF_RSP_OKAY, r.id
                        got.append(r.id)
                    if rsps or front.final_check_for_responses():
                        continue
                    assert a.wait(timeout=WAIT) == pa, f"lost wakeup after {len(got)}"
                    events += 1
                out, err = proc.communicate(timeout=WAIT)
            finally:
                front.close()  # before the pages are unshared
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    assert proc.returncode == 0, (out, err)
    rows = json.loads(out.strip().splitlines()[-1])
    assert got == list(range(count))  # none lost, none repeated, in order
    assert rows["done"] == count and rows["bad"] == 0 and rows["size"] == front.size
    # every event received was a notification sent (events coalesce; the back's port
    # started pending once)
    assert 0 < front.notifications <= front.pushes
    assert 0 < rows["notifications"] <= rows["pushes"]
    assert events <= rows["notifications"]
    assert rows["events"] <= front.notifications + 1
    print(f"ring {pages} page(s), {count} requests: front pushes {front.pushes} "
          f"notified {front.notifications} woke {events}; back pushes {rows['pushes']} "
          f"notified {rows['notifications']} woke {rows['events']}")


def test_hostile_req_prod_over_a_granted_page(gs, gt):
    with gs.share(0) as sp, gt.map(0, sp.refs[0], writable=True) as m:
        front = ring.FrontRing(sp, *BLK)
        back = ring.BackRing(m, *BLK)
        with front, back:
            hostile(front, back, sp)


def hostile(front, back, sp):
    """The frontend claims more requests than the ring holds."""
    for i in range(5):
        front.put_request({"id": i})
    front.push_requests()
    assert len(back.take_requests(3)) == 3
    struct.pack_into("<I", sp.buffer, 0, 3 + 40)  # the frontend claims 40 more
    with pytest.raises(RingOverflowError) as ei:
        back.take_requests()
    assert ei.value.prod == 43 and ei.value.limit == 32
    with pytest.raises(RingOverflowError):
        back.final_check_for_requests()
    assert back.req_cons == 3  # nothing consumed
    struct.pack_into("<I", sp.buffer, 0, 5)  # back to sense
    assert [r.id for r in back.take_requests()] == [3, 4]
    back.close()
    front.close()


def test_ring_holds_the_grant_mapping_until_closed(gs, gt):
    with gs.share(0) as sp:
        m = gt.map(0, sp.refs[0], writable=True)
        back = ring.BackRing(m, *BLK)
        view = back.request_view(0)
        with pytest.raises(gnttab.MappingBusyError):
            m.unmap()
        back.close()
        m.unmap()  # the view keeps the page mapped until it goes
        sp.write(b"\x2a", 64 + ffi.offsetof("blkif_request_t", "id"))
        assert view.id == 0x2a
        del view


MARKER = f"PYXEN-RING-{os.getpid()}"


@pytest.fixture(scope="module")
def guest(guest_kit, tmp_path_factory):
    name = f"pyxen-ring-{os.getpid()}"
    with xl_guest(name, guest_kit, tmp_path_factory.mktemp("ring"), memory=96, vcpus=1,
                  extra=f"console=hvc0 pyxen.action=wait pyxen.marker={MARKER}") as domid:
        gfn = int(run_tool("xenstore-read", f"/local/domain/{domid}/console/ring-ref"))
        yield domid, gfn


def test_read_a_running_guests_console_ring(guest):
    domid, gfn = guest
    deadline = time.monotonic() + 300
    text = ""
    with foreignmemory.open() as fm:
        while time.monotonic() < deadline:
            with fm.map(domid, [gfn]) as m, ring.ConsoleRing(m) as con:
                assert not con.writable
                assert 0 <= con.readable() <= 2048  # xenconsoled's consumer index checked
                text = con.history().decode("latin-1")
                with pytest.raises(ReadOnlyError):
                    con.write(b"x")
            if MARKER in text:
                break
            time.sleep(2)
    assert MARKER in text, f"marker not in the console ring; its tail: {text[-300:]!r}"
    assert "uname=" in text.split(MARKER, 1)[1]
