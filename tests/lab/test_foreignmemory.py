"""pyxen.foreignmemory against the real hypervisor: a running PV guest's console page
(its ring-ref, a gfn for PV) read through a foreign mapping, its grant table through
map_resource, and bad input."""

import os
import struct
import subprocess
import time

import pytest

from conftest import run_tool, xl_guest
from pyxen import foreignmemory as fmem
from pyxen.errors import DomainNotFoundError, HandleClosedError, PyxenError

MARKER = f"PYXEN-FMEM-{os.getpid()}"
# struct xencons_interface (xen/io/console.h): in[1024], out[2048], then four uint32 indexes
OUT, OUT_SIZE, INDEXES = 1024, 2048, 3072


@pytest.fixture(scope="module")
def guest(guest_kit, tmp_path_factory):
    name = f"pyxen-fmem-{os.getpid()}"
    with xl_guest(name, guest_kit, tmp_path_factory.mktemp("fmem"), memory=96, vcpus=1,
                  extra=f"console=hvc0 pyxen.action=wait pyxen.marker={MARKER}") as domid:
        ring = int(run_tool("xenstore-read", f"/local/domain/{domid}/console/ring-ref"))
        yield {"domid": domid, "ring": ring}


@pytest.fixture
def fm():
    with fmem.open() as h:
        yield h


def console_text(page: bytes) -> str:
    """The guest's console output still in the out ring, oldest byte first."""
    _in_cons, _in_prod, _out_cons, out_prod = struct.unpack_from("<4I", page, INDEXES)
    ring = page[OUT:OUT + OUT_SIZE]
    start = out_prod % OUT_SIZE
    data = ring[start:] + ring[:start] if out_prod >= OUT_SIZE else ring[:out_prod]
    return data.decode("latin-1")


def test_read_guest_console_ring(fm, guest):
    deadline = time.monotonic() + 300
    text = ""
    while time.monotonic() < deadline:
        with fm.map(guest["domid"], [guest["ring"]]) as m:
            assert len(m) == fmem.PAGE_SIZE and m.errors == [0]
            assert m.buffer.readonly
            text = console_text(m.read())
        if MARKER in text:
            break
        time.sleep(2)
    assert MARKER in text, f"marker not in the console ring; its tail: {text[-300:]!r}"
    assert "uname=" in text.split(MARKER, 1)[1]  # the rest of the guest init's line


def test_console_page_buffer_is_the_page(fm, guest):
    with fm.map(guest["domid"], [guest["ring"]]) as m:
        view = m.buffer
        out_prod = struct.unpack_from("<I", view, INDEXES + 12)[0]
        assert out_prod > 0  # the guest has written to its console
        assert bytes(view[OUT:OUT + 16]) == m.read(OUT, 16)
    with pytest.raises(ValueError, match="released"):
        view[0]
    with pytest.raises(HandleClosedError):
        m.read()


def test_writable_map_of_console_page(fm, guest):
    # the in ring's unused bytes past in_prod: writing there is harmless to the guest
    with fm.map(guest["domid"], [guest["ring"]], writable=True) as m:
        m.write(b"\x00", 1023)
        assert m.read(1023, 1) == b"\x00"


def test_refused_frame_is_reported_per_frame(fm, guest):
    bad = 1 << 40  # far beyond the guest's memory
    with pytest.raises(fmem.ForeignFrameError) as ei:
        fm.map(guest["domid"], [guest["ring"], bad])
    assert ei.value.errors[0] == 0 and ei.value.errors[1] < 0
    assert isinstance(ei.value, PyxenError)
    with fm.map(guest["domid"], [guest["ring"], bad], partial=True) as m:
        assert m.errors[0] == 0 and m.errors[1] < 0
        assert len(m.frame(0)) == fmem.PAGE_SIZE
        with pytest.raises(fmem.ForeignFrameError):
            m.frame(1)
        with pytest.raises(fmem.ForeignFrameError):
            m.buffer  # noqa: B018 - it would span the refused frame
        with pytest.raises(fmem.ForeignFrameError):
            m.read(fmem.PAGE_SIZE, 1)


def test_bad_domid_is_typed_error(fm):
    with pytest.raises(PyxenError) as ei:
        fm.map(31000, [0])
    assert isinstance(ei.value, (DomainNotFoundError, fmem.ForeignFrameError,
                                 fmem.ForeignMemoryError))


def test_map_resource_grant_table(fm, guest):
    size = fm.resource_size(guest["domid"], fmem.Resource.GRANT_TABLE,
                            fmem.GRANT_TABLE_SHARED)
    assert size >= fmem.PAGE_SIZE and size % fmem.PAGE_SIZE == 0
    with fm.map_resource(guest["domid"], fmem.Resource.GRANT_TABLE,
                         fmem.GRANT_TABLE_SHARED, 0, 1) as m:
        # grant v1 entry 0 (GNTTAB_RESERVED_CONSOLE): the toolstack grants the console
        # page to its backend, dom0: flags, domid, frame
        flags, domid, frame = struct.unpack_from("<HHI", m.read(0, 8))
        assert flags & 1 and domid == 0 and frame == guest["ring"]


def test_map_resource_bad_domid(fm):
    with pytest.raises(PyxenError):
        fm.map_resource(31000, fmem.Resource.GRANT_TABLE, fmem.GRANT_TABLE_SHARED, 0, 1)


def test_close_unmaps_and_refuses(guest):
    fm = fmem.open()
    m = fm.map(guest["domid"], [guest["ring"]])
    view = m.buffer
    fm.close()
    assert m.closed
    with pytest.raises(ValueError):
        view[0]
    with pytest.raises(HandleClosedError):
        fm.map(guest["domid"], [guest["ring"]])
    fm.close()


def test_xl_still_sees_the_guest(guest):
    out = subprocess.run(["xl", "list", str(guest["domid"])], capture_output=True, text=True)
    assert out.returncode == 0  # our mappings did not harm it
