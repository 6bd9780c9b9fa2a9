"""pyxen.ring: Xen's shared-ring protocol (``xen/io/ring.h``) over shared memory, typically
a page granted with :mod:`pyxen.gnttab`, with :mod:`pyxen.evtchn` for the notifications.

A shared ring is a header (``req_prod``, ``req_event``, ``rsp_prod``, ``rsp_event``, padding
to 64 bytes) followed by a power-of-two number of entries, each the union of one request and
one response. The frontend (:class:`FrontRing`) produces requests and consumes responses; the
backend (:class:`BackRing`) the opposite. Any request/response layout cffi knows serves:
``pyxen._ring`` declares the real ones of ``xen/io/blkif.h`` and ``xen/io/netif.h``
(``"blkif_request_t"``/``"blkif_response_t"``, ``"netif_tx_request_t"`` ...); pass your own
compiled ``ffi`` for others::

    with gnttab.open_share() as gs, gs.share(domid, 1) as page:
        front = ring.FrontRing(page, "blkif_request_t", "blkif_response_t",
                               notify=lambda: ev.notify(port))
        req = front.next_request()          # a cdata view into the slot, no copy
        req.id, req.operation = 1, lib.BLKIF_OP_READ   # ffi, lib = ring.native()
        front.push_requests()               # notifies only if the backend asked to be
        for rsp in front.take_responses():  # private copies (RING_COPY_RESPONSE)
            ...

The index updates whose memory ordering matters (publishing a producer index after the
entries, reading the peer's event index after publishing, arming an event index and
re-checking) run in C (``csrc/pyxen_ring.c``) with the barriers of ring.h's macros; each
check reads a shared index once and uses only that value. A peer's producer index that
claims more unconsumed entries than the ring holds raises :class:`RingOverflowError` (as
Linux's ``RING_REQUEST_PROD_OVERFLOW`` check) and consumes nothing.

:class:`ConsoleRing` reads and writes the console page (``struct xencons_interface``,
``xen/io/console.h``): two byte rings, not a request/response ring.

A ring object may be used from several threads (each call is atomic with respect to the
others), but each side of a ring must be driven by one ring object. It holds an export of
its buffer until :meth:`close` (a grant mapping refuses to unmap meanwhile); the slot views
it hands out keep the memory alive on their own, so none of them ever points into unmapped
memory.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, Literal, Union

from ._mapped import Mapping
from .errors import (ArgumentError, ArgumentTypeError, HandleClosedError, ReadOnlyError,
                     RingError, RingFullError, RingLayoutError, RingOverflowError,
                     XenUnavailableError)

if TYPE_CHECKING:
    from typing_extensions import Self

    from ._xen import FFI

__all__ = ["FrontRing", "BackRing", "ConsoleRing", "ring_size", "native", "RingError",
           "RingLayoutError", "RingFullError", "RingOverflowError", "PAGE_SIZE"]

PAGE_SIZE = 4096  # ring protocols always use 4 KiB pages (XEN_PAGE_SHIFT 12)
_MASK = 0xFFFFFFFF  # RING_IDX arithmetic is modulo 2**32

Buffer = Union[Mapping, bytearray, memoryview, Any]  # anything with a writable buffer


def _native() -> tuple[FFI, Any]:
    """``(ffi, lib)`` of ``pyxen._ring`` (the public io headers, no Xen library)."""
    try:
        from . import _ring
    except ImportError as e:
        raise XenUnavailableError(f"pyxen's ring extension cannot be loaded ({e}); build it "
                                  "with the Xen headers: apt-get install libxen-dev && "
                                  "pip install .") from None
    return _ring.ffi, _ring.lib


def native() -> tuple[FFI, Any]:
    """``(ffi, lib)`` of ``pyxen._ring``: the io headers' types (``ffi.new("blkif_request_t
    *")``) and constants (``lib.BLKIF_OP_READ``, ``lib.NETIF_RSP_OKAY`` ...)."""
    return _native()


def _as_view(buf: Buffer, *, writable: bool) -> tuple[Any, memoryview]:
    """``(exported, view)``: the object whose buffer the ring exports while open (a
    Mapping's own view, so that its ``unmap()`` refuses meanwhile) and a flat byte view of
    it (``buf`` is a Mapping, any buffer, or cffi cdata)."""
    ffi = _native()[0]
    if isinstance(buf, Mapping):
        buf = buf.buffer
    elif isinstance(buf, ffi.CData):
        buf = ffi.buffer(buf)
    try:
        view = memoryview(buf).cast("B")
    except TypeError as e:
        raise ArgumentTypeError(f"a ring needs a contiguous buffer, got {type(buf).__name__}: "
                                f"{e}") from None
    if writable and view.readonly:
        raise ReadOnlyError("a ring's indexes are written by both sides: map it writable")
    return buf, view


def _ctype(ffi: FFI, name: str, role: str) -> Any:
    """The cffi type ``name``: a struct, union or integer of nonzero size."""
    if not isinstance(name, str):
        raise ArgumentTypeError(f"{role} type: a C type name, got {name!r}")
    try:
        t = ffi.typeof(name)
    except ffi.error as e:
        raise RingLayoutError(f"{role} type {name!r}: {e}".splitlines()[0]) from None
    if t.kind not in ("struct", "union", "primitive") or ffi.sizeof(t) == 0:
        raise RingLayoutError(f"{role} type {name!r} is a {t.kind}, not a ring entry")
    return t


def _round_up(n: int, align: int) -> int:
    return -(-n // align) * align


def _layout(ffi: FFI, request_type: str, response_type: str) -> tuple[Any, Any, int, int]:
    """(request ctype, response ctype, entry size, offset of entry 0): the union
    DEFINE_RING_TYPES makes of the two, placed after the sring header."""
    rffi, _ = _native()
    req = _ctype(ffi, request_type, "request")
    rsp = _ctype(ffi, response_type, "response")
    align = max(ffi.alignof(req), ffi.alignof(rsp))
    entry = _round_up(max(ffi.sizeof(req), ffi.sizeof(rsp)), align)
    offset = _round_up(rffi.offsetof("pyxen_sring_t", "ring"), align)
    return req, rsp, entry, offset


def ring_size(request_type: str, response_type: str, nbytes: int = PAGE_SIZE, *,
              ffi: FFI | None = None) -> int:
    """Entries of a ring of that layout in ``nbytes`` (``2**order`` pages for ring-page-order
    ``order``): as ring.h's ``__RING_SIZE``, the most that fit after the header, rounded
    down to a power of two."""
    rffi, lib = _native()
    _, _, entry, offset = _layout(ffi or rffi, request_type, response_type)
    return int(lib.pyxen_ring_size(nbytes, offset, entry))


class _Ring:
    """What both ends share: the buffer, the layout, the slots, the lock."""

    _side = "ring"

    def __init__(self, buf: Buffer, request_type: str, response_type: str, *,
                 ffi: FFI | None = None, notify: Callable[[], object] | None = None):
        rffi, lib = self._rffi, self._lib = _native()
        self._ffi = ffi or rffi
        self._req, self._rsp, self._entry, self._offset = _layout(self._ffi, request_type,
                                                                  response_type)
        self.request_type, self.response_type = request_type, response_type
        self._req_ptr = self._ffi.typeof(f"{request_type} *")
        self._rsp_ptr = self._ffi.typeof(f"{response_type} *")
        self._req_size, self._rsp_size = self._ffi.sizeof(self._req), self._ffi.sizeof(self._rsp)
        exported, view = _as_view(buf, writable=True)
        self.nbytes = view.nbytes
        self.size = int(lib.pyxen_ring_size(view.nbytes, self._offset, self._entry))
        if self.size == 0:
            raise RingLayoutError(f"{view.nbytes} bytes hold no {self._entry}-byte ring entry "
                                  f"after the {self._offset}-byte header")
        self._mask = self.size - 1
        self._view: memoryview | None = view
        self._base = rffi.from_buffer("char[]", exported, require_writable=True)
        align = max(4, self._ffi.alignof(self._req), self._ffi.alignof(self._rsp))
        if int(rffi.cast("uintptr_t", self._base)) % align:
            rffi.release(self._base)
            raise RingLayoutError(f"the ring's buffer is not {align}-byte aligned")
        self._s = rffi.cast("pyxen_sring_t *", self._base)
        self._out = rffi.new("RING_IDX *")
        self._lock = threading.Lock()
        self._notify = notify
        self.pushes = 0         # calls of push_requests / push_responses
        self.notifications = 0  # ... of which the peer had to be notified

    # -------------------------------------------------------------- state and lifetime
    @property
    def closed(self) -> bool:
        """True once :meth:`close` released the buffer."""
        return self._view is None

    def _live(self) -> memoryview:
        view = self._view
        if view is None:
            raise HandleClosedError(type(self).__name__)
        return view

    def close(self) -> None:
        """Release the buffer (idempotent); slot views already handed out stay valid."""
        with self._lock:
            if self._view is None:
                return
            self._rffi.release(self._base)
            self._view.release()
            self._view = None

    def __enter__(self) -> Self:
        self._live()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _index(self, field: str) -> int:
        with self._lock:
            self._live()
            return int(self._lib.pyxen_ring_load(self._rffi.addressof(self._s, field)))

    @property
    def req_prod(self) -> int:
        """The shared ``req_prod`` (the requests the front has published)."""
        return self._index("req_prod")

    @property
    def req_event(self) -> int:
        """The shared ``req_event`` (the request the back wants a notification for)."""
        return self._index("req_event")

    @property
    def rsp_prod(self) -> int:
        """The shared ``rsp_prod`` (the responses the back has published)."""
        return self._index("rsp_prod")

    @property
    def rsp_event(self) -> int:
        """The shared ``rsp_event`` (the response the front wants a notification for)."""
        return self._index("rsp_event")

    # ------------------------------------------------------------------- slots
    def _slot(self, idx: int) -> int:
        return self._offset + (idx & self._mask) * self._entry

    def _view_at(self, idx: int, ptr: Any, size: int) -> Any:
        """A cdata pointer to slot ``idx`` that keeps the memory alive by itself."""
        view = self._live()
        off = self._slot(idx)
        return self._ffi.from_buffer(ptr, view[off:off + size], require_writable=True)

    def request_view(self, idx: int) -> Any:
        """``RING_GET_REQUEST``: a cdata pointer into the slot of request ``idx`` (no copy)."""
        with self._lock:
            return self._view_at(idx, self._req_ptr, self._req_size)

    def response_view(self, idx: int) -> Any:
        """``RING_GET_RESPONSE``: a cdata pointer into the slot of response ``idx``."""
        with self._lock:
            return self._view_at(idx, self._rsp_ptr, self._rsp_size)

    def _copy_out(self, idx: int, ptr: Any, size: int) -> Any:
        """``RING_COPY_*``: a private copy of slot ``idx``, read once."""
        out = self._ffi.new(ptr)
        self._rffi.memmove(out, self._base + self._slot(idx), size)
        return out

    def _copy_in(self, idx: int, value: Any, ptr: Any, size: int) -> None:
        """Copy ``value`` (cdata of the type, a dict of its fields, or exactly ``size``
        bytes) into slot ``idx``."""
        ffi = self._ffi
        if isinstance(value, ffi.CData):
            t = ffi.typeof(value)
            if t is ptr.item:
                value = ffi.addressof(value)
            elif t is not ptr:
                raise ArgumentTypeError(f"expected {ptr.item.cname} cdata, got {t.cname}")
        elif isinstance(value, (dict, list, tuple)):
            try:
                value = ffi.new(ptr, value)
            except (KeyError, TypeError, ValueError, OverflowError, IndexError) as e:
                raise ArgumentError(f"cannot make a {ptr.item.cname} of {value!r}: {e}") \
                    from None
        else:
            try:
                n = memoryview(value).nbytes
            except TypeError:
                raise ArgumentTypeError(f"expected {ptr.item.cname} cdata, a dict of its "
                                        f"fields or {size} bytes, got "
                                        f"{type(value).__name__}") from None
            if n != size:
                raise ArgumentError(f"{n} bytes for a {size}-byte {ptr.item.cname}")
        self._rffi.memmove(self._base + self._slot(idx), value, size)

    def _pushed(self, notify: bool) -> bool:
        self.pushes += 1
        if notify:
            self.notifications += 1
        return notify

    def _signal(self, notify: bool) -> bool:
        if notify and self._notify is not None:
            self._notify()
        return notify

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.size} entries of {self._entry} bytes"
        return (f"<pyxen.ring.{type(self).__name__} {self.request_type}/{self.response_type} "
                f"{state}>")


class FrontRing(_Ring):
    """The frontend of a shared ring (ring.h's ``front_ring``): produces requests,
    consumes responses.

    ``init=True`` (the default) initialises the shared header (``XEN_FRONT_RING_INIT``);
    ``init=False`` attaches to an initialised ring at index ``start``
    (``FRONT_RING_ATTACH``). ``notify`` is called when a push needs to notify the backend
    (for example ``lambda: ev.notify(port)``).
    """

    _side = "front"

    def __init__(self, buf: Buffer, request_type: str, response_type: str, *,
                 init: bool = True, start: int = 0, ffi: FFI | None = None,
                 notify: Callable[[], object] | None = None):
        super().__init__(buf, request_type, response_type, ffi=ffi, notify=notify)
        if init:
            self._lib.pyxen_ring_shared_init(self._s)
        self._req_prod_pvt = self._rsp_cons = start & _MASK

    @property
    def req_prod_pvt(self) -> int:
        """Requests produced here, published or not."""
        return self._req_prod_pvt

    @property
    def rsp_cons(self) -> int:
        """Responses consumed here."""
        return self._rsp_cons

    @property
    def free_requests(self) -> int:
        """``RING_FREE_REQUESTS``: slots free for new requests."""
        return self.size - ((self._req_prod_pvt - self._rsp_cons) & _MASK)

    @property
    def full(self) -> bool:
        """``RING_FULL``: no slot free for a new request."""
        return self.free_requests <= 0

    def _claim(self) -> int:
        self._live()
        if self.free_requests <= 0:
            raise RingFullError(f"all {self.size} request slots are outstanding")
        idx = self._req_prod_pvt
        self._req_prod_pvt = (idx + 1) & _MASK
        return idx

    def next_request(self) -> Any:
        """A view into the next free request slot (``RING_GET_REQUEST(r,
        r->req_prod_pvt++)``): fill it, then :meth:`push_requests`."""
        with self._lock:
            idx = self._claim()
            return self._view_at(idx, self._req_ptr, self._req_size)

    def put_request(self, request: Any) -> int:
        """Copy ``request`` (cdata, a dict of fields, or bytes) into the next free slot;
        returns its index. Published by the next :meth:`push_requests`."""
        with self._lock:
            self._live()
            if self.free_requests <= 0:
                raise RingFullError(f"all {self.size} request slots are outstanding")
            idx = self._req_prod_pvt
            self._copy_in(idx, request, self._req_ptr, self._req_size)
            self._req_prod_pvt = (idx + 1) & _MASK
            return idx

    def push_requests(self) -> bool:
        """``RING_PUSH_REQUESTS_AND_CHECK_NOTIFY``: publish the requests produced; True (and
        ``notify`` called) if the backend must be notified."""
        with self._lock:
            self._live()
            notify = self._pushed(bool(self._lib.pyxen_ring_push_requests_and_check_notify(
                self._s, self._req_prod_pvt)))
        return self._signal(notify)

    def _responses(self, final: bool) -> int:
        """Unconsumed responses over one read of rsp_prod, checked
        (``RING_RESPONSE_PROD_OVERFLOW``)."""
        self._live()
        fn = (self._lib.pyxen_ring_final_check_for_responses if final
              else self._lib.pyxen_ring_unconsumed_responses)
        n = int(fn(self._s, self._rsp_cons, self._out))
        if n > self.size:
            raise RingOverflowError("rsp_prod", int(self._out[0]), self._rsp_cons, self.size)
        return n

    def unconsumed_responses(self) -> int:
        """``RING_HAS_UNCONSUMED_RESPONSES``: responses published and not yet consumed."""
        with self._lock:
            return self._responses(final=False)

    def final_check_for_responses(self) -> bool:
        """``RING_FINAL_CHECK_FOR_RESPONSES``: True if responses are waiting; otherwise
        ``rsp_event`` now asks for a notification of the next one (sleep until it)."""
        with self._lock:
            return self._responses(final=True) > 0

    def get_response(self) -> Any:
        """A private copy of the next unconsumed response (``RING_COPY_RESPONSE``), or None."""
        got = self.take_responses(1)
        return got[0] if got else None

    def take_responses(self, limit: int | None = None) -> list[Any]:
        """Private copies of the unconsumed responses (at most ``limit``), consumed."""
        with self._lock:
            n = self._responses(final=False)
            if limit is not None:
                n = min(n, max(limit, 0))
            cons = self._rsp_cons
            out = [self._copy_out(cons + i, self._rsp_ptr, self._rsp_size) for i in range(n)]
            self._rsp_cons = (cons + n) & _MASK
            return out


class BackRing(_Ring):
    """The backend of a shared ring (ring.h's ``back_ring``): consumes requests, produces
    responses. It never initialises the shared header; ``start`` is the index it attaches
    at (``BACK_RING_ATTACH``). ``notify`` is called when a push needs to notify the front.

    Every look at ``req_prod`` is checked: a frontend claiming more than the ring holds
    beyond the responses given (``RING_REQUEST_PROD_OVERFLOW``) raises
    :class:`RingOverflowError`, and at most ``RING_SIZE`` requests are ever in flight
    (``RING_REQUEST_CONS_OVERFLOW``).
    """

    _side = "back"

    def __init__(self, buf: Buffer, request_type: str, response_type: str, *,
                 start: int = 0, ffi: FFI | None = None,
                 notify: Callable[[], object] | None = None):
        super().__init__(buf, request_type, response_type, ffi=ffi, notify=notify)
        self._rsp_prod_pvt = self._req_cons = start & _MASK

    @property
    def req_cons(self) -> int:
        """Requests consumed here."""
        return self._req_cons

    @property
    def rsp_prod_pvt(self) -> int:
        """Responses produced here, published or not."""
        return self._rsp_prod_pvt

    @property
    def pending_responses(self) -> int:
        """Requests consumed and not yet answered (slots a response may go into)."""
        return (self._req_cons - self._rsp_prod_pvt) & _MASK

    def _requests(self, final: bool) -> int:
        """Unconsumed requests over one read of req_prod, checked."""
        self._live()
        fn = (self._lib.pyxen_ring_final_check_for_requests if final
              else self._lib.pyxen_ring_unconsumed_requests)
        n = int(fn(self._s, self._req_cons, self._rsp_prod_pvt, self.size, self._out))
        prod = int(self._out[0])
        if (prod - self._rsp_prod_pvt) & _MASK > self.size:
            raise RingOverflowError("req_prod", prod, self._rsp_prod_pvt, self.size)
        return n

    def unconsumed_requests(self) -> int:
        """``RING_HAS_UNCONSUMED_REQUESTS``: requests published and not yet consumed (never
        more than the slots left to answer them in)."""
        with self._lock:
            return self._requests(final=False)

    def final_check_for_requests(self) -> bool:
        """``RING_FINAL_CHECK_FOR_REQUESTS``: True if requests are waiting; otherwise
        ``req_event`` now asks for a notification of the next one (sleep until it)."""
        with self._lock:
            return self._requests(final=True) > 0

    def get_request(self) -> Any:
        """A private copy of the next unconsumed request (``RING_COPY_REQUEST``), or None:
        what a backend must work on, since the frontend can change the slot any time."""
        got = self.take_requests(1)
        return got[0] if got else None

    def take_requests(self, limit: int | None = None) -> list[Any]:
        """Private copies of the unconsumed requests (at most ``limit``), consumed."""
        with self._lock:
            n = self._requests(final=False)
            if limit is not None:
                n = min(n, max(limit, 0))
            cons = self._req_cons
            out = [self._copy_out(cons + i, self._req_ptr, self._req_size) for i in range(n)]
            self._req_cons = (cons + n) & _MASK
            return out

    def _claim(self) -> int:
        self._live()
        if self.pending_responses == 0:
            raise RingFullError("every consumed request has its response: no slot to "
                                "answer into")
        idx = self._rsp_prod_pvt
        self._rsp_prod_pvt = (idx + 1) & _MASK
        return idx

    def next_response(self) -> Any:
        """A view into the next response slot (``RING_GET_RESPONSE(r, r->rsp_prod_pvt++)``):
        fill it, then :meth:`push_responses`."""
        with self._lock:
            idx = self._claim()
            return self._view_at(idx, self._rsp_ptr, self._rsp_size)

    def put_response(self, response: Any) -> int:
        """Copy ``response`` (cdata, a dict of fields, or bytes) into the next response
        slot; returns its index. Published by the next :meth:`push_responses`."""
        with self._lock:
            self._live()
            if self.pending_responses == 0:
                raise RingFullError("every consumed request has its response: no slot to "
                                    "answer into")
            idx = self._rsp_prod_pvt
            self._copy_in(idx, response, self._rsp_ptr, self._rsp_size)
            self._rsp_prod_pvt = (idx + 1) & _MASK
            return idx

    def push_responses(self) -> bool:
        """``RING_PUSH_RESPONSES_AND_CHECK_NOTIFY``: publish the responses produced; True
        (and ``notify`` called) if the frontend must be notified."""
        with self._lock:
            self._live()
            notify = self._pushed(bool(self._lib.pyxen_ring_push_responses_and_check_notify(
                self._s, self._rsp_prod_pvt)))
        return self._signal(notify)


class ConsoleRing:
    """The console page (``struct xencons_interface``, ``xen/io/console.h``): the guest
    writes ``out`` and reads ``in``; the backend (xenconsoled) the opposite. ``side``
    says which end this is. A read-only buffer (a foreign mapping of a running guest's
    console page, say) allows :meth:`peek`, :meth:`history` and :meth:`readable`.

    Indexes are read once per call with acquire loads and published with release stores;
    a peer index claiming more bytes than the ring holds raises :class:`RingOverflowError`.
    Notifying the peer (the console event channel) is the caller's part.
    """

    def __init__(self, buf: Buffer, *, side: Literal["backend", "frontend"] = "backend"):
        if side not in ("backend", "frontend"):
            raise ArgumentError(f"side must be 'backend' or 'frontend', not {side!r}")
        rffi, self._lib = _native()
        self._ffi = rffi
        exported, view = _as_view(buf, writable=False)
        t = rffi.typeof("struct xencons_interface")
        if view.nbytes < rffi.sizeof(t):
            raise RingLayoutError(f"{view.nbytes} bytes are less than a "
                                  f"{rffi.sizeof(t)}-byte xencons_interface")
        self.side = side
        self.writable = not view.readonly
        self._view: memoryview | None = view
        self._base = rffi.from_buffer("char[]", exported)
        if int(rffi.cast("uintptr_t", self._base)) % 4:
            rffi.release(self._base)
            raise RingLayoutError("the console page is not 4-byte aligned")
        intf = rffi.cast("struct xencons_interface *", self._base)
        fields = dict(t.fields)
        rd, wr = ("out", "in") if side == "backend" else ("in", "out")

        def ring(name: str) -> tuple[int, int, Any, Any]:
            return (rffi.offsetof(t, name), fields[name].type.length,
                    rffi.cast("RING_IDX *", rffi.addressof(intf, f"{name}_cons")),
                    rffi.cast("RING_IDX *", rffi.addressof(intf, f"{name}_prod")))

        self._rd, self._wr = ring(rd), ring(wr)
        self._rd_name, self._wr_name = rd, wr
        self._lock = threading.Lock()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` released the buffer."""
        return self._view is None

    def _live(self) -> memoryview:
        view = self._view
        if view is None:
            raise HandleClosedError(type(self).__name__)
        return view

    def close(self) -> None:
        """Release the buffer (idempotent)."""
        with self._lock:
            if self._view is not None:
                self._ffi.release(self._base)
                self._view.release()
                self._view = None

    def __enter__(self) -> Self:
        self._live()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _snapshot(self) -> tuple[int, int, int]:
        """(cons, prod, bytes between) of the ring read here, each index read once."""
        _, size, cons_p, prod_p = self._rd
        prod = int(self._lib.pyxen_ring_load(prod_p))
        cons = int(self._lib.pyxen_ring_load(cons_p))
        n = (prod - cons) & _MASK
        if n > size:
            raise RingOverflowError(f"{self._rd_name}_prod", prod, cons, size)
        return cons, prod, n

    def _bytes(self, ring: tuple[int, int, Any, Any], start: int, n: int) -> bytes:
        view = self._live()
        off, size = ring[0], ring[1]
        first = start & (size - 1)
        head = min(n, size - first)
        return bytes(view[off + first:off + first + head]) + bytes(view[off:off + n - head])

    def readable(self) -> int:
        """Bytes waiting in the ring read here (``out`` for the backend)."""
        with self._lock:
            self._live()
            return self._snapshot()[2]

    def peek(self) -> bytes:
        """The waiting bytes, not consumed."""
        with self._lock:
            self._live()
            cons, _, n = self._snapshot()
            return self._bytes(self._rd, cons, n)

    def read(self, limit: int | None = None) -> bytes:
        """Consume and return the waiting bytes (at most ``limit``)."""
        with self._lock:
            self._live()
            if not self.writable:
                raise ReadOnlyError("consuming moves the consumer index: map the page writable")
            cons, _, n = self._snapshot()
            if limit is not None:
                n = min(n, max(limit, 0))
            data = self._bytes(self._rd, cons, n)
            self._lib.pyxen_ring_store(self._rd[2], (cons + n) & _MASK)  # xen_mb(); cons = ..
            return data

    def history(self) -> bytes:
        """What the ring read here last held: up to its size of the newest bytes written,
        consumed or not, oldest first (a snapshot; the peer may be writing meanwhile)."""
        with self._lock:
            self._live()
            _, size, _, prod_p = self._rd
            prod = int(self._lib.pyxen_ring_load(prod_p))
            n = min(prod, size)
            return self._bytes(self._rd, (prod - n) & _MASK, n)

    def space(self) -> int:
        """Bytes :meth:`write` can put into the ring written here now."""
        with self._lock:
            self._live()
            return self._space()[1]

    def _space(self) -> tuple[int, int]:
        _, size, cons_p, prod_p = self._wr
        cons = int(self._lib.pyxen_ring_load(cons_p))
        prod = int(self._lib.pyxen_ring_load(prod_p))
        used = (prod - cons) & _MASK
        if used > size:
            raise RingOverflowError(f"{self._wr_name}_prod (against a bogus {self._wr_name}_cons)",
                                    prod, cons, size)
        return prod, size - used

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Put as much of ``data`` as fits into the ring written here (``in`` for the
        backend) and publish it; returns the bytes written. Notify the peer after."""
        src = memoryview(data).cast("B")
        with self._lock:
            view = self._live()
            if not self.writable:
                raise ReadOnlyError("the console page is mapped read-only")
            prod, free = self._space()
            off, size = self._wr[0], self._wr[1]
            n = min(free, src.nbytes)
            first = prod & (size - 1)
            head = min(n, size - first)
            view[off + first:off + first + head] = src[:head]
            view[off:off + n - head] = src[head:n]
            self._lib.pyxen_ring_store(self._wr[3], (prod + n) & _MASK)  # xen_wmb(); prod =
            return n

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("rw" if self.writable else "ro")
        return f"<pyxen.ring.ConsoleRing {self.side} {state}>"
