"""pyxen.gnttab against the real hypervisor: pages shared with gntshr (gntalloc) and
mapped with gnttab (gntdev) dom0 to dom0, grant copy, unmap notification, bad input."""

import os
import subprocess

import pytest

from pyxen import evtchn, gnttab
from pyxen._native import xen
from pyxen.errors import HandleClosedError, PyxenError

PAGE = gnttab.PAGE_SIZE


@pytest.fixture(scope="module", autouse=True)
def drivers():
    if not (os.path.exists("/dev/xen/gntdev") and os.path.exists("/dev/xen/gntalloc")):
        subprocess.run(["modprobe", "xen-gntdev"], check=False)
        subprocess.run(["modprobe", "xen-gntalloc"], check=False)
    assert os.path.exists("/dev/xen/gntdev"), "no /dev/xen/gntdev in the lab dom0"
    assert os.path.exists("/dev/xen/gntalloc"), "no /dev/xen/gntalloc in the lab dom0"


@pytest.fixture
def gs():
    with gnttab.open_share() as h:
        yield h


@pytest.fixture
def gt():
    with gnttab.open() as h:
        yield h


def test_shared_page_sees_writes_both_ways(gs, gt):
    with gs.share(0) as sp:
        assert len(sp.refs) == 1 and len(sp) == PAGE
        assert sp.read() == bytes(PAGE)  # gntalloc hands out zeroed pages
        with gt.map(0, sp.refs[0], writable=True) as m:
            sp.write(b"from the sharer", 0)
            assert m.read(0, 15) == b"from the sharer"
            m.write(b"from the mapper", 1000)
            assert sp.read(1000, 15) == b"from the mapper"
            m.buffer[4095] = 0x5A  # the memoryview is the page itself, no copy
            assert sp.buffer[4095] == 0x5A
            sp.buffer[2000:2004] = b"\x01\x02\x03\x04"
            assert bytes(m.buffer[2000:2004]) == b"\x01\x02\x03\x04"


def test_batch_map_in_given_order(gs, gt):
    with gs.share(0, 3) as sp:
        for i in range(3):
            sp.write(bytes([0xA0 + i]) * 16, i * PAGE)
        order = [2, 0, 1]
        with gt.map(0, [sp.refs[i] for i in order]) as m:
            assert len(m) == 3 * PAGE
            for slot, i in enumerate(order):
                assert m.read(slot * PAGE, 16) == bytes([0xA0 + i]) * 16


def test_read_only_mapping(gs, gt):
    with gs.share(0) as sp:
        sp.write(b"ro")
        with gt.map(0, sp.refs[0]) as m:
            assert m.buffer.readonly
            assert m.read(0, 2) == b"ro"
            with pytest.raises(PermissionError):
                m.write(b"no")
            with pytest.raises(TypeError):
                m.buffer[0] = 1


def test_grant_copy_moves_exact_bytes(gs, gt):
    pattern = bytes((i * 7 + 3) & 0xFF for i in range(PAGE))
    with gs.share(0) as sp:
        sp.write(pattern)
        ref = sp.refs[0]
        a, b = bytearray(100), bytearray(PAGE - 4000)
        gt.copy([gnttab.FromGrant(0, ref, 10, a), gnttab.FromGrant(0, ref, 4000, b)])
        assert bytes(a) == pattern[10:110]
        assert bytes(b) == pattern[4000:]
        gt.copy([gnttab.ToGrant(b"exact bytes", 0, ref, 500)])
        assert sp.read(490, 30) == pattern[490:500] + b"exact bytes" + pattern[511:520]


def test_grant_copy_bad_ref_names_the_segment(gs, gt):
    with gs.share(0) as sp:
        out = bytearray(8)
        with pytest.raises(gnttab.GrantCopyError) as ei:
            gt.copy([gnttab.FromGrant(0, sp.refs[0], 0, out),
                     gnttab.FromGrant(0, 0xFFFF00, 0, bytearray(8))])
        assert ei.value.failed == [1]
        assert ei.value.statuses[0] == 0 and ei.value.statuses[1] < 0
        assert isinstance(ei.value, PyxenError)


def test_unmap_notify_clears_byte_and_signals(gs, gt):
    with evtchn.open() as a, evtchn.open() as b:
        pa = a.bind_unbound_port(0)
        pb = b.bind_interdomain(0, pa)
        with gs.share(0) as sp:
            sp.write(b"\xAA", 42)
            m = gt.map(0, sp.refs[0], writable=True, notify_offset=42, notify_port=pb)
            assert m.read(42, 1) == b"\xAA"
            m.unmap()
            assert sp.read(42, 1) == b"\x00"
            assert a.wait(timeout=30) == pa


def test_share_notify_on_unshare(gs, gt):
    with evtchn.open() as a, evtchn.open() as b:
        pa = a.bind_unbound_port(0)
        pb = b.bind_interdomain(0, pa)
        sp = gs.share(0, notify_offset=7, notify_port=pb)
        sp.write(b"\x11", 7)
        with gt.map(0, sp.refs[0]) as m:
            assert m.read(7, 1) == b"\x11"
            sp.unmap()
            assert a.wait(timeout=30) == pa
            assert m.read(7, 1) == b"\x00"  # the page lives on while mapped


def test_buffer_after_unmap_is_an_error(gs, gt):
    with gs.share(0) as sp:
        m = gt.map(0, sp.refs[0], writable=True)
        view = m.buffer
        m.unmap()
        assert m.closed
        with pytest.raises(ValueError, match="released"):
            view[0]
        with pytest.raises(HandleClosedError):
            m.read()
        with pytest.raises(HandleClosedError):
            _ = m.buffer
        m.unmap()  # idempotent


def test_slice_keeps_pages_until_it_goes(gs, gt):
    with gs.share(0) as sp:
        sp.write(b"kept")
        m = gt.map(0, sp.refs[0], writable=True)
        part = m.buffer[0:4]
        m.unmap()
        assert bytes(part) == b"kept"  # still mapped: never a stale pointer
        del part


def test_unmap_refused_while_exported(gs, gt):
    with gs.share(0) as sp:
        m = gt.map(0, sp.refs[0], writable=True)
        held = xen()[0].from_buffer(m.buffer)  # an export of the view
        with pytest.raises(gnttab.MappingBusyError):
            m.unmap()
        assert not m.closed
        held[0] = b"Z"
        assert sp.read(0, 1) == b"Z"
        del held
        m.unmap()
        assert m.closed


def test_handle_close_unmaps(gs):
    with gs.share(0) as sp:
        gt = gnttab.open()
        m = gt.map(0, sp.refs[0])
        view = m.buffer
        gt.close()
        assert m.closed
        with pytest.raises(ValueError):
            bytes(view)
        with pytest.raises(HandleClosedError):
            m.read()
        with pytest.raises(HandleClosedError):
            gt.map(0, sp.refs[0])
        gt.close()


def test_bad_grant_ref_is_typed_error(gt):
    with pytest.raises(gnttab.GnttabError) as ei:
        gt.map(0, 0xFFFF00)
    assert isinstance(ei.value, PyxenError)
    assert ei.value.refs == [0xFFFF00]


def test_bad_domid_is_typed_error(gs, gt):
    with gs.share(0) as sp:
        with pytest.raises(gnttab.GnttabError):
            gt.map(31000, sp.refs[0])


def test_set_max_grants_then_map(gs):
    with gnttab.open() as gt, gs.share(0) as sp:
        gt.set_max_grants(16)
        with gt.map(0, sp.refs[0]) as m:
            assert m.read(0, 1) == b"\x00"


def test_gc_is_the_backstop(gs, gt):
    with evtchn.open() as a, evtchn.open() as b:
        pa = a.bind_unbound_port(0)
        pb = b.bind_interdomain(0, pa)
        with gs.share(0) as sp:
            sp.write(b"\xAA", 9)
            m = gt.map(0, sp.refs[0], writable=True, notify_offset=9, notify_port=pb)
            assert m.buffer[9] == 0xAA
            del m  # never unmapped: the collector's unmap notifies
            assert a.wait(timeout=30) == pa
            assert sp.read(9, 1) == b"\x00"
