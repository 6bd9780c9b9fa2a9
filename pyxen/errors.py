"""pyxen's exception hierarchy. Each C library has one mapping helper in its module
(``pyxen.xenstore._check``, ``pyxen.ctrl._check``, ...) that raises these."""

from __future__ import annotations

import errno as _errno
import os


class PyxenError(Exception):
    """Base of every exception pyxen raises on purpose."""


class XenUnavailableError(PyxenError):
    """Xen (or one of its libraries or devices) is not there: says what is missing."""


class XenFeatureUnavailable(PyxenError):
    """The Xen release pyxen was built against lacks this call or field."""


class HandleClosedError(PyxenError, ValueError):
    """A call on a handle (XenStore, Ctrl, light.Context, Devices, ...) after ``close()``,
    or one that was waiting when another thread closed it. A ValueError, as a closed file's
    "I/O operation on closed file"."""

    def __init__(self, handle: object):
        name = handle if isinstance(handle, str) else type(handle).__name__
        super().__init__(f"I/O operation on closed {name}")


class DomainNotFoundError(PyxenError, LookupError):
    """No domain with that id or name. Each layer raises its own subclass
    (``ctrl.NoSuchDomainError``, ``light.DomainNotFound``, ``devices.DomainNotFoundError``,
    and this class itself for a name pyxen.guest cannot resolve), so one ``except`` catches
    them all."""


class XenError(PyxenError, OSError):
    """A Xen library call failed. ``errno``/``strerror`` as OSError; ``call`` names the C call."""

    def __init__(self, err: int, message: str | None = None, *, call: str | None = None,
                 detail: str | None = None):
        text = message or (os.strerror(err) if err else "unknown error")
        OSError.__init__(self, err, text)
        self.call = call
        self.detail = detail

    def __str__(self) -> str:
        name = _errno.errorcode.get(self.errno, str(self.errno)) if self.errno else "?"
        where = f"{self.call}: " if self.call else ""
        extra = f" ({self.detail})" if self.detail else ""
        return f"{where}[{name}] {self.strerror}{extra}"
