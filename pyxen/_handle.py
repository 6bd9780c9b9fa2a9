"""Base class for objects that own a C handle, and the one rule every handle follows.

**Handles are safe to share between threads and to close from any thread.** Every
handle type (``xenstore.XenStore``, ``ctrl.Ctrl``, ``light.Context``, and
``devices.Devices`` over them) follows it:

- Any number of threads may call methods of one handle at once. cffi drops the GIL
  during each C call; the C libraries lock their own state (libxenstore per request,
  libxl its ctx) and pyxen locks its Python-side state (light's event queues).
- ``close()`` may run in any thread, at any time, any number of times (the second and
  later are no-ops). From the moment it starts, new calls raise
  :class:`pyxen.errors.HandleClosedError`, also a ``ValueError``.
- ``close()`` never frees the C handle under a running call: a call in flight holds a
  reference to the C pointer (its argument), and the ``ffi.gc`` destructor runs with the
  last reference. So the free happens in ``close()`` when nothing is in flight, or is
  left to the last call still running, which completes normally (its result or its own
  error). ``close()`` does not block for plain calls; handles with operations that span
  calls (libxl's asynchronous operations) finish those first, in ``_on_close``.
- Objects derived from a handle keep a reference to it (``parent``), and go through
  ``_p()`` for each call, so they too see ``HandleClosedError`` after ``close()``. Code
  must not keep the C pointer past the call (or sequence of calls) it needs it for.

Subclasses call ``_adopt(ffi, ptr, destructor)`` once the C handle is open, take the
pointer with ``_p()`` for each C call, and may override ``_on_close`` to wind down what
must end before the free (it runs once, in the closing thread, which alone may still
use ``_p()`` then).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable

from .errors import HandleClosedError

if TYPE_CHECKING:
    from ._xen import FFI
    from typing_extensions import Self


class Handle:
    """Owns one C pointer: context manager, idempotent thread-safe ``close()``, ``ffi.gc``
    as the only destructor (see the module docstring for the rule)."""

    _ptr: Any = None             # the C handle (an ffi.gc'd cdata) while open
    _closing: Any = None         # the C handle while _on_close runs ...
    _closer: int | None = None   # ... in this thread, the only one that may use it then

    def _adopt(self, ffi: FFI, ptr: Any, destructor: Callable[[Any], object]) -> None:
        self._ffi = ffi
        self._close_lock = threading.Lock()
        self._ptr = ffi.gc(ptr, destructor)

    @property
    def closed(self) -> bool:
        """True once ``close()`` has started (new calls raise HandleClosedError)."""
        return self._ptr is None

    def close(self) -> None:
        """Idempotent, from any thread. New calls raise HandleClosedError at once; the C
        handle is freed now, or when the last call still using it returns."""
        lock = getattr(self, "_close_lock", None)
        if lock is None:
            return                   # never opened
        with lock:                   # a concurrent close() returns once this one is done
            ptr = self._ptr
            if ptr is None:
                return
            self._ptr = None
            self._closing, self._closer = ptr, threading.get_ident()
            try:
                self._on_close()
            finally:
                self._closing = self._closer = None
        del ptr                      # ffi.gc destructor runs with the last reference

    def _on_close(self) -> None:
        """Wind down what must end before the C handle is freed (runs once, in close())."""

    def _p(self) -> Any:
        ptr = self._ptr
        if ptr is None:
            ptr = self._closing
            if ptr is None or self._closer != threading.get_ident():
                raise HandleClosedError(self)
        return ptr

    def __enter__(self) -> Self:
        self._p()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<{type(self).__module__}.{type(self).__name__} {state}>"
