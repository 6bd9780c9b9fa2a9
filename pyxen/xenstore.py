"""pyxen.xenstore: the xenstore tree through libxenstore."""

from __future__ import annotations

import errno as _errno
import os

from ._handle import Handle
from ._native import xen
from .errors import XenError, XenUnavailableError


class XenStoreError(XenError):
    """A libxenstore call failed; ``path`` is the node it was about."""

    def __init__(self, err: int, message: str | None = None, *, call: str | None = None,
                 detail: str | None = None, path: str | None = None):
        super().__init__(err, message, call=call, detail=detail)
        self.path = path


def _raise(call: str, path: str | None = None):
    ffi, _ = xen()
    raise XenStoreError(ffi.errno or _errno.EIO, call=call, path=path, detail=path)


def _available() -> None:
    if not (os.path.exists("/dev/xen/xenbus") or os.path.exists("/run/xenstored/socket")
            or os.path.exists("/var/run/xenstored/socket")):
        raise XenUnavailableError("cannot open xenstore: neither /dev/xen/xenbus nor "
                                  "/run/xenstored/socket exists (not a Xen domain, or "
                                  "xenstored is not running)")


class XenStore(Handle):
    """A connection to xenstored (``xs_open``)."""

    def __init__(self, flags: int = 0) -> None:
        _available()
        ffi, lib = xen()
        raw = lib.xs_open(flags)
        if raw == ffi.NULL:
            _raise("xs_open")
        self._adopt(ffi, raw, lib.xs_close)

    def read(self, path: str, tx: int = 0) -> bytes:
        ffi, lib = xen()
        n = ffi.new("unsigned int *")
        raw = lib.xs_read(self._p(), tx, path.encode(), n)
        if raw == ffi.NULL:
            _raise("xs_read", path)
        try:
            return ffi.unpack(ffi.cast("char *", raw), n[0])
        finally:
            lib.free(raw)


def open(flags: int = 0) -> XenStore:  # noqa: A001 - mirrors xs_open
    return XenStore(flags)
