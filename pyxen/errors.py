"""pyxen's exceptions, and the one place C error codes become them.

Every exception pyxen raises on purpose is a :class:`PyxenError`. Where Python has a
builtin for the same failure the class also inherits it (a bad argument is a ValueError,
a wrong type a TypeError, a timeout a TimeoutError, a missing node a KeyError ...), so
``except ValueError`` keeps working. The layer modules (``pyxen.ctrl``, ``pyxen.light``,
``pyxen.xenstore``, ``pyxen.devices``, ``pyxen.guest``, ``pyxen.config``) re-export the
classes they raise: ``pyxen.ctrl.NoSuchDomainError is pyxen.errors.NoSuchDomainError``.

One checker per C library turns a failed call into a typed exception. Each is a pure
function of the return code, the errno and the call's name, built on the constants the
compiler filled into ``pyxen._xen`` (``lib.ERROR_*`` for libxl, errno for the others):

* :func:`check_xenctrl` (libxenctrl, libxenguest): a negative rc → :class:`XenCtrlError`
  by errno (ESRCH → :class:`NoSuchDomainError` ...). The errno is the one cffi saved
  right after *this* call in *this* thread (``ffi.errno``), never the handle's shared
  "last error", which another thread may have overwritten meanwhile.
* :func:`check_xenstore` / :func:`xenstore_error` (libxenstore): errno →
  :class:`XenStoreError` (ENOENT → :class:`XenStoreNotFound` ...).
* :func:`check_libxl` / :func:`libxl_error` (libxl): a negative ``ERROR_*`` →
  :class:`LibxlError`. ``ERROR_NOTFOUND`` depends on the call: a domain lookup gives
  :class:`DomainNotFound`, a device call :class:`LibxlDeviceNotFound` (a
  :class:`DeviceNotFoundError`), anything else :class:`LibxlNotFound`.
* :func:`check_libxlutil` (libxlutil): a nonzero errno rc → :class:`LibxlutilError`.
* :func:`check_hypfs` (libxenhypfs): errno → :class:`HypfsError` (ENOENT →
  :class:`HypfsNotFound` ...); :func:`check_xenstat` (libxenstat, which gives no errno).
* :func:`check_devicemodel` (libxendevicemodel): errno → :class:`DeviceModelError`
  (ESRCH → :class:`DeviceModelDomainError`, ENOENT → :class:`IoreqServerNotFound` ...).
* :func:`check_vchan` (libxenvchan): a negative rc → :class:`VchanError` by errno, or
  :class:`VchanPeerClosedError` once the other end has gone.
* :func:`check_kernel` (the Linux ioctls of ``pyxen._linux``: loop devices, interfaces,
  bridges): -1 → :class:`KernelCallError` with this thread's errno.

``except DomainNotFoundError`` catches "no such domain" from every layer.
"""

from __future__ import annotations

import errno as _errno
import os
import re
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from .devices import XenbusState

__all__ = [
    "PyxenError", "XenUnavailableError", "XenFeatureUnavailable", "HandleClosedError",
    "DomainNotFoundError", "ArgumentError", "ArgumentTypeError", "ArgumentIndexError",
    "ReadOnlyError", "PyxenTimeoutError", "GuestWaitTimeout",
    "OutOfMemoryError", "XenError",
    # libxenctrl
    "XenCtrlError", "NoSuchDomainError", "XenPermissionError", "XenInvalidArgumentError",
    "XenArgumentTypeError", "XenOutOfMemoryError", "XenDomainExistsError", "MsrReadError",
    # libxl
    "LibxlError", "DomainNotFound", "LibxlInvalid", "LibxlNotFound", "LibxlDeviceNotFound",
    "CreateTimeout",
    # libxlutil / config
    "ConfigError", "ConfigTypeError", "LibxlutilError",
    # libxenstore
    "XenStoreError", "XenStoreNotFound", "XenStorePermissionError", "XenStoreAgainError",
    "TransactionConflict", "TransactionRetriesExhausted", "XenStoreInvalidError",
    "XenStoreTooBigError", "XenStoreQuotaError", "XenStoreExistsError", "XenStorePathError",
    "XenStorePathTypeError", "XenStorePermsError", "XenStorePermsTypeError",
    "XenStoreValueTypeError", "TransactionStateError", "TransactionUsageError",
    # devices
    "DeviceError", "DeviceSpecError", "DeviceSpecTypeError", "DeviceBusyError",
    "BackendDomainError", "DeviceNotFoundError", "DeviceTimeout", "HotplugError",
    # guest
    "NoSerialError", "ConsoleTtyError", "ConsoleTimeoutError", "BuildError",
    "KernelNotFoundError", "InsufficientMemoryError", "UnsupportedGuestError", "SpecError",
    "SpecTypeError", "UnsupportedConfigError", "QmpError",
    # checkers
    "check_xenctrl", "xenctrl_error", "check_xenstore", "xenstore_error", "raise_xenstore",
    "check_libxl", "libxl_error", "check_libxlutil", "KernelCallError", "check_kernel",
    "HypfsError", "HypfsNotFound", "HypfsPermissionError", "HypfsPathError", "check_hypfs",
    "XenStatError", "check_xenstat",
    "DeviceModelError", "DeviceModelDomainError", "DeviceModelInvalidError",
    "DeviceModelPermissionError", "IoreqServerNotFound", "check_devicemodel",
    # shared rings (pyxen.ring)
    "RingError", "RingLayoutError", "RingFullError", "RingOverflowError",
    # libxenvchan
    "VchanError", "VchanNotFoundError", "VchanDomainError", "VchanInvalidError",
    "VchanPermissionError", "VchanPeerClosedError", "VchanIncompleteReadError",
    "VchanTimeoutError", "check_vchan",
]


# ======================================================================= the base classes

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
    """No domain with that id or name. The libxenctrl and libxl layers raise their own
    subclasses (``ctrl.NoSuchDomainError``, ``light.DomainNotFound``); pyxen.devices and
    pyxen.guest raise this class itself (``devices.DomainNotFoundError`` is this class), so
    one ``except`` catches them all."""


class ArgumentError(PyxenError, ValueError):
    """An argument pyxen rejects before any C call (``max_attempts=0`` ...)."""


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument of the wrong Python type, rejected before any C call."""


class ArgumentIndexError(ArgumentError, IndexError):
    """An index out of range (a frame, a page, a vCPU), rejected before any C call."""


class ReadOnlyError(PyxenError, PermissionError):
    """A write through something mapped or opened read-only, refused before it faults."""


class PyxenTimeoutError(PyxenError, TimeoutError):
    """pyxen gave up waiting for something (the subclass says what)."""


class OutOfMemoryError(PyxenError, MemoryError):
    """A C allocation outside the Xen calls failed (a logger, a memory stream ...)."""


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


def _lib() -> tuple[Any, Any]:
    from ._native import xen  # late: pyxen._native imports this module
    return xen()


# ============================================================================ libxenctrl

class XenCtrlError(XenError):
    """A libxenctrl call failed; ``domid`` is set when the call was about one domain."""

    def __init__(self, err: int, message: str | None = None, *, call: str | None = None,
                 detail: str | None = None, domid: int | None = None):
        super().__init__(err, message, call=call, detail=detail)
        self.domid = domid

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} [domid {self.domid}]" if self.domid is not None else text


class NoSuchDomainError(XenCtrlError, DomainNotFoundError):
    """ESRCH: there is no domain with that id."""


class XenPermissionError(XenCtrlError, PermissionError):
    """EPERM/EACCES: the hypervisor (or XSM policy) refused the operation."""


class XenInvalidArgumentError(XenCtrlError, ValueError):
    """EINVAL (or an argument pyxen refuses before the call, such as a reserved domid)."""


class XenArgumentTypeError(XenInvalidArgumentError, TypeError):
    """An argument of the wrong Python type for a libxenctrl call (a str domid)."""


class XenOutOfMemoryError(XenCtrlError, MemoryError):
    """ENOMEM: the hypervisor or libxenctrl ran out of memory."""


class XenDomainExistsError(XenCtrlError, FileExistsError):
    """EEXIST: a domain with the requested id already exists."""


class MsrReadError(PyxenError, OSError):
    """The msr driver returned fewer than 8 bytes (``pyxen.cpuid.read_msr``)."""


_XENCTRL_CLASS: dict[int, type[XenCtrlError]] = {
    _errno.ESRCH: NoSuchDomainError, _errno.EPERM: XenPermissionError,
    _errno.EACCES: XenPermissionError, _errno.EINVAL: XenInvalidArgumentError,
    _errno.ENOMEM: XenOutOfMemoryError, _errno.EEXIST: XenDomainExistsError,
}


def xenctrl_error(err: int, call: str, domid: int | None = None, detail: str | None = None,
                  message: str | None = None) -> XenCtrlError:
    """The XenCtrlError for errno ``err`` (EIO when the call left errno at 0)."""
    err = err or _errno.EIO
    return _XENCTRL_CLASS.get(err, XenCtrlError)(err, message, call=call, detail=detail,
                                                  domid=domid)


def check_xenctrl(rc: int, call: str, domid: int | None = None, *,
                  err: int | None = None) -> int:
    """libxenctrl's (and libxenguest's) checker: ``rc`` if it is >= 0, else raise the
    XenCtrlError for ``err`` — by default the errno cffi saved for this thread right
    after its last C call, so call it straight after the failed call."""
    if rc >= 0:
        return rc
    if err is None:
        err = _lib()[0].errno
    raise xenctrl_error(err, call, domid)


# ============================================================================== libxl

class LibxlError(XenError):
    """A libxl call failed: ``rc`` is libxl's ERROR_* code, ``code`` its name."""

    def __init__(self, rc: int, code: str, *, call: str, domid: int | None = None,
                 detail: str | None = None):
        err = _LIBXL_ERRNO.get(code, _errno.EIO)
        what = f"libxl error {code} ({rc})"
        if domid is not None:
            what += f" for domain {domid}"
        super().__init__(err, what, call=call, detail=detail)
        self.rc = rc
        self.code = code
        self.domid = domid


class DomainNotFound(LibxlError, DomainNotFoundError):
    """No such domain (id or name)."""


class LibxlInvalid(LibxlError, ValueError):
    """libxl rejected an argument or configuration (ERROR_INVAL and friends)."""


class LibxlNotFound(LibxlError, LookupError):
    """ERROR_NOTFOUND from a call that is neither a domain lookup nor a device call."""


class DeviceError(PyxenError):
    """A device could not be attached, listed or detached."""


class DeviceNotFoundError(DeviceError, LookupError):
    """No such device in that domain."""


class LibxlDeviceNotFound(LibxlNotFound, DeviceNotFoundError):
    """libxl found no such device (disk, nic ...) in an existing domain."""


class CreateTimeout(PyxenTimeoutError):
    """``CreateOp.wait``'s timeout passed; the creation stays in flight."""


# libxl's ERROR_* names (libxl_error_to_string) → the errno a LibxlError carries
_LIBXL_ERRNO = {"NOMEM": _errno.ENOMEM, "INVAL": _errno.EINVAL, "NI": _errno.ENOSYS,
                "DOMAIN_NOTFOUND": _errno.ESRCH, "NOTFOUND": _errno.ENOENT,
                "DEVICE_EXISTS": _errno.EEXIST, "TIMEDOUT": _errno.ETIMEDOUT,
                "GUEST_TIMEDOUT": _errno.ETIMEDOUT, "NOPARAVIRT": _errno.EOPNOTSUPP,
                "NOT_READY": _errno.EAGAIN, "LOCK_FAIL": _errno.EBUSY,
                "JSON_CONFIG_EMPTY": _errno.ENODATA, "FEATURE_REMOVED": _errno.ENOSYS,
                "PROTOCOL_ERROR_QMP": _errno.EPROTO, "QMP_DEVICE_NOT_ACTIVE": _errno.ENODEV,
                "QMP_DEVICE_NOT_FOUND": _errno.ENODEV, "DOMAIN_DESTROYED": _errno.ESRCH}
# calls whose ERROR_NOTFOUND means "no such domain" / "no such device"
_LIBXL_DOMAIN_LOOKUP = frozenset({
    "domid", "libxl_domain_info", "libxl_name_to_domid", "libxl_domid_to_name",
    "libxl_list_domain", "libxl_retrieve_domain_configuration", "libxl_uuid_to_domid"})
_LIBXL_DEVICE_CALL = re.compile(r"device|disk|nic|vdev|vtpm|usb|pci|channel|vkb|vfb|vif")


def _libxl_class(rc: int, call: str, lib: Any) -> type[LibxlError]:
    if rc == lib.ERROR_DOMAIN_NOTFOUND or rc == lib.ERROR_DOMAIN_DESTROYED:
        return DomainNotFound
    if rc == lib.ERROR_NOTFOUND:
        if call in _LIBXL_DOMAIN_LOOKUP:
            return DomainNotFound
        if _LIBXL_DEVICE_CALL.search(call):
            return LibxlDeviceNotFound
        return LibxlNotFound
    if rc == lib.ERROR_INVAL or rc == lib.ERROR_JSON_CONFIG_EMPTY:
        return LibxlInvalid
    return LibxlError


def libxl_error(rc: int, call: str, domid: int | None = None, detail: str | None = None,
                *, cls: type[LibxlError] | None = None) -> LibxlError:
    """The LibxlError for libxl's ``ERROR_*`` code ``rc`` from ``call`` (a nonnegative rc
    from a call that should have given one becomes ERROR_FAIL). ``cls`` overrides the
    class the code and call would give."""
    ffi, lib = _lib()
    if rc >= 0:
        rc = lib.ERROR_FAIL
    s = lib.libxl_error_to_string(rc)
    code = ffi.string(s).decode().upper() if s != ffi.NULL else str(rc)
    return (cls or _libxl_class(rc, call, lib))(rc, code, call=call, domid=domid,
                                                 detail=detail)


def check_libxl(rc: int, call: str, domid: int | None = None,
                detail: str | None = None) -> int:
    """libxl's checker: ``rc`` if it is >= 0, else raise :func:`libxl_error`."""
    if rc >= 0:
        return rc
    raise libxl_error(rc, call, domid, detail)


# ========================================================================= libxlutil

class ConfigError(PyxenError, ValueError):
    """A domain config is malformed: ``file``, ``line`` (1-based, or None) and ``key``."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None, report: str | None = None):
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        self.report = report
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        elif self.line:
            where = f"line {self.line}: "
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.message}"


class ConfigTypeError(ConfigError, TypeError):
    """An argument of the wrong Python type (``parse_disk(None)``, ``parse_file(3)``)."""


class LibxlutilError(XenError):
    """A libxlutil call failed with errno ``rc`` (``xlu_cfg_init`` ...)."""


def check_libxlutil(rc: int, call: str, detail: str | None = None, *,
                    absent_ok: bool = False) -> int:
    """libxlutil's checker: its calls return 0 or an errno. With ``absent_ok``, ESRCH
    (xlu_cfg_get_*: no such setting) is returned rather than raised."""
    if rc == 0 or (absent_ok and rc == _errno.ESRCH):
        return rc
    raise LibxlutilError(rc if rc > 0 else _errno.EIO, call=call, detail=detail)


# ======================================================================== libxenstore

class XenStoreError(XenError):
    """A libxenstore call failed; ``errno`` says why, ``path`` is the node it was about."""

    def __init__(self, err: int, message: str | None = None, *, call: str | None = None,
                 detail: str | None = None, path: str | None = None):
        super().__init__(err, message, call=call, detail=detail or path)
        self.path = path


class XenStoreNotFound(XenStoreError, FileNotFoundError, KeyError):
    """ENOENT: the node does not exist (also a ``KeyError`` and ``FileNotFoundError``)."""


class XenStorePermissionError(XenStoreError, PermissionError):
    """EACCES/EPERM/EROFS: xenstored refused the caller (also a ``PermissionError``)."""


class XenStoreAgainError(XenStoreError):
    """EAGAIN: try again (for a transaction commit: another writer got there first)."""


class TransactionConflict(XenStoreAgainError):
    """A transaction's commit (or an operation inside it) failed with EAGAIN."""


class TransactionRetriesExhausted(TransactionConflict):
    """Every one of ``attempts`` transaction attempts ended in a conflict."""

    def __init__(self, attempts: int, path: str | None = None):
        super().__init__(_errno.EAGAIN, call="xs_transaction_end",
                         detail=f"gave up after {attempts} conflicting attempts", path=path)
        self.attempts = attempts


class XenStoreInvalidError(XenStoreError):
    """EINVAL: xenstored rejected the arguments (oxenstored also reports quota this way)."""


class XenStoreTooBigError(XenStoreError):
    """E2BIG: the request or value is over the protocol's payload limit."""


class XenStoreQuotaError(XenStoreError):
    """ENOSPC/EDQUOT: a xenstored quota (nodes, watches, transactions, size) is exceeded."""


class XenStoreExistsError(XenStoreError, FileExistsError):
    """EEXIST."""


class XenStorePathError(PyxenError, ValueError):
    """A path was rejected before any call: not a valid xenstore path."""


class XenStorePathTypeError(XenStorePathError, TypeError):
    """A path that is neither str nor bytes-like."""


class XenStorePermsError(PyxenError, ValueError):
    """A permission string or entry was rejected before any call (``"r0 q5"``, a domid
    outside 0..65535)."""


class XenStorePermsTypeError(XenStorePermsError, TypeError):
    """Permissions of the wrong Python type."""


class XenStoreValueTypeError(PyxenError, TypeError):
    """A value to write that is neither str nor bytes-like (``xs.write(path, 42)``)."""


class TransactionStateError(PyxenError, ValueError):
    """A call on a transaction that is already committed or aborted."""


class TransactionUsageError(PyxenError, RuntimeError):
    """A retrying transaction's attempt used other than as ``with attempt as t:``."""


_XENSTORE_CLASS: dict[int, type[XenStoreError]] = {
    _errno.ENOENT: XenStoreNotFound,
    _errno.EACCES: XenStorePermissionError,
    _errno.EPERM: XenStorePermissionError,
    _errno.EROFS: XenStorePermissionError,
    _errno.EAGAIN: XenStoreAgainError,
    _errno.EINVAL: XenStoreInvalidError,
    _errno.E2BIG: XenStoreTooBigError,
    _errno.ENOSPC: XenStoreQuotaError,
    _errno.EDQUOT: XenStoreQuotaError,
    _errno.EEXIST: XenStoreExistsError,
}


def xenstore_error(err: int, call: str,
                   path: str | bytes | bytearray | None = None) -> XenStoreError:
    """The XenStoreError for errno ``err`` (EIO when the call left errno at 0)."""
    if isinstance(path, (bytes, bytearray)):
        path = bytes(path).decode("ascii", "replace")
    err = err or _errno.EIO
    return _XENSTORE_CLASS.get(err, XenStoreError)(err, call=call, path=path)


def raise_xenstore(call: str, path: str | bytes | bytearray | None = None) -> NoReturn:
    """Raise the XenStoreError for this thread's errno after the failed ``call``."""
    raise xenstore_error(_lib()[0].errno, call, path)


def check_xenstore(ok: object, call: str, path: str | bytes | bytearray | None = None, *,
                   err: int | None = None) -> None:
    """libxenstore's checker: its calls return true/non-NULL on success; on failure raise
    the XenStoreError for ``err`` (by default this thread's errno after the call)."""
    if ok:
        return
    raise xenstore_error(_lib()[0].errno if err is None else err, call, path)


# ========================================================================= libxenhypfs

class HypfsError(XenError):
    """A libxenhypfs call failed (errno, the call, the path)."""


class HypfsNotFound(HypfsError, FileNotFoundError):
    """No such node."""


class HypfsPermissionError(HypfsError, PermissionError):
    """The node is not writable, or the caller may not use hypfs."""


class HypfsPathError(PyxenError, ValueError):
    """Not a path hypfs can name: not absolute, not ASCII, a NUL, too long, not text."""


_HYPFS_BY_ERRNO: dict[int, type[HypfsError]] = {
    _errno.ENOENT: HypfsNotFound, _errno.EACCES: HypfsPermissionError,
    _errno.EPERM: HypfsPermissionError,
}


def check_hypfs(err: int, call: str, path: str | None = None) -> NoReturn:
    """libxenhypfs's checker, for a call that failed (NULL or -1) with ``err``: the
    HypfsError for that errno; ENOSYS/EOPNOTSUPP (a hypervisor built without
    CONFIG_HYPFS) → XenFeatureUnavailable."""
    err = err or _errno.EIO
    if err in (_errno.ENOSYS, _errno.EOPNOTSUPP):
        raise XenFeatureUnavailable(f"{call}: this hypervisor has no hypfs "
                                    f"({os.strerror(err)})")
    raise _HYPFS_BY_ERRNO.get(err, HypfsError)(err, call=call, detail=path)


# ========================================================================= libxenvchan

class VchanError(XenError):
    """A libxenvchan call failed; ``domid`` and ``path`` (the xenstore base path) say
    which vchan."""

    def __init__(self, err: int, message: str | None = None, *, call: str | None = None,
                 domid: int | None = None, path: str | None = None):
        about = ([f"domain {domid}"] if domid is not None else []) + \
                ([f"path {path!r}"] if path is not None else [])
        super().__init__(err, message, call=call, detail=", ".join(about) or None)
        self.domid = domid
        self.path = path


class VchanNotFoundError(VchanError, FileNotFoundError):
    """ENOENT: no server advertises a vchan at that xenstore path (client init)."""


class VchanDomainError(VchanError, DomainNotFoundError):
    """ESRCH: no such peer domain."""


class VchanInvalidError(VchanError, ValueError):
    """EINVAL: Xen refused the peer domain or the advertised ring/port (not a vchan
    server for this domain)."""


class VchanPermissionError(VchanError, PermissionError):
    """EACCES/EPERM: the caller may not read the path or map the peer's pages."""


class VchanPeerClosedError(VchanError, BrokenPipeError):
    """The other end closed the vchan (or its domain died) and nothing is left to read."""

    def __init__(self, call: str, *, domid: int | None = None, path: str | None = None):
        super().__init__(_errno.EPIPE, "the peer closed the vchan", call=call, domid=domid,
                         path=path)


class VchanIncompleteReadError(VchanPeerClosedError):
    """The peer closed before ``expected`` bytes came; ``partial`` holds those that did."""

    def __init__(self, partial: bytes, expected: int, *, call: str,
                 domid: int | None = None, path: str | None = None):
        super().__init__(call, domid=domid, path=path)
        self.partial = partial
        self.expected = expected


class VchanTimeoutError(PyxenTimeoutError):
    """A blocking vchan call ran out of time; ``done`` is how many bytes it moved."""

    def __init__(self, message: str, done: int = 0):
        super().__init__(message)
        self.done = done


_VCHAN_CLASS: dict[int, type[VchanError]] = {
    _errno.ENOENT: VchanNotFoundError, _errno.ESRCH: VchanDomainError,
    _errno.EINVAL: VchanInvalidError, _errno.EACCES: VchanPermissionError,
    _errno.EPERM: VchanPermissionError,
}


def check_vchan(rc: int, err: int, call: str, *, peer_open: bool = True,
                domid: int | None = None, path: str | None = None) -> int:
    """libxenvchan's checker: ``rc`` >= 0 is returned; a negative ``rc`` (or NULL from an
    init call, passed as -1) → :class:`VchanPeerClosedError` when the peer is gone
    (``peer_open`` false: the library reports that as -1 without an errno), else the
    VchanError for ``err``, the errno cffi saved after this call in this thread."""
    if rc >= 0:
        return rc
    if not peer_open:
        raise VchanPeerClosedError(call, domid=domid, path=path)
    err = err or _errno.EIO
    raise _VCHAN_CLASS.get(err, VchanError)(err, call=call, domid=domid, path=path)


# ========================================================================== libxenstat

class XenStatError(PyxenError):
    """libxenstat could not take a sample (it reports no errno: the message says which
    call)."""


def check_xenstat(ok: bool, call: str) -> None:
    """libxenstat's checker: its calls return NULL on failure, with no reason given."""
    if not ok:
        raise XenStatError(f"{call} failed (libxenstat gives no reason: is xenstored "
                           "running and this a dom0?)")


# =================================================================== libxendevicemodel

class DeviceModelError(XenError):
    """A libxendevicemodel call failed; ``domid`` and ``server`` (an ioreq server id) say
    what it was about, when known."""

    def __init__(self, err: int, *, call: str, domid: int | None = None,
                 server: int | None = None):
        about = [f"domain {domid}"] if domid is not None else []
        about += [f"ioreq server {server}"] if server is not None else []
        super().__init__(err, call=call, detail=", ".join(about) or None)
        self.domid = domid
        self.server = server


class DeviceModelDomainError(DeviceModelError, DomainNotFoundError):
    """ESRCH: no such domain."""


class DeviceModelInvalidError(DeviceModelError, ValueError):
    """EINVAL: the hypervisor refused the arguments (not an HVM domain, a bad range, IRQ
    or level ...)."""


class DeviceModelPermissionError(DeviceModelError, PermissionError):
    """EPERM/EACCES: this domain may not act as that domain's device model."""


class IoreqServerNotFound(DeviceModelError, LookupError):
    """ENOENT: the domain has no ioreq server with that id (or not created by us)."""


_DEVICEMODEL_CLASS: dict[int, type[DeviceModelError]] = {
    _errno.ESRCH: DeviceModelDomainError, _errno.EINVAL: DeviceModelInvalidError,
    _errno.EPERM: DeviceModelPermissionError, _errno.EACCES: DeviceModelPermissionError,
    _errno.ENOENT: IoreqServerNotFound,
}


def check_devicemodel(rc: int, call: str, domid: int | None = None,
                      server: int | None = None, *, err: int | None = None) -> int:
    """libxendevicemodel's checker: ``rc`` if it is >= 0, else raise the DeviceModelError
    for ``err`` (by default this thread's errno right after the call); ENOSYS/EOPNOTSUPP
    (a call this hypervisor lacks) → XenFeatureUnavailable."""
    if rc >= 0:
        return rc
    if err is None:
        err = _lib()[0].errno
    err = err or _errno.EIO
    if err in (_errno.ENOSYS, _errno.EOPNOTSUPP):
        raise XenFeatureUnavailable(f"{call}: not supported by this hypervisor "
                                    f"({os.strerror(err)})")
    raise _DEVICEMODEL_CLASS.get(err, DeviceModelError)(err, call=call, domid=domid,
                                                       server=server)


# =================================================================== Linux (pyxen._linux)

class KernelCallError(PyxenError, OSError):
    """A Linux kernel interface call (an ioctl of ``pyxen._linux``) failed: ``errno`` as
    OSError, ``call`` names the request."""

    def __init__(self, err: int, call: str, detail: str | None = None):
        OSError.__init__(self, err, os.strerror(err) if err else "unknown error")
        self.call, self.detail = call, detail

    def __str__(self) -> str:
        name = _errno.errorcode.get(self.errno, str(self.errno)) if self.errno else "?"
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.call}: [{name}] {self.strerror}{extra}"


def check_kernel(rc: int, err: int, call: str, detail: str | None = None) -> int:
    """The Linux interfaces' checker: ``rc`` < 0 → KernelCallError(``err``, the errno cffi
    saved after the call); else ``rc``."""
    if rc < 0:
        raise KernelCallError(err or _errno.EIO, call, detail)
    return rc


# ============================================================================== devices

class DeviceSpecError(DeviceError, ValueError):
    """A disk or vif spec is wrong (unknown key, missing target, read-only target with
    mode w, unsupported backend or network mode). Raised before anything is written."""


class DeviceSpecTypeError(DeviceSpecError, TypeError):
    """A spec, vdev or devid of the wrong Python type (``vdev_to_devid(None)``)."""


class DeviceBusyError(DeviceError):
    """The vdev / devid is already in use in that domain."""


class BackendDomainError(DeviceError, LookupError):
    """The backend domain does not exist."""


class DeviceTimeout(DeviceError, TimeoutError):
    """A device did not reach the wanted xenbus state; ``path``, ``state`` (where it is
    stuck) and ``wanted`` say where."""

    def __init__(self, message: str, *, path: str, state: "XenbusState | None",
                 wanted: "XenbusState"):
        super().__init__(message)
        self.path, self.state, self.wanted = path, state, wanted


class HotplugError(DeviceError, OSError):
    """The in-process hotplug work (loop device, bridge) failed."""


# ================================================================================ guest

class NoSerialError(PyxenError, LookupError):
    """The guest has no emulated serial port pyxen can read."""


class ConsoleTtyError(PyxenError, LookupError):
    """The console tty xenstore names for a domain is not one dom0 can trust. The node is
    in the guest's own directory (the guest can rewrite it), so it must be a ``/dev/pts/N``
    pty whose master side xenconsoled (or the domain's own device model) holds, and no
    other domain may name the same pty."""


class ConsoleTimeoutError(PyxenTimeoutError):
    """``guest.console_tty``: no console tty appeared within the timeout."""


class GuestWaitTimeout(PyxenTimeoutError):
    """``guest.await_device_model`` / ``await_console_marker``: what was awaited did not
    happen within the timeout (``domid`` says for which guest)."""

    def __init__(self, message: str, *, domid: int | None = None):
        super().__init__(message)
        self.domid = domid


class BuildError(PyxenError):
    """A guest build failed at ``step``; the half-built domain was rolled back.

    ``domid`` is the id the domain had (None if none was created), ``cause`` the
    underlying exception (a XenCtrlError, XenStoreError, OSError ...) if any.
    """

    def __init__(self, step: str, reason: str, *, domid: int | None = None,
                 cause: BaseException | None = None):
        super().__init__(f"build failed at {step}: {reason}")
        self.step, self.reason, self.domid, self.cause = step, reason, domid, cause


class KernelNotFoundError(BuildError, FileNotFoundError):
    """The kernel or ramdisk file is missing or unreadable (checked before creating)."""


class InsufficientMemoryError(BuildError, MemoryError):
    """The hypervisor has not enough free memory for the guest."""


class UnsupportedGuestError(BuildError):
    """This host cannot run that kind of guest (physinfo virt_caps)."""


class SpecError(BuildError, ValueError):
    """The build spec itself is invalid (nothing was created)."""


class SpecTypeError(SpecError, TypeError):
    """``build()`` was given something other than a BuildSpec."""


class UnsupportedConfigError(SpecError):
    """A domain config key (``key``) the direct builder does not implement: refused by
    name, never dropped (nothing was created)."""

    def __init__(self, key: str, reason: str):
        super().__init__("spec", reason)
        self.key = key


class QmpError(PyxenError):
    """QMP (qemu's control socket) failed or qemu answered with an error."""

    def __init__(self, command: str, reason: str):
        super().__init__(f"QMP {command}: {reason}")
        self.command, self.reason = command, reason


# ============================================================ shared rings (pyxen.ring)

class RingError(PyxenError):
    """A shared ring (pyxen.ring, xen/io/ring.h or the console ring) refused an operation."""


class RingLayoutError(RingError, ArgumentError):
    """The ring cannot be laid out as asked: an unknown or empty C type, a buffer too small
    for one entry (or not aligned for its indexes)."""


class RingFullError(RingError, BufferError):
    """No slot to produce into: the front has RING_SIZE requests outstanding, or the back
    has answered every request it consumed."""


class RingOverflowError(RingError, ValueError):
    """The peer's producer index claims more unconsumed entries than the ring holds
    (ring.h's RING_REQUEST_PROD_OVERFLOW / RING_RESPONSE_PROD_OVERFLOW): a buggy or
    hostile peer. Nothing was consumed; ``prod`` is the value read, ``limit`` the most
    entries it may be ahead of ``base``."""

    def __init__(self, what: str, prod: int, base: int, limit: int):
        super().__init__(f"{what} {prod} is {(prod - base) & 0xFFFFFFFF} ahead of {base}, "
                         f"more than the {limit} the ring can hold: bogus peer index")
        self.what, self.prod, self.base, self.limit = what, prod, base, limit
