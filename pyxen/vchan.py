"""pyxen.vchan: byte streams between domains through libxenvchan (shared rings + an event
channel, advertised in xenstore).

One side is the :class:`Server` (``libxenvchan_server_init``): it shares the rings with a
peer domain and writes ``<xs_path>/ring-ref`` and ``<xs_path>/event-channel``. The other
is the :class:`Client` (``libxenvchan_client_init``), which reads those and maps the rings.
A domain may talk to itself (both ends in dom0, ``domid=0``).

Both ends have the same calls: :meth:`~Vchan.write` (blocking until all is written),
:meth:`~Vchan.send` (what fits now), :meth:`~Vchan.read` / :meth:`~Vchan.readinto`
(blocking until at least one byte), :meth:`~Vchan.read_exact`, :meth:`~Vchan.recv` (what
is there now), :meth:`~Vchan.wait` for the next event, and :meth:`~Vchan.streams` for an
asyncio ``(reader, writer)`` pair driven by the running loop's ``add_reader`` on the
vchan's event channel descriptor (no thread). Writes pass the caller's buffer to C
(``ffi.from_buffer``) and :meth:`~Vchan.readinto` reads into the caller's: no copy besides
the ring's own.

The C handle is kept non-blocking; pyxen waits on its descriptor itself, so every wait
has a timeout, and ``close()`` from another thread wakes a blocked reader or writer (it
gets HandleClosedError). Once the other end closes, what it wrote can still be read; then
reads raise :class:`VchanPeerClosedError` (the async reader returns ``b""``: EOF).
A handle may be shared between threads (one reader and one writer at once is the usual
case); its asyncio streams should not be mixed with blocking calls in other threads.
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import threading
import time
import weakref
from typing import Any, Callable

from ._log import XtlLogger
from ._mapped import StableHandle
from ._native import xen
from .errors import (ArgumentError, ArgumentTypeError, HandleClosedError, VchanDomainError,
                     VchanError, VchanIncompleteReadError, VchanInvalidError,
                     VchanNotFoundError, VchanPeerClosedError, VchanPermissionError,
                     VchanTimeoutError, XenUnavailableError, check_vchan)

__all__ = ["Server", "Client", "Vchan", "VchanReader", "VchanWriter", "open_connection",
           "start_server", "VchanError", "VchanNotFoundError", "VchanDomainError",
           "VchanInvalidError", "VchanPermissionError", "VchanPeerClosedError",
           "VchanIncompleteReadError", "VchanTimeoutError", "MAX_RING"]

#: the largest ring libxenvchan_server_init accepts for ``read_min``/``write_min``
MAX_RING = 1 << 20
DOMID_MAX = 0x7FEF                      # DOMID_FIRST_RESERVED - 1
# libxenvchan formats "<xs_path>/event-channel" into a 64-byte buffer (snprintf: a longer
# path would be cut silently, and another node written or read)
_PATH_MAX = 64 - 1 - len("/event-channel")
_PATH_RE = re.compile(r"/?[A-Za-z0-9_@-]+(/[A-Za-z0-9_@-]+)*")
_CHUNK = 1 << 30                        # at most this much per C call (it returns an int)


def _domid(domid: object) -> int:
    if isinstance(domid, bool) or not isinstance(domid, int):
        raise ArgumentTypeError(f"domid must be an int, not {type(domid).__name__}")
    if not 0 <= domid <= DOMID_MAX:
        raise ArgumentError(f"domid {domid} outside 0..{DOMID_MAX}")
    return domid


def _path(xs_path: object) -> bytes:
    if isinstance(xs_path, (bytes, bytearray)):
        try:
            xs_path = bytes(xs_path).decode("ascii")
        except UnicodeDecodeError:
            raise ArgumentError(f"xs_path {xs_path!r} is not ASCII") from None
    if not isinstance(xs_path, str):
        raise ArgumentTypeError(f"xs_path must be str, not {type(xs_path).__name__}")
    if not _PATH_RE.fullmatch(xs_path):
        raise ArgumentError(f"xs_path {xs_path!r} is not a xenstore path (letters, digits, "
                            "_@- and single slashes, no trailing slash)")
    if len(xs_path) > _PATH_MAX:
        raise ArgumentError(f"xs_path {xs_path!r} is over libxenvchan's {_PATH_MAX} "
                            "characters")
    return xs_path.encode("ascii")


def _size(n: object, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise ArgumentTypeError(f"{what} must be an int, not {type(n).__name__}")
    if n < 0:
        raise ArgumentError(f"{what} must not be negative, not {n}")
    return n


def _view(data: object, writable: bool = False) -> memoryview:
    """``data`` as a flat byte view (ArgumentTypeError for what is not a contiguous
    bytes-like, or not writable when it must be)."""
    try:
        view = memoryview(data).cast("B")  # type: ignore[arg-type]
    except TypeError as e:
        raise ArgumentTypeError(f"need a contiguous bytes-like object, not "
                                f"{type(data).__name__} ({e})") from None
    if writable and view.readonly:
        raise ArgumentTypeError("need a writable buffer")
    return view


def _need_devices(*names: str) -> None:
    for name in names:
        if not os.path.exists(f"/dev/xen/{name}"):
            raise XenUnavailableError(f"cannot open a vchan: no /dev/xen/{name} (not a Xen "
                                      f"domain, or modprobe xen-{name})")


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _deadline(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if timeout < 0:
        raise ArgumentError(f"timeout must not be negative, not {timeout}")
    return time.monotonic() + timeout


def _close_fds(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


class Vchan(StableHandle):
    """One end of a vchan (see :class:`Server` and :class:`Client`)."""

    _is_server = False

    def _init(self, raw_init: Callable[[Any], Any], call: str, domid: int,
              path: bytes) -> None:
        ffi, lib = xen()
        self._lib = lib
        self.domid = domid
        self.path = path.decode("ascii")
        log = XtlLogger("pyxen.vchan")
        raw = raw_init(log.ptr)
        if raw == ffi.NULL:
            err = ffi.errno
            log.destroy()               # nothing holds it: the init call freed what it made
            check_vchan(-1, err, call, domid=domid, path=self.path)
        lib.pyxen_vchan_set_blocking(raw, 0)
        self._open_core(ffi, raw, lib.libxenvchan_close, keep=log)
        self._fd = lib.libxenvchan_fd_for_select(raw)
        # wake: written once by close(), never drained (every waiter wakes and stays awake)
        # kick: written when an event was taken while a thread polls (it must re-check)
        self._wake_r, self._wake_w = os.pipe()
        self._kick_r, self._kick_w = os.pipe()
        os.set_blocking(self._kick_r, False)
        os.set_blocking(self._kick_w, False)
        weakref.finalize(self, _close_fds, self._wake_r, self._wake_w, self._kick_r,
                         self._kick_w)
        self._event_lock = threading.Lock()     # one libxenvchan_wait at a time
        self._cond = threading.Condition()      # guards _gen/_polling
        self._gen = 0                           # events taken so far
        self._polling = False                   # a thread polls the descriptor
        self._afuts: set[asyncio.Future[None]] = set()
        self._aloop: asyncio.AbstractEventLoop | None = None

    # -------------------------------------------------------------- errors and events
    def _fail(self, raw: Any, call: str) -> int:
        err = self._ffi.errno
        return check_vchan(-1, err, call, peer_open=bool(self._lib.libxenvchan_is_open(raw)),
                           domid=self.domid, path=self.path)

    def _is_closing(self) -> bool:
        return self._ptr is None or self._core.closing

    def _take_event(self, kick: bool = True) -> bool:
        """Consume the pending event if there is one now (never blocks)."""
        with self._use() as raw, self._event_lock:
            p = select.poll()
            p.register(self._fd, select.POLLIN)
            if not p.poll(0):
                return False        # another thread took it
            rc = self._lib.libxenvchan_wait(raw)
            if rc < 0:
                self._fail(raw, "libxenvchan_wait")
        with self._cond:
            self._gen += 1
            if kick and self._polling:
                try:
                    os.write(self._kick_w, b"k")
                except BlockingIOError:
                    pass            # the pipe is full of kicks already
            self._cond.notify_all()
        return True

    def _block(self, gen: int, deadline: float | None) -> bool:
        """Wait until an event was taken since ``gen`` (True), or ``deadline`` (False).
        One thread polls the descriptor; the others wait for it to report."""
        with self._cond:
            while True:
                if self._is_closing():
                    raise HandleClosedError(self)
                if self._gen != gen:
                    return True
                left = _left(deadline)
                if left == 0:
                    return False
                if not self._polling:
                    self._polling = True
                    break
                self._cond.wait(left)
        try:
            p = select.poll()
            for fd in (self._fd, self._kick_r, self._wake_r):
                p.register(fd, select.POLLIN)
            ms = None if left is None else max(1, int(left * 1000))
            ready = {fd for fd, _ in p.poll(ms)}
            if self._is_closing():
                raise HandleClosedError(self)
            if self._kick_r in ready:
                try:
                    os.read(self._kick_r, 4096)
                except BlockingIOError:
                    pass
            if self._fd in ready:
                self._take_event(kick=False)
        finally:
            with self._cond:
                self._polling = False
                self._cond.notify_all()
        with self._cond:
            return self._gen != gen or _left(deadline) != 0

    # ------------------------------------------------------------------ state
    def fileno(self) -> int:
        """The event channel descriptor: readable when the vchan's state changed (then
        :meth:`wait` does not block)."""
        self._p()
        return self._fd

    def is_open(self) -> bool:
        """False once either end has closed (for a server: also true while no client has
        connected yet)."""
        with self._use() as raw:
            return bool(self._lib.libxenvchan_is_open(raw))

    def data_ready(self) -> int:
        """Bytes that can be read now."""
        with self._use() as raw:
            return int(self._lib.libxenvchan_data_ready(raw))

    def buffer_space(self) -> int:
        """Bytes that can be written now without blocking."""
        with self._use() as raw:
            return int(self._lib.libxenvchan_buffer_space(raw))

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for an event on the descriptor (``libxenvchan_wait``: data, space or a
        close on the other side); False after ``timeout`` seconds."""
        deadline = _deadline(timeout)
        while True:
            with self._cond:
                gen = self._gen
            if self._take_event():
                return True
            if not self._block(gen, deadline):
                return False
            with self._cond:
                if self._gen != gen:
                    return True

    # ------------------------------------------------------------------ writing
    def _send_into(self, cbuf: Any, pos: int, size: int) -> int:
        with self._use() as raw:
            n = self._lib.libxenvchan_write(raw, cbuf + pos, min(size, _CHUNK))
            if n < 0:
                self._fail(raw, "libxenvchan_write")
        return int(n)

    def send(self, data: Any) -> int:
        """Write what fits in the ring now (``libxenvchan_write``, non-blocking); returns
        how many bytes (0 if the ring is full)."""
        view = _view(data)
        if not view.nbytes:
            self._p()
            return 0
        return self._send_into(self._ffi.from_buffer(view), 0, view.nbytes)

    def write(self, data: Any, *, timeout: float | None = None) -> int:
        """Write all of ``data`` (any bytes-like), waiting for ring space as needed;
        returns its length. VchanTimeoutError after ``timeout`` seconds (``done`` bytes
        went), VchanPeerClosedError if the other end closes first."""
        view = _view(data)
        total = view.nbytes
        deadline = _deadline(timeout)
        cbuf = self._ffi.from_buffer(view) if total else None
        pos = 0
        self._p()
        while pos < total:
            with self._cond:
                gen = self._gen
            n = self._send_into(cbuf, pos, total - pos)
            pos += n
            if n == 0 and not self._block(gen, deadline):
                raise VchanTimeoutError(f"vchan write: {pos} of {total} bytes written in "
                                        f"{timeout} s", pos)
        return total

    # ------------------------------------------------------------------ reading
    def _recv_into(self, cbuf: Any, pos: int, size: int) -> int:
        with self._use() as raw:
            n = self._lib.libxenvchan_read(raw, cbuf + pos, min(size, _CHUNK))
            if n < 0:
                self._fail(raw, "libxenvchan_read")
        return int(n)

    def _readinto(self, view: memoryview, pos: int, deadline: float | None,
                  timeout: float | None) -> int:
        cbuf = self._ffi.from_buffer(view, require_writable=True)
        while True:
            with self._cond:
                gen = self._gen
            n = self._recv_into(cbuf, pos, view.nbytes - pos)
            if n:
                return n
            if not self._block(gen, deadline):
                raise VchanTimeoutError(f"vchan read: no data in {timeout} s")

    def readinto(self, buf: Any, *, timeout: float | None = None) -> int:
        """Read into ``buf`` (a writable bytes-like), waiting until at least one byte is
        there; returns the count. VchanPeerClosedError once the peer closed and all it
        wrote is read; VchanTimeoutError after ``timeout`` seconds."""
        view = _view(buf, writable=True)
        if not view.nbytes:
            self._p()
            return 0
        return self._readinto(view, 0, _deadline(timeout), timeout)

    def read(self, n: int, *, timeout: float | None = None) -> bytes:
        """Up to ``n`` bytes, waiting until at least one is there (as :meth:`readinto`)."""
        buf = bytearray(min(_size(n, "n"), MAX_RING))   # one read never returns more
        got = self.readinto(buf, timeout=timeout)
        del buf[got:]
        return bytes(buf)

    def read_exact(self, n: int, *, timeout: float | None = None) -> bytes:
        """Exactly ``n`` bytes; VchanIncompleteReadError (with ``partial``) if the peer
        closes first, VchanTimeoutError after ``timeout`` seconds in all."""
        buf = bytearray(_size(n, "n"))
        view = memoryview(buf)
        deadline = _deadline(timeout)
        pos = 0
        self._p()
        while pos < n:
            try:
                pos += self._readinto(view, pos, deadline, timeout)
            except VchanPeerClosedError:
                raise VchanIncompleteReadError(bytes(buf[:pos]), n, call="libxenvchan_read",
                                               domid=self.domid, path=self.path) from None
            except VchanTimeoutError:
                raise VchanTimeoutError(f"vchan read_exact: {pos} of {n} bytes in "
                                        f"{timeout} s", pos) from None
        del view
        return bytes(buf)

    def recv(self, n: int) -> bytes:
        """Up to ``n`` bytes that are there now (``b""`` if none; does not block);
        VchanPeerClosedError once the peer closed and all it wrote is read."""
        size = _size(n, "n")
        self._p()
        if not size:
            return b""
        cbuf = self._ffi.new("char[]", min(size, _CHUNK))
        got = self._recv_into(cbuf, 0, size)
        return self._ffi.buffer(cbuf, got)[:]

    # ------------------------------------------------------------------ asyncio
    def streams(self) -> tuple[VchanReader, VchanWriter]:
        """An asyncio (reader, writer) pair over this vchan, driven by the running loop's
        ``add_reader`` on :meth:`fileno` (no thread). Closing the writer closes the vchan."""
        self._p()
        return VchanReader(self), VchanWriter(self)

    def _on_readable(self) -> None:
        try:
            self._take_event()
        except (HandleClosedError, VchanError):
            pass                    # the waiters see it on their next call
        for fut in list(self._afuts):
            if not fut.done():
                fut.set_result(None)

    async def _aevent(self, gen: int) -> None:
        """Until an event was taken since ``gen`` (or the handle is closing)."""
        loop = asyncio.get_running_loop()
        with self._cond:
            if self._gen != gen:
                return
        if self._is_closing():
            raise HandleClosedError(self)
        if self._aloop is not None and self._aloop is not loop and self._afuts:
            raise ArgumentError("a vchan's streams are used by another event loop")
        fut: asyncio.Future[None] = loop.create_future()
        if not self._afuts:
            self._aloop = loop
            loop.add_reader(self._fd, self._on_readable)
            loop.add_reader(self._wake_r, self._on_readable)
        self._afuts.add(fut)
        try:
            await fut
        finally:
            self._afuts.discard(fut)
            if not self._afuts:
                loop.remove_reader(self._fd)
                loop.remove_reader(self._wake_r)
                self._aloop = None

    def close(self) -> None:
        """Idempotent, from any thread: tells the peer (it can still read what was
        written); blocked readers and writers wake with HandleClosedError."""
        if not self.closed:
            os.write(self._wake_w, b"x")   # the pipe stays readable: every waiter wakes
            with self._cond:
                self._cond.notify_all()
        super().close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (f"<pyxen.vchan.{type(self).__name__} domain {getattr(self, 'domid', '?')} "
                f"{getattr(self, 'path', '?')!r} {state}>")


class Server(Vchan):
    """The server end (``libxenvchan_server_init``): shares rings of at least
    ``read_min``/``write_min`` bytes (0..MAX_RING; small ones live in the shared page)
    with domain ``domid`` and advertises them under ``xs_path``, removed on close."""

    _is_server = True

    def __init__(self, domid: int, xs_path: str, read_min: int = 0, write_min: int = 0):
        domid, path = _domid(domid), _path(xs_path)
        for name, v in (("read_min", read_min), ("write_min", write_min)):
            if _size(v, name) > MAX_RING:
                raise ArgumentError(f"{name} {v} is over libxenvchan's {MAX_RING} bytes")
        _need_devices("evtchn", "gntalloc")
        lib = xen()[1]
        self._init(lambda log: lib.libxenvchan_server_init(log, domid, path, read_min,
                                                           write_min),
                   "libxenvchan_server_init", domid, path)

    def connected(self) -> bool:
        """True once a client has connected (and neither end has closed since)."""
        with self._use() as raw:
            return int(self._lib.libxenvchan_is_open(raw)) == 1

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Wait until a client connects (True), or False after ``timeout`` seconds.
        VchanPeerClosedError if a client came and went already."""
        deadline = _deadline(timeout)
        while True:
            with self._cond:
                gen = self._gen
            with self._use() as raw:
                state = int(self._lib.libxenvchan_is_open(raw))
            if state == 1:
                return True
            if state == 0:
                raise VchanPeerClosedError("libxenvchan_is_open", domid=self.domid,
                                           path=self.path)
            self._take_event()
            if not self._block(gen, deadline):
                return False

    async def wait_connected_async(self, timeout: float | None = None) -> None:
        """As :meth:`wait_connected`, in the running loop; VchanTimeoutError on timeout."""
        async def until() -> None:
            while True:
                with self._cond:
                    gen = self._gen
                with self._use() as raw:
                    state = int(self._lib.libxenvchan_is_open(raw))
                if state == 1:
                    return
                if state == 0:
                    raise VchanPeerClosedError("libxenvchan_is_open", domid=self.domid,
                                               path=self.path)
                self._take_event()
                await self._aevent(gen)
        try:
            await asyncio.wait_for(until(), timeout)
        except asyncio.TimeoutError:
            raise VchanTimeoutError(f"no client connected in {timeout} s") from None


class Client(Vchan):
    """The client end (``libxenvchan_client_init``): connects to the server of domain
    ``domid`` that advertises ``xs_path``. VchanNotFoundError if none does."""

    def __init__(self, domid: int, xs_path: str):
        domid, path = _domid(domid), _path(xs_path)
        _need_devices("evtchn", "gntdev")
        lib = xen()[1]
        self._init(lambda log: lib.libxenvchan_client_init(log, domid, path),
                   "libxenvchan_client_init", domid, path)


# ============================================================================ asyncio

class VchanReader:
    """asyncio.StreamReader-like reading end of :meth:`Vchan.streams`: ``read``,
    ``readexactly``, ``readinto``; ``b""`` (EOF) once the peer closed and all is read."""

    def __init__(self, vchan: Vchan):
        self.vchan = vchan
        self._eof = False

    def at_eof(self) -> bool:
        """True once a read saw the peer's close with nothing left."""
        return self._eof

    async def readinto(self, buf: Any) -> int:
        """Read into ``buf`` once at least one byte is there; 0 at EOF."""
        view = _view(buf, writable=True)
        if not view.nbytes or self._eof:
            return 0
        v = self.vchan
        cbuf = v._ffi.from_buffer(view, require_writable=True)
        while True:
            with v._cond:
                gen = v._gen
            try:
                n = v._recv_into(cbuf, 0, view.nbytes)
            except VchanPeerClosedError:
                self._eof = True
                return 0
            if n:
                return n
            await v._aevent(gen)

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes once at least one is there (``n`` < 0: everything until EOF);
        ``b""`` at EOF."""
        if n < 0:
            chunks: list[bytes] = []
            while True:
                chunk = await self.read(1 << 16)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        buf = bytearray(min(_size(n, "n"), MAX_RING))
        got = await self.readinto(buf)
        del buf[got:]
        return bytes(buf)

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes; VchanIncompleteReadError (``partial``) at an early EOF."""
        buf = bytearray(_size(n, "n"))
        view = memoryview(buf)
        pos = 0
        while pos < n:
            got = await self.readinto(view[pos:])
            if not got:
                raise VchanIncompleteReadError(bytes(buf[:pos]), n, call="libxenvchan_read",
                                               domid=self.vchan.domid, path=self.vchan.path)
            pos += got
        del view
        return bytes(buf)

    def __aiter__(self) -> VchanReader:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.read(1 << 16)
        if not chunk:
            raise StopAsyncIteration
        return chunk


class VchanWriter:
    """asyncio.StreamWriter-like writing end of :meth:`Vchan.streams`: ``write`` queues
    (and sends what fits now), ``await drain()`` waits until all is sent."""

    def __init__(self, vchan: Vchan):
        self.vchan = vchan
        self._pending: list[memoryview] = []

    def write(self, data: Any) -> None:
        """Queue ``data`` (kept by reference: do not change it before ``drain``)."""
        view = _view(data)
        if view.nbytes:
            self._pending.append(view)
            self._flush()

    def writelines(self, data: Any) -> None:
        """Queue each buffer of ``data``."""
        for d in data:
            self.write(d)

    def _flush(self) -> None:
        v = self.vchan
        while self._pending:
            view = self._pending[0]
            n = v.send(view)
            if n == view.nbytes:
                self._pending.pop(0)
            else:
                if n:
                    self._pending[0] = view[n:]
                return

    async def drain(self) -> None:
        """Wait until everything queued is in the ring; VchanPeerClosedError if the peer
        closed, HandleClosedError if the vchan was."""
        v = self.vchan
        while self._pending:
            with v._cond:
                gen = v._gen
            self._flush()
            if self._pending:
                await v._aevent(gen)

    def can_write_eof(self) -> bool:
        """False: a vchan has no half-close (closing it ends both directions)."""
        return False

    def is_closing(self) -> bool:
        """True once the vchan is closed."""
        return self.vchan.closed

    def close(self) -> None:
        """Close the vchan (what is still queued is dropped: ``drain`` first)."""
        self._pending.clear()
        self.vchan.close()

    async def wait_closed(self) -> None:
        """Return once closed (closing is immediate)."""

    def get_extra_info(self, name: str, default: object = None) -> object:
        """``"vchan"``: the :class:`Vchan`; else ``default``."""
        return self.vchan if name == "vchan" else default


async def open_connection(domid: int, xs_path: str) -> tuple[VchanReader, VchanWriter]:
    """Connect a :class:`Client` to ``xs_path`` of domain ``domid``; its streams."""
    return Client(domid, xs_path).streams()


async def start_server(domid: int, xs_path: str, read_min: int = 0, write_min: int = 0, *,
                       timeout: float | None = None) -> tuple[VchanReader, VchanWriter]:
    """Make a :class:`Server` for domain ``domid`` at ``xs_path``, wait (in the loop) for
    its client to connect, and return its streams. VchanTimeoutError (the server closed)
    if none connects in ``timeout`` seconds."""
    server = Server(domid, xs_path, read_min, write_min)
    try:
        await server.wait_connected_async(timeout)
    except BaseException:
        server.close()
        raise
    return server.streams()
