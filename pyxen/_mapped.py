"""What pyxen.evtchn, pyxen.gnttab and pyxen.foreignmemory share: a C handle kept open
while calls and mappings use it (:class:`_Core`), and memory mapped through it exposed as a
Python buffer (:class:`Mapping`).

Memory safety of a mapping's buffer: the memoryview :attr:`Mapping.buffer` gives is built
on a cffi buffer that keeps the mapping's ``ffi.gc`` cdata alive, and the C unmap is that
cdata's destructor. So the pages stay mapped while any view of them exists: ``unmap()``
releases the mapping's own view (using it then raises ValueError, "operation forbidden on
released memoryview object"), refuses with :class:`MappingBusyError` while something holds an
export of that view (numpy, ``ffi.from_buffer``, ...), and a slice or copy-free view made from
it keeps the pages mapped until it goes. The C handle is closed only once no call and no
mapping uses it, whichever thread closes it.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable

from ._handle import Handle
from .errors import ArgumentError, HandleClosedError, PyxenError, ReadOnlyError

if TYPE_CHECKING:
    from typing_extensions import Self

    from ._xen import FFI

PAGE_SIZE = 4096  # XC_PAGE_SIZE: grants and foreign frames are 4 KiB pages


class MappingBusyError(PyxenError, BufferError):
    """``unmap()`` refused: something holds an export of the mapping's buffer (release it
    first), as ``mmap.close()`` refuses with exported pointers."""


class _Core:
    """One C handle of a stable library: closed by ``close_fn`` once it is asked to close
    and no call (``use``) or mapping (``acquire``/``release``) still needs it."""

    def __init__(self, raw: Any, close_fn: Callable[[Any], object], name: str,
                 keep: object = None):
        self.raw = raw
        self._keep = keep  # the handle's logger: alive until the C handle is closed
        self.name = name
        self._close_fn = close_fn
        self._lock = threading.RLock()  # re-entrant: a gc destructor may run under it
        self._users = 0
        self.closing = False
        self.closed = False

    def acquire(self) -> Any:
        with self._lock:
            if self.closing:
                raise HandleClosedError(self.name)
            self._users += 1
            return self.raw

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            self._maybe_close()

    def use(self) -> _Core:
        """``with core.use() as raw:``: the C handle, kept open until the block ends."""
        return self

    # a context manager without a generator: this is on every call's path
    def __enter__(self) -> Any:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def destructor(self, _ptr: object = None) -> None:
        """The Handle's ``ffi.gc`` destructor: close now, or when the last user goes."""
        with self._lock:
            self.closing = True
            self._maybe_close()

    def _maybe_close(self) -> None:
        if self.closing and self._users == 0 and not self.closed:
            self.closed = True
            self._close_fn(self.raw)
            destroy = getattr(self._keep, "destroy", None)
            if destroy is not None:
                destroy()   # the handle's logger: freed once the handle is closed


class Mapping:
    """Pages mapped into this process: :attr:`buffer` is a memoryview of them (no copy).

    ``unmap()`` (or leaving a ``with`` block, or closing the handle that made it) unmaps;
    the garbage collector is the backstop. Reading or writing through the mapping after
    that raises HandleClosedError; its buffer is released (ValueError on use).
    """

    def __init__(self, ffi: FFI, core: _Core, addr: Any, size: int, writable: bool,
                 unmap: Callable[[Any, Any], object]):
        """``core`` has been ``acquire``d once for this mapping; ``unmap(raw, addr)``
        undoes the map call."""
        self.size = size
        self.writable = writable
        self._lock = threading.Lock()

        def destroy(_p: object) -> None:
            try:
                unmap(core.raw, addr)
            finally:
                core.release()

        ptr = ffi.gc(ffi.cast("char *", addr), destroy)
        self._cbuf: Any = ffi.buffer(ptr, size)  # keeps ptr (and so the pages) alive
        view = memoryview(self._cbuf)
        self._view: memoryview | None = view if writable else view.toreadonly()

    @property
    def closed(self) -> bool:
        """True once the mapping is unmapped (its buffer released)."""
        return self._view is None

    def _live(self) -> memoryview:
        view = self._view
        if view is None:
            raise HandleClosedError(type(self).__name__)
        return view

    @property
    def buffer(self) -> memoryview:
        """The mapped pages as a memoryview (read-only unless mapped writable)."""
        return self._live()

    def __len__(self) -> int:
        return self.size

    def read(self, offset: int = 0, size: int | None = None) -> bytes:
        """A copy of ``size`` bytes (to the end by default) from ``offset``."""
        with self._lock:
            view = self._live()
            end = self.size if size is None else offset + size
            if not 0 <= offset <= end <= self.size:
                raise ArgumentError(f"range {offset}..{end} outside the {self.size}-byte mapping")
            return bytes(view[offset:end])

    def write(self, data: bytes | bytearray | memoryview, offset: int = 0) -> None:
        """Copy ``data`` into the mapping at ``offset``."""
        with self._lock:
            view = self._live()
            if not self.writable:
                raise ReadOnlyError("the mapping is read-only")
            src = memoryview(data).cast("B")
            if not 0 <= offset <= offset + len(src) <= self.size:
                raise ArgumentError(f"{len(src)} bytes at {offset} do not fit the "
                                 f"{self.size}-byte mapping")
            view[offset:offset + len(src)] = src

    def unmap(self) -> None:
        """Unmap now (idempotent). Refused with MappingBusyError while an export of
        :attr:`buffer` is held; views sliced from it keep the pages mapped until they go."""
        self._drop(force=False)

    def _drop(self, force: bool) -> None:
        with self._lock:
            view = self._view
            if view is None:
                return
            try:
                view.release()
            except BufferError as e:
                if not force:
                    raise MappingBusyError(f"cannot unmap: {e}; release it first") from None
            # The pages are unmapped when the cffi buffer goes: now, unless a view made from
            # the buffer (a slice, an export) still holds it; then when that goes.
            self._view = None
            self._cbuf = None

    def __enter__(self) -> Self:
        self._live()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unmap()

    def __repr__(self) -> str:
        state = "unmapped" if self.closed else f"{self.size} bytes"
        mode = "rw" if self.writable else "ro"
        return f"<{type(self).__module__}.{type(self).__name__} {mode} {state}>"


class StableHandle(Handle):
    """A handle of one of the stable libraries. A plain C call passes ``self._p()``, the
    ``ffi.gc``'d pointer: the call holds it, so the C handle cannot close under it (the
    handle rule; ``_use()`` does the same for a block of calls). A mapping ``acquire``s the
    core, so the C handle stays open while it is mapped; mappings it made are unmapped when
    it closes."""

    _core: _Core

    def _open_core(self, ffi: FFI, raw: Any, close_fn: Callable[[Any], object],
                   keep: object = None) -> None:
        self._core = _Core(raw, close_fn, type(self).__name__, keep)
        self._mappings: weakref.WeakSet[Mapping] = weakref.WeakSet()
        self._adopt(ffi, raw, self._core.destructor)

    def _use(self) -> _Core:
        self._p()
        return self._core

    def _track(self, mapping: Mapping) -> None:
        self._mappings.add(mapping)

    def close(self) -> None:
        """Idempotent, from any thread: new calls raise HandleClosedError; the C handle closes when
        no call or mapping uses it."""
        for m in list(getattr(self, "_mappings", ())):
            m._drop(force=True)
        super().close()
