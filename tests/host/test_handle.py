"""pyxen._handle.Handle's rule, on a plain cffi pointer (pure logic: no Xen library is
involved; the lab's test_handles.py runs it on the real handle types)."""

import gc
import threading

import cffi
import pytest

from pyxen._handle import Handle
from pyxen.errors import HandleClosedError

_ffi = cffi.FFI()


class Owner(Handle):
    def __init__(self, freed: list, on_close=None):
        self._on_close_fn = on_close
        self._adopt(_ffi, _ffi.cast("void *", 0x1000),
                    lambda p: freed.append(int(_ffi.cast("uintptr_t", p))))

    def _on_close(self):
        if self._on_close_fn:
            self._on_close_fn(self)


def test_close_frees_at_once_when_nothing_runs():
    freed: list = []
    h = Owner(freed)
    assert not h.closed and h._p() is not None
    h.close()
    assert freed == [0x1000] and h.closed
    h.close()
    assert freed == [0x1000]
    with pytest.raises(HandleClosedError):
        h._p()
    with pytest.raises(ValueError):
        with h:
            pass


def test_a_call_in_flight_keeps_the_pointer_until_it_returns():
    freed: list = []
    h = Owner(freed)
    in_flight = h._p()              # what a running C call's argument holds
    h.close()
    gc.collect()
    assert freed == [] and h.closed
    with pytest.raises(HandleClosedError):
        h._p()
    del in_flight                   # the call returns: the last reference frees it
    assert freed == [0x1000]


def test_on_close_runs_once_and_only_the_closer_may_use_the_pointer():
    freed: list = []
    seen: list = []

    def on_close(h):
        seen.append(h._p() is not None)             # the closing thread: allowed
        other: list = []

        def elsewhere():
            try:
                h._p()
                other.append("got it")
            except HandleClosedError:
                other.append("closed")
        t = threading.Thread(target=elsewhere)
        t.start()
        t.join()
        seen.append(other[0])
        assert freed == []                          # not freed under _on_close

    h = Owner(freed, on_close)
    h.close()
    h.close()
    assert seen == [True, "closed"]
    assert freed == [0x1000]
    with pytest.raises(HandleClosedError):
        h._p()                                      # not after _on_close either


def test_concurrent_closes_free_once():
    freed: list = []
    h = Owner(freed)
    go = threading.Barrier(8)

    def close():
        go.wait()
        h.close()
    ts = [threading.Thread(target=close) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert freed == [0x1000]


def test_never_opened_close_is_a_noop():
    class Unopened(Handle):
        pass
    h = Unopened()
    h.close()
    assert h.closed
    with pytest.raises(HandleClosedError):
        h._p()
