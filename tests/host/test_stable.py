"""pyxen.evtchn, pyxen.gnttab, pyxen.foreignmemory: pure logic, and the buffer lifetime of
pyxen._mapped.Mapping over ordinary process memory (the lab tests map real grants)."""

import os

import pytest

from pyxen import _mapped, evtchn, foreignmemory, gnttab
from pyxen._native import xen
from pyxen.errors import HandleClosedError, PyxenError, XenUnavailableError

no_xen = pytest.mark.skipif(os.path.exists("/dev/xen/privcmd"), reason="this host runs Xen")


@no_xen
@pytest.mark.parametrize("opener", [evtchn.open, gnttab.open, gnttab.open_share,
                                    foreignmemory.open])
def test_open_without_xen_is_a_clear_error(opener):
    with pytest.raises(XenUnavailableError) as ei:
        opener()
    assert "/dev/xen/" in str(ei.value)
    assert isinstance(ei.value, PyxenError)


def test_declarations_reach_the_compiler():
    ffi, lib = xen()
    assert lib.GNTST_okay == 0 and lib.GNTST_bad_gntref == -3
    assert lib.GNTCOPY_source_gref != lib.GNTCOPY_dest_gref
    assert ffi.sizeof("xen_pfn_t") == 8
    assert lib.XENMEM_resource_grant_table == foreignmemory.Resource.GRANT_TABLE
    assert lib.VIRQ_DOM_EXC == evtchn.Virq.DOM_EXC and lib.VIRQ_XENPMU == evtchn.Virq.XENPMU
    seg = ffi.new("xengnttab_grant_copy_segment_t *")
    seg.source.foreign.offset = 4095
    assert seg.source.foreign.offset == 4095


@pytest.mark.parametrize("offset,length", [(-1, 1), (4096, 1), (0, 0), (0, 4097),
                                           (4000, 97)])
def test_copy_segment_must_fit_one_page(offset, length):
    with pytest.raises(ValueError):
        gnttab.FromGrant(0, 1, offset, bytearray(length))
    with pytest.raises(ValueError):
        gnttab.ToGrant(bytes(length), 0, 1, offset)


def test_copy_segment_whole_page_ok():
    assert gnttab.FromGrant(0, 1, 0, bytearray(4096)).offset == 0
    assert gnttab.ToGrant(b"x", 0, 1, 4095).ref == 1


def test_notify_arguments():
    assert gnttab._notify(None, None, 4096) == (0xFFFFFFFF, 0xFFFFFFFF)
    assert gnttab._notify(4095, 3, 4096) == (4095, 3)
    with pytest.raises(ValueError):
        gnttab._notify(4096, None, 4096)


def test_copy_error_names_failed_segments():
    e = gnttab.GrantCopyError([0, -3, 0, -8])
    assert e.failed == [1, 3]
    assert "GNTST_bad_gntref" in str(e) and "GNTST_permission_denied" in str(e)
    assert isinstance(e, PyxenError)


def test_frame_error_lists_refused_frames():
    e = foreignmemory.ForeignFrameError(3, [0x10, 0x11], [0, -14])
    assert e.errno == 14 and "gfn 0x11: EFAULT" in str(e) and "1 of 2" in str(e)


class Memory:
    """Ordinary memory standing in for mapped pages: records unmaps and the close."""

    def __init__(self):
        self.ffi, _ = xen()
        self.unmapped = []
        self.closed = []
        self.core = _mapped._Core("raw", self.closed.append, "T")

    def mapping(self, size=8192, writable=True):
        block = self.ffi.new("char[]", size)
        self.core.acquire()
        m = _mapped.Mapping(self.ffi, self.core, block, size, writable,
                            lambda raw, a: self.unmapped.append((raw, block)))
        return m


def test_unmap_releases_the_buffer():
    mem = Memory()
    m = mem.mapping()
    view = m.buffer
    view[0:3] = b"abc"
    assert m.read(0, 3) == b"abc"
    m.unmap()
    assert len(mem.unmapped) == 1
    with pytest.raises(ValueError, match="released"):
        view[0]
    with pytest.raises(HandleClosedError):
        m.read()
    m.unmap()
    assert len(mem.unmapped) == 1


def test_unmap_refused_while_exported():
    mem = Memory()
    m = mem.mapping()
    held = xen()[0].from_buffer(m.buffer)  # an export of the view
    with pytest.raises(_mapped.MappingBusyError):
        m.unmap()
    assert not m.closed and not mem.unmapped
    del held
    m.unmap()
    assert len(mem.unmapped) == 1


def test_slice_keeps_pages_until_it_goes():
    mem = Memory()
    m = mem.mapping()
    m.write(b"kept", 10)
    part = m.buffer[10:14]
    m.unmap()
    assert m.closed and not mem.unmapped
    assert bytes(part) == b"kept"
    del part
    assert len(mem.unmapped) == 1


def test_read_only_mapping_refuses_writes():
    mem = Memory()
    m = mem.mapping(writable=False)
    assert m.buffer.readonly
    with pytest.raises(PermissionError):
        m.write(b"x")
    with pytest.raises(ValueError):
        m.read(8000, 500)


def test_garbage_collector_unmaps():
    mem = Memory()
    m = mem.mapping()
    del m
    assert len(mem.unmapped) == 1


def test_handle_closes_after_its_last_mapping():
    mem = Memory()
    m = mem.mapping()
    with mem.core.use():
        mem.core.destructor()  # close asked for during a call, with a mapping alive
        assert not mem.closed
        with pytest.raises(HandleClosedError):
            mem.core.acquire()
    assert not mem.closed
    m.unmap()
    assert mem.closed == ["raw"]


def test_view_made_from_the_buffer_keeps_pages():
    import ctypes
    mem = Memory()
    m = mem.mapping()
    held = (ctypes.c_char * 4).from_buffer(m.buffer)  # ctypes keeps its own view
    m.unmap()
    assert not mem.unmapped
    held[0] = b"Z"
    del held
    assert len(mem.unmapped) == 1
