"""Base class for objects that own a C handle."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable

from .errors import HandleClosedError

if TYPE_CHECKING:
    from ._xen import FFI
    from typing_extensions import Self


class Handle:
    """Owns one C pointer: context manager, idempotent ``close()``, ``ffi.gc`` as backstop.

    Subclasses call ``_adopt(ffi, ptr, destructor)`` once the C handle is open. Objects
    derived from a handle keep a reference to it (``parent``), so a parent is never
    freed while a child still uses it.
    """

    _ptr: Any = None             # the C handle (an ffi.gc'd cdata) while open

    def _adopt(self, ffi: FFI, ptr: Any, destructor: Callable[[Any], object]) -> None:
        self._ffi = ffi
        self._ptr = ffi.gc(ptr, destructor)
        self._close_lock = threading.Lock()

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def close(self) -> None:
        lock = getattr(self, "_close_lock", None)
        if lock is None:
            return
        with lock:
            ptr, self._ptr = self._ptr, None
            if ptr is not None:
                self._ffi.release(ptr)  # runs the destructor now, exactly once

    def _p(self) -> Any:
        ptr = self._ptr
        if ptr is None:
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
