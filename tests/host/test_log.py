"""pyxen._log: xentoollog messages reach Python logging; a logger collected before the C
handle that logs through it is closed only stops forwarding (no use after free)."""

import gc
import logging

import pytest

_native = pytest.importorskip("pyxen._native")


def _emit(raw, text: bytes) -> None:
    ffi, lib = _native.xen()
    lib.xtl_log(raw, lib.XTL_ERROR, -1, b"pyxen-test", b"%s", ffi.new("char[]", text))


def test_messages_reach_logging(caplog):
    from pyxen._log import XtlLogger
    log = XtlLogger("pyxen.test-log")
    with caplog.at_level(logging.INFO, logger="pyxen.test-log"):
        _emit(log.ptr, b"hello from C")
    assert [r.getMessage() for r in caplog.records] == ["pyxen-test: hello from C"]
    log.destroy()
    log.destroy()                                     # idempotent
    assert log.ptr is None


def test_collected_logger_detaches_before_the_handle_closes(caplog):
    """The cycle case: the Python logger goes first (as it may when the garbage collector
    takes a closed-by-refcount-never handle and its logger in one pass); the C library
    still logs while it closes. The message is dropped, nothing is freed under it."""
    from pyxen._log import XtlLogger
    log = XtlLogger("pyxen.test-log")
    raw = log.ptr
    del log
    gc.collect()
    with caplog.at_level(logging.DEBUG, logger="pyxen.test-log"):
        for _ in range(100):
            _emit(raw, b"after the Python side went")
    assert caplog.records == []
    _native.xen()[1].pyxen_logger_destroy(raw)        # what the owner's destructor does
