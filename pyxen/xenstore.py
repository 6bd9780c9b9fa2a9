"""pyxen.xenstore: the xenstore tree through libxenstore (``xs_*`` calls, in-process).

Thread-safety rule
------------------
One :class:`XenStore` handle may be shared by any number of threads. Every method is one
libxenstore request; pyxen releases the GIL during the C call and libxenstore serializes
requests on a handle (its request mutex), so calls from several threads interleave safely.
Transactions are named by id, so several threads can run their own transactions over one
handle at the same time. Watch events form one queue per handle: if several threads read
events from one handle, each event goes to exactly one of them. ``close()`` may be called
from any thread at any time and is idempotent: calls already inside libxenstore finish
first (the C handle is freed when the last of them returns), later calls raise
``ValueError``. Blocking waits for watch events notice a close within 0.2 s.

Transactions
------------
``with xs.transaction() as t:`` is one attempt: it commits on normal exit, aborts on an
exception and raises :class:`TransactionConflict` (EAGAIN) if xenstored refuses the
commit. A ``with`` block cannot run its own body twice, so the retrying forms are::

    for attempt in xs.transactions():          # retries the whole block on EAGAIN
        with attempt as t:
            n = int(t.read("/counter")) + 1
            t.write("/counter", str(n))

    xs.transact(lambda t: t.write("/a", t.read("/b")))   # same, as a function

Both make at most ``max_attempts`` attempts (default :attr:`XenStore.max_attempts`, 64)
with a small randomized back-off, then raise :class:`TransactionRetriesExhausted`.
"""

from __future__ import annotations

import enum
import errno as _errno
import os
import random
import re
import select
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, NoReturn, TypeVar, overload

from ._handle import Handle
from ._native import xen
from .errors import (ArgumentError, HandleClosedError, PyxenError,  # noqa: F401
                     TransactionConflict, TransactionRetriesExhausted, TransactionStateError,
                     TransactionUsageError, XenError, XenStoreAgainError, XenStoreError,
                     XenStoreExistsError, XenStoreInvalidError, XenStoreNotFound,
                     XenStorePathError, XenStorePathTypeError, XenStorePermissionError,
                     XenStorePermsError, XenStorePermsTypeError, XenStoreQuotaError,
                     XenStoreTooBigError, XenStoreValueTypeError, XenUnavailableError,
                     raise_xenstore, xenstore_error)

if TYPE_CHECKING:
    from types import TracebackType

    from _cffi_backend import CType

    from ._xen import FFI

_T = TypeVar("_T")

# The wire protocol's limits (xen/io/xs_wire.h); checked against libxenstore in the lab.
XENSTORE_ABS_PATH_MAX = 3072
XENSTORE_REL_PATH_MAX = 2048
XENSTORE_PAYLOAD_MAX = 4096
SPECIAL_PATHS = ("@introduceDomain", "@releaseDomain")
DEFAULT_MAX_ATTEMPTS = 64
_WAIT_SLICE = 0.2

# --------------------------------------------------------------------------- errors


# The exception classes and libxenstore's checker live in pyxen.errors; the old names
# stay importable from here.
error_for = xenstore_error
_raise = raise_xenstore


def _value(value: object) -> bytes:
    """A value to write as bytes: str as UTF-8, or any bytes-like object. Anything else
    (an int would make ``bytes(42)``, 42 NUL bytes) is XenStoreValueTypeError."""
    if isinstance(value, str):
        return value.encode()
    try:
        return memoryview(value).tobytes()  # type: ignore[arg-type]
    except TypeError:
        raise XenStoreValueTypeError(f"a xenstore value must be str or bytes-like, not "
                                     f"{type(value).__name__}") from None


# --------------------------------------------------------------------------- paths

_VALID = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-/_@")
_PATHS: dict[str | bytes, bytes] = {}  # path → validated bytes, for plain node paths
_PATHS_MAX = 4096
_SPECIAL_B = frozenset(p.encode() for p in SPECIAL_PATHS)


def check_path(path: str | bytes | bytearray, *, special: bool = False) -> bytes:
    """Validate a xenstore path and return it encoded; raise XenStorePathError if bad.

    Absolute paths start with ``/`` (at most XENSTORE_ABS_PATH_MAX bytes); relative ones
    are relative to the caller's domain home ``/local/domain/<id>`` (at most
    XENSTORE_REL_PATH_MAX). ``special`` admits ``@introduceDomain``/``@releaseDomain``
    (watch paths). Allowed characters: ``[A-Za-z0-9_/@-]``; no ``//``, no trailing ``/``.
    """
    if isinstance(path, str):
        try:
            b = path.encode("ascii")
        except UnicodeEncodeError:
            raise XenStorePathError(f"xenstore path {path!r}: only ASCII letters, digits "
                                    "and - / _ @ are allowed") from None
    elif isinstance(path, (bytes, bytearray)):
        b = bytes(path)
    else:
        raise XenStorePathTypeError(f"xenstore path must be str or bytes, not "
                                    f"{type(path).__name__}")
    if not b:
        raise XenStorePathError("empty xenstore path")
    if b"\0" in b:
        raise XenStorePathError(f"xenstore path {path!r} contains a NUL byte")
    if b[:1] == b"@":
        if not special:
            raise XenStorePathError(f"special path {path!r} is only valid for watches")
        if b not in _SPECIAL_B:
            raise XenStorePathError(f"unknown special path {path!r}; known: "
                                    + ", ".join(SPECIAL_PATHS))
        return b
    absolute = b[:1] == b"/"
    limit = XENSTORE_ABS_PATH_MAX if absolute else XENSTORE_REL_PATH_MAX
    if len(b) > limit:
        kind = "absolute" if absolute else "relative"
        raise XenStorePathError(f"xenstore path too long: {len(b)} bytes, the {kind} limit "
                                f"is {limit} (XENSTORE_{'ABS' if absolute else 'REL'}"
                                "_PATH_MAX)")
    if not _VALID.issuperset(b):
        bad = sorted({chr(c) for c in b if c not in _VALID})
        raise XenStorePathError(f"xenstore path {path!r}: invalid character(s) {bad!r}; "
                                "allowed: letters, digits and - / _ @")
    if b"//" in b:
        raise XenStorePathError(f"xenstore path {path!r} contains '//'")
    if len(b) > 1 and b.endswith(b"/"):
        raise XenStorePathError(f"xenstore path {path!r} ends in '/'")
    return b


def check_absolute(path: str | bytes) -> bytes:
    """check_path, and the path must be absolute."""
    b = check_path(path)
    if b[:1] != b"/":
        raise XenStorePathError(f"xenstore path {path!r} must be absolute (start with '/')")
    return b


def _p2b(path: str | bytes | bytearray) -> bytes:
    """Cached check_path for the hot path (str and bytes paths; a bytearray is checked
    every time, being unhashable)."""
    if type(path) is str or type(path) is bytes:
        b = _PATHS.get(path)
        if b is None:
            b = check_path(path)
            if len(_PATHS) >= _PATHS_MAX:
                _PATHS.clear()
            _PATHS[path] = b
        return b
    return check_path(path)


def join(parent: str, child: str) -> str:
    return parent.rstrip("/") + "/" + child if parent != "/" else "/" + child


# --------------------------------------------------------------------------- types


class Perm(enum.IntFlag):
    """Access a domain has to a node: XS_PERM_NONE/READ/WRITE; BOTH = read and write."""

    NONE = 0
    READ = 1
    WRITE = 2
    BOTH = 3

    @property
    def letter(self) -> str:
        return "nrwb"[int(self) & 3]

    @classmethod
    def from_letter(cls, c: str) -> "Perm":
        if not isinstance(c, str) or len(c) != 1 or c not in "nrwb":
            raise XenStorePermsError(f"permission letter must be one of n r w b, not {c!r}")
        return cls("nrwb".index(c))


_PERM_ENTRY = re.compile(r"([nrwb])(0|[1-9][0-9]{0,5})")
DOMID_MAX = 0xFFFF  # domid_t


@dataclass(frozen=True)
class DomainPerm:
    domid: int
    perm: Perm

    def __str__(self) -> str:
        return f"{self.perm.letter}{self.domid}"


@dataclass(frozen=True)
class Permissions:
    """A node's permissions: ``owner`` may do everything; ``others`` is what every domain not
    in ``acl`` gets; ``acl`` lists per-domain grants (xenstore-chmod order: ``b0 r1``)."""

    owner: int
    others: Perm = Perm.NONE
    acl: tuple[DomainPerm, ...] = ()

    def for_domain(self, domid: int) -> Perm:
        if domid == self.owner:
            return Perm.BOTH
        for e in self.acl:
            if e.domid == domid:
                return e.perm
        return self.others

    def entries(self) -> list[DomainPerm]:
        return [DomainPerm(self.owner, self.others), *self.acl]

    def __str__(self) -> str:
        return " ".join(str(e) for e in self.entries())

    @classmethod
    def parse(cls, text: str | Iterable[str]) -> "Permissions":
        """From xenstore-chmod/-ls syntax: ``"n0 r5 b7"`` (first entry: owner and others).
        A domid is decimal without leading zeros (libxenstore reads ``r010`` as octal 8,
        xenstore-chmod as 10), at most 65535. XenStorePermsError otherwise."""
        if isinstance(text, str):
            words = text.split()
        elif isinstance(text, (bytes, bytearray)) or not isinstance(text, Iterable):
            raise XenStorePermsTypeError(f"permissions must be a str or an iterable of str, "
                                         f"not {type(text).__name__}")
        else:
            words = list(text)
        if not words:
            raise XenStorePermsError("permissions need at least the owner entry")
        ents = []
        for w in words:
            if not isinstance(w, str):
                raise XenStorePermsTypeError(f"a permission entry must be a str, not "
                                             f"{type(w).__name__}")
            m = _PERM_ENTRY.fullmatch(w)
            if not m:
                raise XenStorePermsError(f"bad permission entry {w[:40]!r} (want e.g. r0, "
                                         "b5)")
            domid = int(m.group(2))
            if domid > DOMID_MAX:
                raise XenStorePermsError(f"permission entry {w!r}: domid out of range "
                                         f"0..{DOMID_MAX}")
            ents.append(DomainPerm(domid, Perm.from_letter(m.group(1))))
        return cls(ents[0].domid, ents[0].perm, tuple(ents[1:]))


def _perm_entries(perms: object) -> list[DomainPerm]:
    """The DomainPerms of set_permissions' argument, each checked (XenStorePermsError)."""
    if isinstance(perms, str):
        perms = Permissions.parse(perms)
    if isinstance(perms, Permissions):
        ents = perms.entries()
    elif isinstance(perms, (bytes, bytearray)) or not isinstance(perms, Iterable):
        raise XenStorePermsTypeError(f"permissions must be Permissions, a str or DomainPerms, "
                                     f"not {type(perms).__name__}")
    else:
        ents = list(perms)
    if not ents:
        raise XenStorePermsError("permissions need at least the owner entry")
    out = []
    for e in ents:
        if not isinstance(e, DomainPerm):
            raise XenStorePermsTypeError(f"a permission entry must be a DomainPerm, not "
                                         f"{type(e).__name__}")
        if isinstance(e.domid, bool) or not isinstance(e.domid, int) or \
                not 0 <= e.domid <= DOMID_MAX:
            raise XenStorePermsError(f"domid {e.domid!r} out of range 0..{DOMID_MAX}")
        if isinstance(e.perm, bool) or not isinstance(e.perm, int) or \
                not 0 <= int(e.perm) <= 3:
            raise XenStorePermsError(f"permission {e.perm!r} is not a Perm")
        out.append(DomainPerm(e.domid, Perm(int(e.perm))))
    return out


@dataclass(frozen=True)
class WatchEvent:
    """One watch firing: ``path`` changed (or was removed); ``token`` as given to watch()."""

    path: str
    token: Any


# --------------------------------------------------------------------------- binding

# Bound by _bind(), which XenStore() runs before any use; declared here so every use is typed.
_lib: Any = None                 # None until bound
_ffi: FFI
_NULL: Any
_UINTP: CType
_new: Callable[..., Any]
_buffer: Callable[..., Any]
_from_buffer: Callable[..., Any]
_free: Callable[..., Any]
_xs_read: Callable[..., Any]
_xs_write: Callable[..., Any]
_xs_directory: Callable[..., Any]
_xs_start: Callable[..., Any]
_xs_end: Callable[..., Any]


def _bind() -> None:
    """Cache ffi/lib and the hot functions as module globals (one dict lookup per use)."""
    global _ffi, _lib, _NULL, _UINTP, _new, _buffer, _from_buffer, _free
    global _xs_read, _xs_write, _xs_directory, _xs_start, _xs_end
    if _lib is not None:
        return
    ffi, lib = xen()
    _NULL = ffi.NULL
    _UINTP = ffi.typeof("unsigned int *")
    _new, _buffer, _from_buffer, _free = ffi.new, ffi.buffer, ffi.from_buffer, lib.free
    _xs_read, _xs_write, _xs_directory = lib.xs_read, lib.xs_write, lib.xs_directory
    _xs_start, _xs_end = lib.xs_transaction_start, lib.xs_transaction_end
    _ffi, _lib = ffi, lib


def _available() -> None:
    if not (os.path.exists("/dev/xen/xenbus") or os.path.exists("/run/xenstored/socket")
            or os.path.exists("/var/run/xenstored/socket")):
        raise XenUnavailableError("cannot open xenstore: neither /dev/xen/xenbus nor "
                                  "/run/xenstored/socket exists (not a Xen domain, or "
                                  "xenstored is not running)")


def _closed(obj: object) -> NoReturn:
    raise HandleClosedError(obj)


class XenStore(Handle):
    """A connection to xenstored (``xs_open``); see the module docstring for the rules.

    Values are ``bytes``; ``write`` also takes ``str`` (UTF-8), ``read_str`` decodes.
    Every method takes an optional transaction id ``tx`` (0: none); a :class:`Transaction`
    has the same methods bound to its id.
    """

    max_attempts = DEFAULT_MAX_ATTEMPTS

    def __init__(self, flags: int = 0, *, max_attempts: int | None = None) -> None:
        _available()
        _bind()
        raw = _lib.xs_open(flags)
        if not raw:
            _raise("xs_open")
        self._adopt(_ffi, raw, _lib.xs_close)
        if max_attempts is not None:
            if max_attempts < 1:
                raise ArgumentError("max_attempts must be >= 1")
            self.max_attempts = max_attempts
        self._watch_lock = threading.Lock()
        self._tokens: dict[str, tuple[bytes, Any]] = {}      # wire token → (path, object)
        self._token_of: dict[tuple[bytes, int], str] = {}    # (path, id(object)) → wire token
        self._next_token = 0
        self._fd = -1

    # -- lifetime ---------------------------------------------------------------

    def close(self) -> None:
        """Idempotent, from any thread (pyxen._handle's rule). Drops pyxen's reference to the
        C handle; ``xs_close`` runs as soon as no call is using it (at once, unless another
        thread is inside a call). Later calls, fileno() included, raise HandleClosedError."""
        super().close()

    # -- nodes (hot path: keep lean) -------------------------------------------

    def read(self, path: str | bytes, tx: int = 0) -> bytes:
        """``xs_read``: the node's value as bytes. Missing node → XenStoreNotFound."""
        p = self._ptr
        if p is None:
            _closed(self)
        try:
            b = _PATHS.get(path) or _p2b(path)
        except TypeError:  # unhashable (a bytearray) or not a path at all: the typed error
            b = check_path(path)
        n = _new(_UINTP)
        raw = _xs_read(p, tx, b, n)
        if not raw:
            _raise("xs_read", path)
        data = _buffer(raw, n[0])[:]
        _free(raw)
        return data

    def read_str(self, path: str | bytes, tx: int = 0, encoding: str = "utf-8") -> str:
        return self.read(path, tx).decode(encoding)

    @overload
    def get(self, path: str | bytes, default: None = None, tx: int = 0) -> bytes | None: ...
    @overload
    def get(self, path: str | bytes, default: _T, tx: int = 0) -> bytes | _T: ...

    def get(self, path: str | bytes, default: Any = None, tx: int = 0) -> Any:
        """read(), or ``default`` when the node does not exist."""
        try:
            return self.read(path, tx)
        except XenStoreNotFound:
            return default

    def write(self, path: str | bytes, value: str | bytes | bytearray | memoryview,
              tx: int = 0) -> None:
        """``xs_write``: set the node's value (bytes, or str as UTF-8); creates parents."""
        p = self._ptr
        if p is None:
            _closed(self)
        try:
            b = _PATHS.get(path) or _p2b(path)
        except TypeError:  # unhashable (a bytearray) or not a path at all: the typed error
            b = check_path(path)
        if value.__class__ is not bytes:
            value = _value(value)
        if not _xs_write(p, tx, b, _from_buffer(value), len(value)):
            _raise("xs_write", path)

    def ls(self, path: str | bytes, tx: int = 0) -> list[str]:
        """``xs_directory``: the names of the node's children."""
        p = self._ptr
        if p is None:
            _closed(self)
        try:
            b = _PATHS.get(path) or _p2b(path)
        except TypeError:  # unhashable (a bytearray) or not a path at all: the typed error
            b = check_path(path)
        n = _new(_UINTP)
        raw = _xs_directory(p, tx, b, n)
        if not raw:
            _raise("xs_directory", path)
        names = [_ffi.string(raw[i]).decode("ascii", "replace") for i in range(n[0])]
        _free(raw)
        return names

    directory = ls

    def mkdir(self, path: str | bytes, tx: int = 0) -> None:
        """``xs_mkdir``: create the node (empty value) and its parents; no error if it exists."""
        if not _lib.xs_mkdir(self._p(), tx, _p2b(path)):
            _raise("xs_mkdir", path)

    def rm(self, path: str | bytes, tx: int = 0) -> None:
        """``xs_rm``: remove the node and everything under it. xenstored (oxenstored and C)
        treats removing a node that is not there as success."""
        if not _lib.xs_rm(self._p(), tx, _p2b(path)):
            _raise("xs_rm", path)

    def exists(self, path: str | bytes, tx: int = 0) -> bool:
        """True if the node exists (an ``xs_read`` that does not fail with ENOENT)."""
        try:
            self.read(path, tx)
        except XenStoreNotFound:
            return False
        return True

    def walk(self, path: str = "/", tx: int = 0) -> Iterator[tuple[str, bytes]]:
        """Depth-first ``(path, value)`` for the node and every node under it."""
        value = self.read(path, tx)
        yield path, value
        for name in self.ls(path, tx):
            yield from self.walk(join(path, name), tx)

    def __getitem__(self, path: str | bytes) -> bytes:
        return self.read(path)

    def __setitem__(self, path: str | bytes, value: str | bytes | bytearray | memoryview) -> None:
        self.write(path, value)

    def __delitem__(self, path: str | bytes) -> None:
        self.rm(path)

    def __contains__(self, path: str | bytes) -> bool:
        return self.exists(path)

    # -- permissions -------------------------------------------------------------

    def get_permissions(self, path: str | bytes, tx: int = 0) -> Permissions:
        """``xs_get_permissions`` as a :class:`Permissions`."""
        n = _new(_UINTP)
        raw = _lib.xs_get_permissions(self._p(), tx, _p2b(path), n)
        if not raw:
            _raise("xs_get_permissions", path)
        try:
            ents = [DomainPerm(int(raw[i].id), Perm(raw[i].perms & 3)) for i in range(n[0])]
        finally:
            _free(raw)
        return Permissions(ents[0].domid, ents[0].perm, tuple(ents[1:]))

    def set_permissions(self, path: str | bytes, perms: Permissions | str | Iterable[DomainPerm],
                        tx: int = 0) -> None:
        """``xs_set_permissions``; ``perms`` as Permissions, ``"n0 r5"`` or DomainPerms."""
        ents = _perm_entries(perms)
        arr = _ffi.new("struct xs_permissions[]", len(ents))
        for i, e in enumerate(ents):
            arr[i].id = e.domid
            arr[i].perms = int(e.perm)
        if not _lib.xs_set_permissions(self._p(), tx, _p2b(path), arr, len(ents)):
            _raise("xs_set_permissions", path)

    def restrict(self, domid: int) -> None:
        """``xs_restrict``: ask xenstored to give this connection ``domid``'s privileges.
        XS_RESTRICT is gone from the protocol since Xen 4.16 (C xenstored: 4.9), so with
        those xenstoreds the call fails (EINVAL)."""
        if not _lib.xs_restrict(self._p(), domid):
            _raise("xs_restrict")

    # -- transactions ------------------------------------------------------------

    def transaction_start(self) -> int:
        """``xs_transaction_start``: a new transaction id."""
        t = _xs_start(self._p())
        if not t:
            _raise("xs_transaction_start")
        return t

    def transaction_end(self, tx: int, abort: bool = False) -> None:
        """``xs_transaction_end``; a refused commit raises TransactionConflict (EAGAIN)."""
        if not _xs_end(self._p(), tx, abort):
            err = _ffi.errno or _errno.EIO
            if err == _errno.EAGAIN and not abort:
                raise TransactionConflict(err, call="xs_transaction_end")
            raise error_for(err, "xs_transaction_end")

    def transaction_commit(self, tx: int) -> None:
        self.transaction_end(tx, False)

    def transaction_abort(self, tx: int) -> None:
        self.transaction_end(tx, True)

    def transaction(self) -> "Transaction":
        """One transaction attempt, for ``with``: commit on exit, abort on exception;
        a conflicting commit raises TransactionConflict (use transactions() to retry)."""
        return Transaction(self, self.transaction_start())

    def transactions(self, max_attempts: int | None = None,
                     backoff: float = 0.002) -> "Attempts":
        """Attempts of one retried transaction: ``for a in xs.transactions(): with a as t:``.
        The block reruns on EAGAIN; after ``max_attempts`` conflicts the loop raises
        TransactionRetriesExhausted. Before retry k the loop sleeps a random time up to
        ``max(backoff, duration of the last attempt) * 2**(k-2)`` (the factor capped at 32)."""
        return Attempts(self, max_attempts or self.max_attempts, backoff)

    def transact(self, fn: Callable[["Transaction"], Any], *, max_attempts: int | None = None,
                 backoff: float = 0.002) -> Any:
        """Run ``fn(t)`` in a transaction, rerunning it on EAGAIN; returns its result."""
        for attempt in self.transactions(max_attempts, backoff):
            with attempt as t:
                result = fn(t)
        return result

    # -- watches -----------------------------------------------------------------

    def watch(self, path: str | bytes, token: Any = None) -> None:
        """``xs_watch``: report changes to ``path`` and everything under it. ``token`` may be
        any object (kept alive while watched) and comes back in each WatchEvent. xenstored
        fires one event right after registration. ``path`` may be @introduceDomain or
        @releaseDomain."""
        b = check_path(path, special=True)
        p = self._p()
        with self._watch_lock:
            key = (b, id(token))
            if key in self._token_of:
                raise XenStoreExistsError(_errno.EEXIST, call="xs_watch",
                                          path=b.decode(), detail="already watched with "
                                          "this token")
            self._next_token += 1
            wire = f"pyxen{self._next_token}"
            self._tokens[wire] = (b, token)
            self._token_of[key] = wire
        if not _lib.xs_watch(p, b, wire.encode()):
            err = _ffi.errno or _errno.EIO
            with self._watch_lock:
                self._tokens.pop(wire, None)
                self._token_of.pop(key, None)
            raise error_for(err, "xs_watch", path)

    def unwatch(self, path: str | bytes, token: Any = None) -> None:
        """``xs_unwatch`` for a (path, token) given to watch(); events still queued for it
        are dropped."""
        b = check_path(path, special=True)
        p = self._p()
        with self._watch_lock:
            wire = self._token_of.get((b, id(token)))
        if wire is None:
            raise XenStoreNotFound(_errno.ENOENT, call="xs_unwatch", path=b.decode(),
                                   detail="not watched with this token")
        if not _lib.xs_unwatch(p, b, wire.encode()):
            _raise("xs_unwatch", path)
        with self._watch_lock:
            self._tokens.pop(wire, None)
            self._token_of.pop((b, id(token)), None)

    @property
    def watches(self) -> list[tuple[str, Any]]:
        with self._watch_lock:
            return [(b.decode(), tok) for b, tok in self._tokens.values()]

    def fileno(self) -> int:
        """``xs_fileno``: a descriptor that is readable while watch events are queued.
        HandleClosedError once closed (the descriptor is closed with the handle)."""
        p = self._p()                # never the cached fd of a closed handle
        if self._fd < 0:
            fd = _lib.xs_fileno(p)
            if fd < 0:
                _raise("xs_fileno")
            self._fd = fd
        return self._fd

    def check_watch(self) -> WatchEvent | None:
        """``xs_check_watch``: the next queued event, or None at once if there is none."""
        while True:
            raw = _lib.xs_check_watch(self._p())
            if not raw:
                err = _ffi.errno
                if err == _errno.EAGAIN or err == 0:
                    return None
                _raise("xs_check_watch")
            try:
                path = _ffi.string(raw[_lib.XS_WATCH_PATH]).decode("ascii", "replace")
                wire = _ffi.string(raw[_lib.XS_WATCH_TOKEN]).decode("ascii", "replace")
            finally:
                _free(raw)
            ent = self._tokens.get(wire)
            if ent is not None:          # else: unwatched meanwhile, or not ours: drop
                return WatchEvent(path, ent[1])

    def read_watch(self, timeout: float | None = None) -> WatchEvent | None:
        """The next watch event, waiting up to ``timeout`` seconds (None: for ever);
        None on timeout. Waits with poll() on fileno(), never holding the GIL."""
        fd = self.fileno()
        deadline = None if timeout is None else time.monotonic() + timeout
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            ev = self.check_watch()
            if ev is not None:
                return ev
            if deadline is None:
                wait = _WAIT_SLICE
            else:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    return None
                wait = min(wait, _WAIT_SLICE)
            poller.poll(wait * 1000)

    def events(self, timeout: float | None = None) -> Iterator[WatchEvent]:
        """Blocking iterator over watch events; ends when none arrives within ``timeout``
        seconds (None: never ends by itself) or the handle is closed."""
        while self._ptr is not None:
            try:
                ev = self.read_watch(timeout)
            except ValueError:
                if self._ptr is None:
                    return
                raise
            if ev is None:
                return
            yield ev

    def aevents(self, timeout: float | None = None) -> "AsyncEvents":
        """``async for ev in xs.aevents():`` — waits through the running loop's
        ``add_reader`` on fileno() (no thread); ends after ``timeout`` idle seconds."""
        return AsyncEvents(self, timeout)

    # -- domains -----------------------------------------------------------------

    def introduce_domain(self, domid: int, mfn: int, eventchn: int) -> None:
        """``xs_introduce_domain``: tell xenstored about a domain's ring (fires
        @introduceDomain)."""
        if not _lib.xs_introduce_domain(self._p(), domid, mfn, eventchn):
            _raise("xs_introduce_domain", f"domid {domid}")

    def release_domain(self, domid: int) -> None:
        """``xs_release_domain``: xenstored forgets the domain (fires @releaseDomain)."""
        if not _lib.xs_release_domain(self._p(), domid):
            _raise("xs_release_domain", f"domid {domid}")

    def resume_domain(self, domid: int) -> None:
        """``xs_resume_domain``: clear the domain's shutdown state in xenstored."""
        if not _lib.xs_resume_domain(self._p(), domid):
            _raise("xs_resume_domain", f"domid {domid}")

    def set_target(self, domid: int, target: int) -> None:
        """``xs_set_target``: ``domid`` gets ``target``'s privileges (device models)."""
        if not _lib.xs_set_target(self._p(), domid, target):
            _raise("xs_set_target", f"domid {domid}")

    def get_domain_path(self, domid: int) -> str:
        """``xs_get_domain_path``: the domain's home, ``/local/domain/<domid>``."""
        raw = _lib.xs_get_domain_path(self._p(), domid)
        if not raw:
            _raise("xs_get_domain_path", f"domid {domid}")
        try:
            return _ffi.string(raw).decode("ascii", "replace")
        finally:
            _free(raw)

    def is_domain_introduced(self, domid: int) -> bool:
        """``xs_is_domain_introduced``."""
        return bool(_lib.xs_is_domain_introduced(self._p(), domid))


class Transaction:
    """One transaction: the node methods of XenStore, bound to this transaction's id."""

    __slots__ = ("xs", "id", "state")

    def __init__(self, xs: XenStore, tx: int):
        self.xs, self.id, self.state = xs, tx, "open"

    def read(self, path: str | bytes) -> bytes:
        return self.xs.read(path, self.id)

    def read_str(self, path: str | bytes, encoding: str = "utf-8") -> str:
        return self.xs.read(path, self.id).decode(encoding)

    @overload
    def get(self, path: str | bytes, default: None = None) -> bytes | None: ...
    @overload
    def get(self, path: str | bytes, default: _T) -> bytes | _T: ...

    def get(self, path: str | bytes, default: Any = None) -> Any:
        return self.xs.get(path, default, self.id)

    def write(self, path: str | bytes, value: str | bytes | bytearray | memoryview) -> None:
        self.xs.write(path, value, self.id)

    def ls(self, path: str | bytes) -> list[str]:
        return self.xs.ls(path, self.id)

    def mkdir(self, path: str | bytes) -> None:
        self.xs.mkdir(path, self.id)

    def rm(self, path: str | bytes) -> None:
        self.xs.rm(path, self.id)

    def exists(self, path: str | bytes) -> bool:
        return self.xs.exists(path, self.id)

    def get_permissions(self, path: str | bytes) -> Permissions:
        return self.xs.get_permissions(path, self.id)

    def set_permissions(self, path: str | bytes,
                        perms: Permissions | str | Iterable[DomainPerm]) -> None:
        self.xs.set_permissions(path, perms, self.id)

    def commit(self) -> None:
        """Commit; TransactionConflict (EAGAIN) if another writer got there first."""
        self._finish(False)

    def abort(self) -> None:
        self._finish(True)

    def _finish(self, abort: bool) -> None:
        if self.state != "open":
            raise TransactionStateError(f"transaction {self.id} already {self.state}")
        self.state = "aborted" if abort else "committed"
        try:
            self.xs.transaction_end(self.id, abort)
        except TransactionConflict:
            self.state = "conflicted"
            raise

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.state != "open":
            return
        if et is None:
            self.commit()
        else:
            try:
                self.abort()
            except XenError:
                pass                 # the body's exception is the one to see

    def __repr__(self) -> str:
        return f"<pyxen.xenstore.Transaction {self.id} {self.state}>"


class Attempt:
    """One try of a retried transaction: ``with attempt as t:`` (see XenStore.transactions)."""

    __slots__ = ("_xs", "number", "tx", "outcome")
    tx: Transaction | None
    outcome: str | None

    def __init__(self, xs: XenStore, number: int):
        self._xs, self.number, self.tx, self.outcome = xs, number, None, None

    def __enter__(self) -> Transaction:
        self.tx = self._xs.transaction()
        return self.tx

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> bool:
        tx = self.tx
        assert tx is not None, "Attempt.__exit__ without __enter__"
        if et is None:
            if tx.state == "open":
                try:
                    tx.commit()
                except TransactionConflict:
                    self.outcome = "conflict"
                    return False
            self.outcome = "done"
            return False
        if tx.state == "open":
            try:
                tx.abort()
            except XenError:
                pass
        if issubclass(et, XenStoreAgainError):
            self.outcome = "conflict"      # EAGAIN inside the transaction: retry
            return True
        self.outcome = "error"
        return False


class Attempts:
    """Iterator of :class:`Attempt`; stops after the first committed one."""

    def __init__(self, xs: XenStore, max_attempts: int, backoff: float):
        if max_attempts < 1:
            raise ArgumentError("max_attempts must be >= 1")
        self.xs, self.max_attempts, self.backoff = xs, max_attempts, backoff
        self.attempts = 0

    def __iter__(self) -> Iterator[Attempt]:
        dur = 0.0
        for number in range(1, self.max_attempts + 1):
            if number > 1 and self.backoff > 0:
                # randomized exponential back-off, scaled by how long an attempt takes
                # here (on a slow machine a fixed delay is far too short to help)
                span = max(self.backoff, dur) * (1 << min(number - 2, 5))
                time.sleep(random.uniform(0, span))
            a = Attempt(self.xs, number)
            self.attempts = number
            t0 = time.monotonic()
            yield a
            dur = time.monotonic() - t0
            if a.outcome is None:
                raise TransactionUsageError("use each attempt as `with attempt as t:` inside the "
                                            "loop")
            if a.outcome != "conflict":
                return
        raise TransactionRetriesExhausted(self.max_attempts)


class AsyncEvents:
    """``async for`` over watch events through ``loop.add_reader(xs.fileno(), ...)``."""

    def __init__(self, xs: XenStore, timeout: float | None):
        self.xs, self.timeout = xs, timeout

    def __aiter__(self) -> "AsyncEvents":
        return self

    async def __anext__(self) -> WatchEvent:
        import asyncio
        loop = asyncio.get_running_loop()
        fd = self.xs.fileno()
        deadline = None if self.timeout is None else loop.time() + self.timeout
        while True:
            if self.xs.closed:
                raise StopAsyncIteration
            ev = self.xs.check_watch()
            if ev is not None:
                return ev
            fut: asyncio.Future[None] = loop.create_future()

            def wake(fut: asyncio.Future[None] = fut) -> None:
                if not fut.done():
                    fut.set_result(None)
            loop.add_reader(fd, wake)
            try:
                if deadline is None:
                    await fut
                else:
                    left = deadline - loop.time()
                    if left <= 0:
                        raise StopAsyncIteration
                    await asyncio.wait_for(fut, left)
            except asyncio.TimeoutError:
                raise StopAsyncIteration from None
            finally:
                loop.remove_reader(fd)


def open(flags: int = 0, **kw: Any) -> XenStore:  # noqa: A001 - mirrors xs_open
    """``xs_open``: a XenStore handle. ``flags``: XS_OPEN_* (Xen 4.17's libxenstore
    ignores XS_OPEN_READONLY: there is no read-only socket any more)."""
    return XenStore(flags, **kw)
