"""xentoollog loggers that write into Python ``logging`` (one logger per C library)."""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from ._native import xen
from .errors import OutOfMemoryError

# xentoollog_level → logging level
_LEVELS = {1: 5, 2: logging.DEBUG, 3: logging.DEBUG, 4: logging.INFO, 5: logging.INFO,
           6: logging.INFO, 7: logging.WARNING, 8: logging.ERROR, 9: logging.CRITICAL}
_XTL_FOR = [(logging.CRITICAL, 9), (logging.ERROR, 8), (logging.WARNING, 7),
            (logging.INFO, 4), (logging.DEBUG, 2)]

_installed = False


def _install() -> None:
    global _installed
    if _installed:
        return
    ffi, lib = xen()

    @ffi.def_extern()
    def pyxen_xtl_message(handle: Any, level: int, errnoval: int, context: Any,
                          message: Any) -> None:
        try:
            logger = ffi.from_handle(handle).logger
            text = ffi.string(message).decode("utf-8", "replace")
            if context != ffi.NULL:
                text = f"{ffi.string(context).decode('utf-8', 'replace')}: {text}"
            if errnoval > 0:
                import os
                text += f": {os.strerror(errnoval)}"
            logger.log(_LEVELS.get(level, logging.INFO), "%s", text)
        except Exception:  # never let an exception unwind into C
            pass

    _installed = True


class XtlLogger:
    """A C ``xentoollog_logger*`` (``.ptr``) forwarding to ``logging.getLogger(name)``.

    Its lifetime is tied to the C handle that logs through it, never to the garbage
    collector's order: the owner's destructor closes its handle, then calls
    :meth:`destroy`. If this object is collected first (a cycle collected in one pass
    with the handle), the C logger only stops forwarding (``pyxen_logger_detach``) and
    the handle can still close through it; it is freed by ``destroy`` or not at all.
    """

    def __init__(self, name: str):
        ffi, lib = xen()
        _install()
        self.logger = logging.getLogger(name)
        eff = self.logger.getEffectiveLevel()
        min_level = next((x for lvl, x in _XTL_FOR if eff >= lvl), 1)
        self._handle = ffi.new_handle(self)
        raw = lib.pyxen_logger_new(self._handle, min_level)
        if raw == ffi.NULL:
            raise OutOfMemoryError("xentoollog logger")
        self.ptr = raw
        self._lock = threading.Lock()
        self._detach = weakref.finalize(self, lib.pyxen_logger_detach, raw)

    def destroy(self) -> None:
        """Free the C logger (idempotent). Only once nothing can log through it: the
        owning C handle is closed."""
        with self._lock:
            ptr, self.ptr = self.ptr, None
        if ptr is not None:
            self._detach.detach()
            xen()[1].pyxen_logger_destroy(ptr)
