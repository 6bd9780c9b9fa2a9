"""pyxen.xenstore: the xenstore tree through libxenstore (``xs_*`` calls, in-process).

Thread-safety rule
------------------
One :class:`XenStore` handle may be shared by any number of threads. Every method is one
libxenstore request; pyxen releases the GIL during the C call and libxenstore serializes
requests on a handle (its request mutex), so calls from several threads interleave safely.
Transactions are named by id, so several threads can run their own transactions over one
handle at the same time. ``close()`` may be called from any thread at any time and is
idempotent: calls already inside libxenstore finish first (the C handle is freed when the
last of them returns), later calls raise ``HandleClosedError`` (a ``ValueError``).

Watches
-------
``w = xs.watch(path)`` returns a :class:`Watch`, a stream of its own: its events go to it
and to nobody else, however many other Watches, threads or handle-level readers share the
handle. There is no background thread: whichever consumer waits drains libxenstore's
queue (under a lock) and routes each event by its token into the owner's queue, then
looks at its own. ``xs.watch(path, token)`` (explicit token) is the handle-level form:
those events, and only those, go to ``xs.check_watch/read_watch/events/aevents``. Closing
the handle, from any thread, ends every pending read with ``HandleClosedError`` (the
handle-level ``events()`` iterator just stops) and makes each Watch's ``fileno()``
readable.

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

import collections
import enum
import errno as _errno
import os
import random
import re
import select
import threading
import time
import weakref
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
    from ._xswire import WINDOW, Batch, Reply, WireTransaction  # noqa: F401

_T = TypeVar("_T")

# The wire protocol's limits (xen/io/xs_wire.h); checked against libxenstore in the lab.
XENSTORE_ABS_PATH_MAX = 3072
XENSTORE_REL_PATH_MAX = 2048
XENSTORE_PAYLOAD_MAX = 4096
SPECIAL_PATHS = ("@introduceDomain", "@releaseDomain")
DEFAULT_MAX_ATTEMPTS = 64
_NO_TOKEN: Any = object()          # watch(path) without a token: a Watch object
_HANDLE_CLOSED, _WATCH_CLOSED = "handle", "watch"   # why a _Queue ended

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
    """``parent`` + "/" + ``child``, without a doubled slash."""
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
        """xenstore's letter for the permission (n r w b)."""
        return "nrwb"[int(self) & 3]

    @classmethod
    def from_letter(cls, c: str) -> "Perm":
        """The permission a letter (n r w b) stands for."""
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
        """What ``domid`` may do with the node (the owner may do anything)."""
        if domid == self.owner:
            return Perm.BOTH
        for e in self.acl:
            if e.domid == domid:
                return e.perm
        return self.others

    def entries(self) -> list[DomainPerm]:
        """The entries as DomainPerm, the owner first."""
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
_xs_read1: Callable[..., Any]
_xs_write1: Callable[..., Any]
_unpack: Callable[..., Any]
_alloc: Callable[..., Any]       # ffi.new without zeroing ...
_VALBUF: CType                   # ... a char[XENSTORE_PAYLOAD_MAX] for a value


def _bind() -> None:
    """Cache ffi/lib and the hot functions as module globals (one dict lookup per use)."""
    global _ffi, _lib, _NULL, _UINTP, _new, _buffer, _from_buffer, _free
    global _xs_read, _xs_write, _xs_directory, _xs_start, _xs_end
    global _xs_read1, _xs_write1, _unpack, _alloc, _VALBUF
    if _lib is not None:
        return
    ffi, lib = xen()
    _xs_read1, _xs_write1, _unpack = lib.pyxen_xs_read, lib.pyxen_xs_write, ffi.unpack
    _alloc = ffi.new_allocator(should_clear_after_alloc=False)
    _VALBUF = ffi.typeof(f"char[{XENSTORE_PAYLOAD_MAX}]")
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
        self._flags = flags
        self._pool: Any = None                # pyxen._xswire.ConnPool, on first batch
        self._pool_lock = threading.Lock()
        if max_attempts is not None:
            if max_attempts < 1:
                raise ArgumentError("max_attempts must be >= 1")
            self.max_attempts = max_attempts
        self._watch_lock = threading.Lock()
        self._tokens: dict[str, tuple[bytes, Any]] = {}      # wire token → (path, object)
        self._token_of: dict[tuple[bytes, int], str] = {}    # (path, id(object)) → wire token
        self._next_token = 0
        self._fd = -1
        # watch dispatch (see the watches section)
        self._dispatch_lock = threading.Lock()
        self._routes: dict[str, tuple[bytes, _Queue, weakref.ref[Watch]]] = {}  # Watch objects
        self._legacy = _Queue()                              # the handle-level stream
        self._orphans: list[tuple[bytes, str, _Queue]] = []  # Watches garbage-collected
        weakref.finalize(self, self._legacy.close_fds).atexit = False

    # -- lifetime ---------------------------------------------------------------

    def close(self) -> None:
        """Idempotent, from any thread (pyxen._handle's rule). Drops pyxen's reference to the
        C handle; ``xs_close`` runs as soon as no call is using it (at once, unless another
        thread is inside a call). Pending watch reads end with HandleClosedError
        (``_on_close``); later calls, fileno() included, raise it."""
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
        # one C call (pyxen_xs_read copies the value and frees libxenstore's buffer)
        buf = _alloc(_VALBUF)
        n = _xs_read1(p, tx, b, buf, XENSTORE_PAYLOAD_MAX)
        if n < 0:
            _raise("xs_read", path)
        return _unpack(buf, n)

    def read_str(self, path: str | bytes, tx: int = 0, encoding: str = "utf-8") -> str:
        """``read``, decoded (UTF-8 by default)."""
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
        if not _xs_write1(p, tx, b, value, len(value)):
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
        """``xs_transaction_end(tx, false)``: commit (TransactionConflict if refused)."""
        self.transaction_end(tx, False)

    def transaction_abort(self, tx: int) -> None:
        """``xs_transaction_end(tx, true)``: abort."""
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

    # -- pipelined batches (pyxen._xswire) ------------------------------------------

    def _wire_pool(self) -> Any:
        """The pool of this handle's own wire connections (created on first use)."""
        pool = self._pool
        if pool is None:
            self._p()
            from ._xswire import ConnPool
            with self._pool_lock:
                if self._pool is None:
                    self._pool = ConnPool(self._flags)
                pool = self._pool
            if self._ptr is None:          # closed meanwhile: _on_close may have missed it
                pool.close()
        return pool

    def _wire_exchange(self, reqs: list[tuple[int, int, bytes]]) -> list[tuple[int, bytes]]:
        self._p()
        return self._wire_pool().exchange(self, reqs)

    def batch(self) -> "Batch":
        """A pipelined batch: ``with xs.batch() as b: r = b.read(p); b.write(q, v)``, then
        ``r.value``. The requests go out together on a connection of pyxen's own (at most
        16 outstanding), the replies come back in order; the first failed request's
        typed error is raised, every other request applied as xenstored applied it."""
        self._p()
        from ._xswire import Batch
        return Batch(self)

    def batch_transaction(self) -> "WireTransaction":
        """One transaction attempt on a pipelined connection (``t.batch()`` works in it);
        for ``with``, like transaction()."""
        self._p()
        from ._xswire import WireTransaction
        return WireTransaction(self)

    def batch_transactions(self, max_attempts: int | None = None,
                           backoff: float = 0.002) -> "Attempts":
        """transactions(), each attempt a batch_transaction()."""
        return Attempts(self, max_attempts or self.max_attempts, backoff,
                        self.batch_transaction)

    def batch_transact(self, fn: Callable[["WireTransaction"], Any], *,
                       max_attempts: int | None = None, backoff: float = 0.002) -> Any:
        """transact() with batch transactions: ``fn(t)`` may use ``t.batch()``."""
        for attempt in self.batch_transactions(max_attempts, backoff):
            with attempt as t:
                result = fn(t)  # type: ignore[arg-type]
        return result

    # -- watches -----------------------------------------------------------------
    #
    # One dispatcher per handle: whichever consumer needs events drains xs_check_watch
    # (under _dispatch_lock) and routes each event by its wire token, into the owning
    # Watch's queue or, for watches registered the legacy way (watch(path, token)), into
    # the handle-level queue; then it looks at its own queue.

    @overload
    def watch(self, path: str | bytes) -> "Watch": ...
    @overload
    def watch(self, path: str | bytes, token: Any) -> None: ...

    def watch(self, path: str | bytes, token: Any = _NO_TOKEN) -> "Watch | None":
        """``xs_watch``: report changes to ``path`` and everything under it. ``path`` may be
        @introduceDomain or @releaseDomain. xenstored fires one event right after
        registration.

        ``xs.watch(path)`` returns a :class:`Watch`, a stream of its own: only it gets the
        events of this registration. ``xs.watch(path, token)`` (any object, kept alive
        while watched) is the handle-level form: its events, with ``token``, go to the
        handle's ``check_watch``/``read_watch``/``events``/``aevents``; undo it with
        ``unwatch(path, token)``."""
        if token is _NO_TOKEN:
            return Watch(self, path)
        b = check_path(path, special=True)
        p = self._p()
        with self._watch_lock:
            key = (b, id(token))
            if key in self._token_of:
                raise XenStoreExistsError(_errno.EEXIST, call="xs_watch",
                                          path=b.decode(), detail="already watched with "
                                          "this token")
            wire = self._new_wire()
            self._tokens[wire] = (b, token)
            self._token_of[key] = wire
        if not _lib.xs_watch(p, b, wire.encode()):
            err = _ffi.errno or _errno.EIO
            with self._watch_lock:
                self._tokens.pop(wire, None)
                self._token_of.pop(key, None)
            raise error_for(err, "xs_watch", path)
        return None

    def _new_wire(self) -> str:
        """A fresh wire token (call with _watch_lock held)."""
        self._next_token += 1
        return f"pyxen{self._next_token}"

    def unwatch(self, path: str | bytes, token: Any = None) -> None:
        """``xs_unwatch`` for a (path, token) given to watch(path, token); events still
        queued for it are dropped. (A :class:`Watch` is undone with its ``close()``.)"""
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
        """The (path, token) pairs registered with watch(path, token), in order; each
        open :class:`Watch` is listed as (path, the Watch)."""
        with self._watch_lock:
            out = [(b.decode(), tok) for b, tok in self._tokens.values()]
            for b, _q, ref in self._routes.values():
                w = ref()
                if w is not None:
                    out.append((b.decode(), w))
        return out

    def _raw_fileno(self) -> int:
        """``xs_fileno``: libxenstore's descriptor, readable while events it received are
        not yet dispatched. HandleClosedError once closed (never a closed handle's fd)."""
        p = self._p()
        if self._fd < 0:
            fd = _lib.xs_fileno(p)
            if fd < 0:
                _raise("xs_fileno")
            self._fd = fd
        return self._fd

    def fileno(self) -> int:
        """A descriptor for select/poll that is readable while handle-level watch events
        (of watch(path, token)) may be waiting: call check_watch() until it returns None.
        It also turns readable when the handle is closed; it is closed with the handle."""
        return self._legacy.fileno(self)

    def _drain(self) -> None:
        """Move every event libxenstore has queued into its consumer's queue."""
        if self._orphans:
            self._reap()
        with self._dispatch_lock:
            p = self._p()
            while True:
                raw = _lib.xs_check_watch(p)
                if not raw:
                    err = _ffi.errno
                    if err == _errno.EAGAIN or err == 0:
                        return
                    _raise("xs_check_watch")
                try:
                    path = _ffi.string(raw[_lib.XS_WATCH_PATH]).decode("ascii", "replace")
                    wire = _ffi.string(raw[_lib.XS_WATCH_TOKEN]).decode("ascii", "replace")
                finally:
                    _free(raw)
                route = self._routes.get(wire)
                if route is not None:
                    route[1].put(path)
                elif wire in self._tokens:
                    self._legacy.put((wire, path))
                # else: unwatched meanwhile, or not ours: dropped

    def _unregister(self, b: bytes, wire: str, q: _Queue) -> XenStoreError | None:
        """Undo a Watch: no more routing, waiters wake, ``xs_unwatch`` if still open."""
        with self._watch_lock:
            self._routes.pop(wire, None)
        q.end(_WATCH_CLOSED)
        err = None
        p = self._ptr
        if p is not None and not _lib.xs_unwatch(p, b, wire.encode()):
            e = _ffi.errno or _errno.EIO
            if e != _errno.ENOENT:
                err = error_for(e, "xs_unwatch", b)
        q.close_fds()
        return err

    def _reap(self) -> None:
        """Unwatch the Watches garbage-collected since (their finalizers only queue them:
        a finalizer may run in any thread, at any point)."""
        while self._orphans:
            try:
                b, wire, q = self._orphans.pop()
            except IndexError:
                return
            self._unregister(b, wire, q)

    def _on_close(self) -> None:
        """Run by close() (once): every pending watch read ends (HandleClosedError), every
        Watch's fileno turns readable; the handle-level fileno is closed."""
        self._reap()
        with self._pool_lock:
            pool = self._pool
        if pool is not None:
            pool.close()                 # idle connections now, busy ones when returned
        with self._watch_lock:
            queues = [q for _b, q, _r in self._routes.values()]
        for q in queues:
            q.end(_HANDLE_CLOSED)
        self._legacy.end(_HANDLE_CLOSED)
        self._legacy.close_fds()

    def check_watch(self) -> WatchEvent | None:
        """The next handle-level event (of watch(path, token)), or None at once if there
        is none. On a closed handle: the events already received, then
        HandleClosedError."""
        q = self._legacy
        while True:
            item = q.pop()
            if item is None:
                self._drain()
                item = q.pop()
                if item is None:
                    return None
            wire, path = item
            ent = self._tokens.get(wire)
            if ent is not None:          # else: unwatched meanwhile: drop
                return WatchEvent(path, ent[1])

    def read_watch(self, timeout: float | None = None) -> WatchEvent | None:
        """The next handle-level event, waiting up to ``timeout`` seconds (None: for ever);
        None on timeout; HandleClosedError if the handle is closed meanwhile. Waits in
        poll(), never holding the GIL."""
        return _wait(self, self._legacy, self.check_watch, timeout)

    def events(self, timeout: float | None = None) -> Iterator[WatchEvent]:
        """Blocking iterator over handle-level events; ends when none arrives within
        ``timeout`` seconds (None: never ends by itself) or the handle is closed."""
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
        """``async for ev in xs.aevents():`` over handle-level events — waits through the
        running loop's ``add_reader`` (no thread); ends after ``timeout`` idle seconds;
        raises HandleClosedError when the handle is closed (from any thread)."""
        return AsyncEvents(self, self._legacy, self.check_watch, timeout, None)

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
        """``XenStore.read`` in this transaction."""
        return self.xs.read(path, self.id)

    def read_str(self, path: str | bytes, encoding: str = "utf-8") -> str:
        """``XenStore.read_str`` in this transaction."""
        return self.xs.read(path, self.id).decode(encoding)

    @overload
    def get(self, path: str | bytes, default: None = None) -> bytes | None: ...
    @overload
    def get(self, path: str | bytes, default: _T) -> bytes | _T: ...

    def get(self, path: str | bytes, default: Any = None) -> Any:
        """``XenStore.get`` in this transaction: the value, or ``default`` if missing."""
        return self.xs.get(path, default, self.id)

    def write(self, path: str | bytes, value: str | bytes | bytearray | memoryview) -> None:
        """``XenStore.write`` in this transaction."""
        self.xs.write(path, value, self.id)

    def ls(self, path: str | bytes) -> list[str]:
        """``XenStore.ls`` in this transaction."""
        return self.xs.ls(path, self.id)

    def mkdir(self, path: str | bytes) -> None:
        """``XenStore.mkdir`` in this transaction."""
        self.xs.mkdir(path, self.id)

    def rm(self, path: str | bytes) -> None:
        """``XenStore.rm`` in this transaction."""
        self.xs.rm(path, self.id)

    def exists(self, path: str | bytes) -> bool:
        """``XenStore.exists`` in this transaction."""
        return self.xs.exists(path, self.id)

    def get_permissions(self, path: str | bytes) -> Permissions:
        """``XenStore.get_permissions`` in this transaction."""
        return self.xs.get_permissions(path, self.id)

    def set_permissions(self, path: str | bytes,
                        perms: Permissions | str | Iterable[DomainPerm]) -> None:
        """``XenStore.set_permissions`` in this transaction."""
        self.xs.set_permissions(path, perms, self.id)

    def batch(self) -> "Batch":
        """Batches need their transaction on the batch connection: this (libxenstore)
        transaction cannot have one; use ``xs.batch_transaction()``."""
        raise TransactionUsageError("a libxenstore transaction lives on libxenstore's "
                                    "connection, a batch on its own: use "
                                    "xs.batch_transaction() (or batch_transactions())")

    def commit(self) -> None:
        """Commit; TransactionConflict (EAGAIN) if another writer got there first."""
        self._finish(False)

    def abort(self) -> None:
        """Abort this transaction (idempotent)."""
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

    __slots__ = ("_xs", "number", "tx", "outcome", "_start")
    tx: Transaction | None
    outcome: str | None

    def __init__(self, xs: XenStore, number: int,
                 start: Callable[[], Transaction] | None = None):
        self._xs, self.number, self.tx, self.outcome = xs, number, None, None
        self._start = start or xs.transaction

    def __enter__(self) -> Transaction:
        self.tx = self._start()
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

    def __init__(self, xs: XenStore, max_attempts: int, backoff: float,
                 start: Callable[[], Transaction] | None = None):
        if max_attempts < 1:
            raise ArgumentError("max_attempts must be >= 1")
        self.xs, self.max_attempts, self.backoff = xs, max_attempts, backoff
        self._start = start
        self.attempts = 0

    def __iter__(self) -> Iterator[Attempt]:
        dur = 0.0
        for number in range(1, self.max_attempts + 1):
            if number > 1 and self.backoff > 0:
                # randomized exponential back-off, scaled by how long an attempt takes
                # here (on a slow machine a fixed delay is far too short to help)
                span = max(self.backoff, dur) * (1 << min(number - 2, 5))
                time.sleep(random.uniform(0, span))
            a = Attempt(self.xs, number, self._start)
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


# --------------------------------------------------------------------------- watch streams


class _Queue:
    """One consumer's events (a Watch's, or the handle-level ones), and what to wait on:
    created on first need, an epoll set of an eventfd (readable while the queue is not
    empty, or once it ended) and libxenstore's descriptor (readable while events are not
    yet dispatched). Holds no reference to its Watch or handle."""

    __slots__ = ("items", "lock", "efd", "ep", "ended", "busy", "fds_closed")

    def __init__(self) -> None:
        self.items: collections.deque[Any] = collections.deque()
        self.lock = threading.Lock()
        self.efd = -1
        self.ep: select.epoll | None = None
        self.ended: str | None = None     # None, _HANDLE_CLOSED or _WATCH_CLOSED
        self.busy = 0                     # waiters using ep (they close it if closed)
        self.fds_closed = False

    def put(self, item: Any) -> None:
        with self.lock:
            if self.ended == _WATCH_CLOSED:
                return
            self.items.append(item)
            if len(self.items) == 1 and self.efd >= 0:
                os.eventfd_write(self.efd, 1)

    def pop(self) -> Any:
        with self.lock:
            if not self.items:
                return None
            item = self.items.popleft()
            if not self.items and self.efd >= 0 and self.ended is None:
                try:
                    os.eventfd_read(self.efd)          # not readable any more
                except BlockingIOError:
                    pass
            return item

    def end(self, why: str) -> None:
        with self.lock:
            if self.ended is None or why == _WATCH_CLOSED:
                self.ended = why
            if why == _WATCH_CLOSED:
                self.items.clear()
            if self.efd >= 0:
                os.eventfd_write(self.efd, 1)          # readable for good: waiters wake

    def poller(self, xs: XenStore) -> select.epoll:
        with self.lock:
            if self.ep is not None:
                return self.ep
            if self.fds_closed:
                raise HandleClosedError("Watch" if self.ended == _WATCH_CLOSED else xs)
        raw = xs._raw_fileno()                         # HandleClosedError once closed
        with self.lock:
            if self.ep is None:
                if self.fds_closed:
                    raise HandleClosedError("Watch" if self.ended == _WATCH_CLOSED else xs)
                efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
                try:
                    ep = select.epoll()
                except BaseException:
                    os.close(efd)
                    raise
                try:
                    ep.register(efd, select.EPOLLIN)
                    ep.register(raw, select.EPOLLIN)
                except BaseException:
                    ep.close()
                    os.close(efd)
                    raise
                self.efd, self.ep = efd, ep
                if self.items or self.ended is not None:
                    os.eventfd_write(efd, 1)
            return self.ep

    def fileno(self, xs: XenStore) -> int:
        return self.poller(xs).fileno()

    def enter(self) -> None:
        with self.lock:
            self.busy += 1

    def leave(self) -> None:
        with self.lock:
            self.busy -= 1
        if self.fds_closed:
            self.close_fds()

    def close_fds(self) -> None:
        """Close the descriptors now, or (if a waiter is using them) when it is done."""
        with self.lock:
            self.fds_closed = True
            if self.busy:
                return
            ep, efd, self.ep, self.efd = self.ep, self.efd, None, -1
        if ep is not None:
            ep.close()
        if efd >= 0:
            os.close(efd)


def _wait(xs: XenStore, q: _Queue, get: Callable[[], WatchEvent | None],
          timeout: float | None) -> WatchEvent | None:
    """``get()`` until it returns an event, waiting in epoll between tries; None after
    ``timeout`` seconds (None: for ever)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        ev = get()
        if ev is not None:
            return ev
        if deadline is None:
            wait = -1.0
        else:
            wait = deadline - time.monotonic()
            if wait <= 0:
                return None
        q.enter()
        try:
            q.poller(xs).poll(wait)
        finally:
            q.leave()


async def _await(xs: XenStore, q: _Queue, get: Callable[[], WatchEvent | None],
                 timeout: float | None) -> WatchEvent | None:
    """_wait for asyncio: waits with the running loop's add_reader (no thread)."""
    import asyncio
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while True:
        ev = get()
        if ev is not None:
            return ev
        left = None
        if deadline is not None:
            left = deadline - loop.time()
            if left <= 0:
                return None
        q.enter()
        try:
            fd = q.poller(xs).fileno()
            fut: asyncio.Future[None] = loop.create_future()

            def wake(fut: asyncio.Future[None] = fut) -> None:
                if not fut.done():
                    fut.set_result(None)
            loop.add_reader(fd, wake)
            try:
                if left is None:
                    await fut
                else:
                    try:
                        await asyncio.wait_for(fut, left)
                    except TimeoutError:
                        pass                 # get() once more, then the deadline ends it
            finally:
                loop.remove_reader(fd)
        finally:
            q.leave()


class Watch:
    """One watch registration with its own event stream: ``w = xs.watch(path)``.

    Only this object gets the events of its registration (xenstored's initial one too),
    whoever else reads events on the same handle: whichever consumer waits dispatches
    what libxenstore received into each owner's queue. Events are
    ``WatchEvent(path, token=this Watch)``.

    Reading: ``check()`` (at once), ``read(timeout)`` (None on timeout), ``for ev in
    w.events(timeout)`` (ends after ``timeout`` idle seconds), ``async for ev in w`` or
    ``w.aevents(timeout)``, ``await w.aread(timeout)`` (asyncio through the running loop's
    ``add_reader``, no thread), ``w.fileno()`` for select/poll (readable while events
    may be waiting: call ``check()`` until None). ``close()`` (or the ``with`` block's end,
    or garbage collection) unwatches; iterations then end, reads raise
    HandleClosedError. When the handle is closed, from any thread, a pending read or
    iteration raises HandleClosedError and fileno() turns readable.
    """

    __slots__ = ("xs", "path", "_b", "_wire", "_q", "_fin", "__weakref__")

    def __init__(self, xs: XenStore, path: str | bytes) -> None:
        b = check_path(path, special=True)
        p = xs._p()
        xs._reap()
        q = _Queue()
        with xs._watch_lock:
            wire = xs._new_wire()
            xs._routes[wire] = (b, q, weakref.ref(self))
        self.xs, self.path, self._b, self._wire, self._q = xs, b.decode(), b, wire, q
        if not _lib.xs_watch(p, b, wire.encode()):
            err = _ffi.errno or _errno.EIO
            with xs._watch_lock:
                xs._routes.pop(wire, None)
            raise error_for(err, "xs_watch", path)
        self._fin = weakref.finalize(self, xs._orphans.append, (b, wire, q))
        self._fin.atexit = False
        if xs._ptr is None:               # closed meanwhile: its close hook missed us
            q.end(_HANDLE_CLOSED)

    @property
    def closed(self) -> bool:
        """True once close() ran (reads raise; iterations end)."""
        return self._q.ended == _WATCH_CLOSED

    def close(self) -> None:
        """``xs_unwatch``; idempotent; queued events are dropped, waiters wake."""
        if self._fin.detach() is None:
            return
        err = self.xs._unregister(self._b, self._wire, self._q)
        if err is not None:
            raise err

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check(self) -> WatchEvent | None:
        """The next event, or None at once. HandleClosedError if this Watch is closed, or
        the handle is and no event is left."""
        q = self._q
        if q.ended == _WATCH_CLOSED:
            raise HandleClosedError(self)
        path = q.pop()
        if path is None:
            self.xs._drain()
            path = q.pop()
            if path is None:
                if q.ended == _WATCH_CLOSED:
                    raise HandleClosedError(self)
                return None
        return WatchEvent(path, self)

    def read(self, timeout: float | None = None) -> WatchEvent | None:
        """The next event, waiting up to ``timeout`` seconds (None: for ever); None on
        timeout. Waits in epoll without the GIL."""
        return _wait(self.xs, self._q, self.check, timeout)

    def events(self, timeout: float | None = None) -> Iterator[WatchEvent]:
        """Blocking iterator; ends after ``timeout`` idle seconds (None: only when the
        Watch is closed); HandleClosedError when the handle is closed."""
        while True:
            try:
                ev = self.read(timeout)
            except HandleClosedError:
                if self.closed:
                    return
                raise
            if ev is None:
                return
            yield ev

    def __iter__(self) -> Iterator[WatchEvent]:
        return self.events()

    async def aread(self, timeout: float | None = None) -> WatchEvent | None:
        """read() for asyncio: ``await w.aread(timeout)``."""
        return await _await(self.xs, self._q, self.check, timeout)

    def aevents(self, timeout: float | None = None) -> "AsyncEvents":
        """``async for ev in w.aevents(timeout)``: ends after ``timeout`` idle seconds."""
        return AsyncEvents(self.xs, self._q, self.check, timeout, self)

    def __aiter__(self) -> "AsyncEvents":
        return AsyncEvents(self.xs, self._q, self.check, None, self)

    def fileno(self) -> int:
        """A descriptor for select/poll: readable while events may be waiting (then call
        check() until it returns None), and for good once the Watch or the handle is
        closed. Valid until close()."""
        return self._q.fileno(self.xs)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<pyxen.xenstore.Watch {self.path!r} {state}>"


class AsyncEvents:
    """``async for`` over watch events (a Watch's, or the handle's with ``xs.aevents()``)
    through the running loop's ``add_reader``; ends after ``timeout`` idle seconds."""

    def __init__(self, xs: XenStore, q: _Queue, get: Callable[[], WatchEvent | None],
                 timeout: float | None, watch: Watch | None) -> None:
        self.xs, self._q, self._get, self.timeout, self._watch = xs, q, get, timeout, watch

    def __aiter__(self) -> "AsyncEvents":
        return self

    async def __anext__(self) -> WatchEvent:
        try:
            ev = await _await(self.xs, self._q, self._get, self.timeout)
        except HandleClosedError:
            if self._watch is not None and self._watch.closed:
                raise StopAsyncIteration from None
            raise
        if ev is None:
            raise StopAsyncIteration
        return ev


def open(flags: int = 0, **kw: Any) -> XenStore:  # noqa: A001 - mirrors xs_open
    """``xs_open``: a XenStore handle. ``flags``: XS_OPEN_* (Xen 4.17's libxenstore
    ignores XS_OPEN_READONLY: there is no read-only socket any more)."""
    return XenStore(flags, **kw)


# The pipelined batches live in pyxen._xswire, which imports this module's names: they
# are looked up on first use (whichever of the two modules is imported first).
_WIRE_NAMES = ("WINDOW", "Batch", "Reply", "WireTransaction")


def __getattr__(name: str) -> Any:
    if name in _WIRE_NAMES:
        from . import _xswire
        return getattr(_xswire, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
