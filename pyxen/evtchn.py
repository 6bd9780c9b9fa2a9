"""pyxen.evtchn: event channels through libxenevtchn (``/dev/xen/evtchn``).

``with pyxen.evtchn.open() as ev:`` gives an :class:`EventChannel`: bind ports
(:meth:`~EventChannel.bind_unbound_port`, :meth:`~EventChannel.bind_interdomain`,
:meth:`~EventChannel.bind_virq`), :meth:`~EventChannel.notify` them, and receive events:
:meth:`~EventChannel.wait` (blocking, with a timeout), :meth:`~EventChannel.pending`
(non-blocking), ``async for port in ev`` (the running loop's ``add_reader``, no thread), and
per-port callbacks (:meth:`~EventChannel.on`), run by :meth:`~EventChannel.dispatch` and by
the async iteration. A port libxenevtchn reports is masked until unmasked; these calls unmask
it before returning unless told ``unmask=False``.

A port bound with bind_interdomain starts pending (Xen sets it, so a notification sent
before the bind is not lost): expect one event on it first.

The handle may be shared between threads and closed from any of them: a thread blocked in
:meth:`~EventChannel.wait` (or an ``async for``) is woken, and gets HandleClosedError (the
iteration ends).
"""

from __future__ import annotations

import asyncio
import enum
import errno as _errno
import os
import select
import threading
import time
import weakref
from typing import AsyncIterator, Callable

from ._log import XtlLogger
from ._mapped import StableHandle
from ._native import xen
from .errors import DomainNotFoundError, HandleClosedError, XenError, XenUnavailableError

__all__ = ["open", "EventChannel", "EvtchnError", "EvtchnDomainError", "EvtchnInvalidError",
           "Virq"]

DEVICE = "/dev/xen/evtchn"


class EvtchnError(XenError):
    """A libxenevtchn call failed; ``port``/``domid`` say what it was about, when known."""

    def __init__(self, err: int, *, call: str, port: int | None = None,
                 domid: int | None = None):
        about = [f"port {port}"] if port is not None else []
        about += [f"domain {domid}"] if domid is not None else []
        super().__init__(err, call=call, detail=", ".join(about) or None)
        self.port = port
        self.domid = domid


class EvtchnDomainError(EvtchnError, DomainNotFoundError):
    """ESRCH: no such domain."""


class EvtchnInvalidError(EvtchnError, ValueError):
    """EINVAL: a port not bound by this handle, or a bad VIRQ or remote port."""


_CLASSES: dict[int, type[EvtchnError]] = {_errno.ESRCH: EvtchnDomainError,
                                          _errno.EINVAL: EvtchnInvalidError}
_ABSENT = (_errno.ENOENT, _errno.ENODEV, _errno.ENXIO)


def _check(rc: int, call: str, *, port: int | None = None, domid: int | None = None) -> int:
    """The one libxenevtchn error mapper: rc < 0 → EvtchnError (typed by errno)."""
    if rc >= 0:
        return rc
    err = xen()[0].errno
    if call == "xenevtchn_open" and err in _ABSENT:
        raise XenUnavailableError(f"cannot open {DEVICE} ({os.strerror(err)}): not a Xen "
                                  "domain, or the driver is not loaded (modprobe xen-evtchn)")
    raise _CLASSES.get(err, EvtchnError)(err, call=call, port=port, domid=domid)


class Virq(enum.IntEnum):
    """Virtual IRQs (xen/xen.h) for :meth:`EventChannel.bind_virq`; most are for dom0."""

    TIMER = 0
    DEBUG = 1
    CONSOLE = 2
    DOM_EXC = 3
    TBUF = 4
    DEBUGGER = 6
    XENOPROF = 7
    CON_RING = 8
    PCPU_STATE = 9
    MEM_EVENT = 10
    ARGO = 11
    ENOMEM = 12
    XENPMU = 13


def open() -> EventChannel:  # noqa: A001 - the module's verb, as pyxen.ctrl.open
    """Open ``/dev/xen/evtchn``."""
    return EventChannel()


def _close_fds(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


class EventChannel(StableHandle):
    """A libxenevtchn handle: the ports it binds are unbound when it closes."""

    def __init__(self) -> None:
        ffi, lib = xen()
        self._lib = lib
        log = XtlLogger("pyxen.evtchn")
        raw = lib.xenevtchn_open(log.ptr, 0)
        if raw == ffi.NULL:
            _check(-1, "xenevtchn_open")
        self._open_core(ffi, raw, lib.xenevtchn_close, keep=log)
        self._fd = lib.xenevtchn_fd(raw)
        # non-blocking: xenevtchn_pending then says EAGAIN when there is nothing, so a
        # wait tries it first and polls only when it has to
        os.set_blocking(self._fd, False)
        self._polls = threading.local()  # one poll object per waiting thread
        # written on close, so that waiters (threads in poll, loop readers) wake up
        self._wake_r, self._wake_w = os.pipe()
        weakref.finalize(self, _close_fds, self._wake_r, self._wake_w)
        self._read_lock = threading.Lock()  # one xenevtchn_pending at a time
        self._callbacks: dict[int, Callable[[int], object]] = {}

    # binding
    def bind_unbound_port(self, domid: int) -> int:
        """A new local port that domain ``domid`` may bind to (bind_interdomain)."""
        with self._use() as raw:
            return _check(self._lib.xenevtchn_bind_unbound_port(raw, domid),
                          "xenevtchn_bind_unbound_port", domid=domid)

    def bind_interdomain(self, domid: int, remote_port: int) -> int:
        """Connect a new local port to ``remote_port`` of domain ``domid`` (an unbound port
        that domain allocated for us); returns the local port."""
        with self._use() as raw:
            return _check(self._lib.xenevtchn_bind_interdomain(raw, domid, remote_port),
                          "xenevtchn_bind_interdomain", port=remote_port, domid=domid)

    def bind_virq(self, virq: int) -> int:
        """A new local port that receives virtual IRQ ``virq`` (see :class:`Virq`)."""
        with self._use() as raw:
            return _check(self._lib.xenevtchn_bind_virq(raw, int(virq)),
                          "xenevtchn_bind_virq", port=None)

    def unbind(self, port: int) -> None:
        """``xenevtchn_unbind``: release a local port."""
        with self._use() as raw:
            _check(self._lib.xenevtchn_unbind(raw, port), "xenevtchn_unbind", port=port)
        self._callbacks.pop(port, None)

    def notify(self, port: int) -> None:
        """Signal the remote end of local ``port``."""
        rc = self._lib.xenevtchn_notify(self._p(), port)  # the call holds the handle open
        if rc < 0:
            _check(rc, "xenevtchn_notify", port=port)

    def unmask(self, port: int) -> None:
        """``xenevtchn_unmask``: let the port deliver events again."""
        if self._lib.xenevtchn_unmask(self._p(), port) < 0:
            _check(-1, "xenevtchn_unmask", port=port)

    def restrict(self, domid: int) -> None:
        """Restrict this handle to event channels of domain ``domid``."""
        with self._use() as raw:
            _check(self._lib.xenevtchn_restrict(raw, domid), "xenevtchn_restrict",
                   domid=domid)

    def fileno(self) -> int:
        """The file descriptor, readable while an event is pending (for select/poll)."""
        self._p()
        return self._fd

    # receiving
    def _readable(self, timeout: float | None) -> bool:
        """Poll the device and the wake pipe; HandleClosedError once closing."""
        p = getattr(self._polls, "poll", None)
        if p is None:
            p = self._polls.poll = select.poll()
            p.register(self._fd, select.POLLIN)
            p.register(self._wake_r, select.POLLIN)
        ms = None if timeout is None else max(0, int(timeout * 1000))
        ready = p.poll(ms)
        if self._core.closing:
            raise HandleClosedError(self)
        return any(fd == self._fd for fd, _ in ready)

    def _take(self, unmask: bool) -> int | None:
        """The next pending port if the device has one now, else None."""
        lib = self._lib
        raw = self._p()  # held for these calls: the C handle stays open under them
        with self._read_lock:  # one read at a time: ports come whole
            port = lib.xenevtchn_pending(raw)
        if port < 0:
            if self._ffi.errno == _errno.EAGAIN:
                return None      # nothing now (or another thread took it)
            _check(port, "xenevtchn_pending")
        if unmask and lib.xenevtchn_unmask(raw, port) < 0:
            _check(-1, "xenevtchn_unmask", port=port)
        return port

    def pending(self, *, unmask: bool = True) -> int | None:
        """The next port with an event, or None (does not block)."""
        return self._take(unmask)

    def wait(self, timeout: float | None = None, *, unmask: bool = True) -> int | None:
        """Block until a port has an event and return it; None after ``timeout`` seconds.
        HandleClosedError if the handle is (or gets) closed."""
        port = self._take(unmask)
        if port is not None:
            return port
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            with self._use():
                ready = self._readable(left)
            if ready:
                port = self._take(unmask)
                if port is not None:
                    return port
            elif deadline is not None and time.monotonic() >= deadline:
                return None

    # callbacks
    def on(self, port: int, callback: Callable[[int], object] | None) -> None:
        """Call ``callback(port)`` for each event on ``port`` that :meth:`dispatch` or an
        ``async for`` receives (None removes it)."""
        self._p()
        if callback is None:
            self._callbacks.pop(port, None)
        else:
            self._callbacks[port] = callback

    def _deliver(self, port: int) -> None:
        cb = self._callbacks.get(port)
        if cb is not None:
            cb(port)

    def dispatch(self, timeout: float | None = 0) -> int | None:
        """Wait (as :meth:`wait`) for one event, run its port's callback, return the port."""
        port = self.wait(timeout)
        if port is not None:
            self._deliver(port)
        return port

    def __aiter__(self) -> AsyncIterator[int]:
        return self.events()

    async def events(self, *, unmask: bool = True) -> AsyncIterator[int]:
        """Ports as their events arrive, through the running loop (no thread); each port's
        callback runs first. Ends when the handle is closed."""
        loop = asyncio.get_running_loop()
        self._p()
        while True:
            try:
                port = self._take(unmask)
                if port is None:
                    with self._use():
                        await self._until_readable(loop)
                    continue
            except HandleClosedError:
                return
            self._deliver(port)
            yield port

    async def _until_readable(self, loop: asyncio.AbstractEventLoop) -> None:
        fut: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        loop.add_reader(self._fd, wake)
        loop.add_reader(self._wake_r, wake)
        try:
            await fut
        finally:
            loop.remove_reader(self._fd)
            loop.remove_reader(self._wake_r)

    def close(self) -> None:
        """Idempotent, from any thread: blocked waiters wake; the handle closes when no
        call uses it."""
        if not self.closed:
            os.write(self._wake_w, b"x")  # the pipe stays readable: every waiter wakes
        super().close()
