"""Pipelined xenstore: batches of requests on a connection of pyxen's own to xenstored.

libxenstore sends one request and waits for its reply before the next. The wire protocol
(``xen/io/xs_wire.h``) lets a client send many requests before reading; xenstored
answers them in order. A :class:`Batch` queues requests and sends them on a connection
of its own (the transport libxenstore uses: the xenstored socket that
``xs_daemon_socket()`` names, honouring ``XENSTORED_PATH``, else ``/dev/xen/xenbus``),
with at most :data:`WINDOW` requests outstanding, then collects the replies in order.

Quota: C xenstored stops reading a connection with ``quota_req_outstanding`` (default 20)
replies pending (for unprivileged domains; dom0 is not limited), oxenstored one with
``quota-maxoutstanding`` (default 1024) replies queued; both are back-pressure, never an
error. WINDOW (16) stays under both, so any batch size goes through a sliding window.

Transactions: xenstored's transaction ids belong to a connection, so a transaction a
batch runs in must live on the batch's connection: :class:`WireTransaction`
(``xs.batch_transaction()``) starts its transaction there; its ``batch()`` and its
one-at-a-time methods all use that connection. Watches stay on libxenstore's connection.

Threads: each batch or wire transaction holds one connection of the handle's pool for
its duration (a lock per connection besides), so batches from any number of threads run
side by side. ``XenStore.close()`` closes idle connections at once and busy ones when the
batch using them returns them.
"""

from __future__ import annotations

import errno as _errno
import os
import socket
import stat
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ._native import xen
from .errors import (HandleClosedError, TransactionConflict, TransactionStateError,
                     TransactionUsageError, XenStoreError, XenStoreTooBigError,
                     xenstore_error)

from .xenstore import (DomainPerm, Perm, Permissions, Transaction, _p2b, _perm_entries,
                       _value, check_path)

if TYPE_CHECKING:
    from .xenstore import XenStore

WINDOW = 16                 # requests outstanding at once (see the module docstring)
POOL_MAX = 8                # idle connections a handle keeps
PAYLOAD_MAX = 4096          # XENSTORE_PAYLOAD_MAX (checked against the header below)

_w: Any = None              # the bound constants (one object, set by _wire())


class _Wire:
    """What the wire code needs from pyxen._xen, looked up once."""

    def __init__(self) -> None:
        ffi, lib = xen()
        self.ffi, self.lib = ffi, lib
        self.hdr_t = ffi.typeof("struct xsd_sockmsg *")
        self.hdrs_t = ffi.typeof("struct xsd_sockmsg[]")
        self.hdr_size = ffi.sizeof("struct xsd_sockmsg")
        self.READ, self.WRITE, self.MKDIR, self.RM = lib.XS_READ, lib.XS_WRITE, \
            lib.XS_MKDIR, lib.XS_RM
        self.DIRECTORY, self.GET_PERMS, self.SET_PERMS = lib.XS_DIRECTORY, \
            lib.XS_GET_PERMS, lib.XS_SET_PERMS
        self.TX_START, self.TX_END = lib.XS_TRANSACTION_START, lib.XS_TRANSACTION_END
        self.ERROR, self.WATCH_EVENT = lib.XS_ERROR, lib.XS_WATCH_EVENT
        # libxenstore's own table: the error strings xenstored replies with → errno
        self.errors = {ffi.string(e.errstring): int(e.errnum) for e in lib.xsd_errors}
        self.payload_max = int(lib.XENSTORE_PAYLOAD_MAX)
        self.names = {self.READ: "xs_read", self.WRITE: "xs_write", self.MKDIR: "xs_mkdir",
                      self.RM: "xs_rm", self.DIRECTORY: "xs_directory",
                      self.GET_PERMS: "xs_get_permissions",
                      self.SET_PERMS: "xs_set_permissions",
                      self.TX_START: "xs_transaction_start",
                      self.TX_END: "xs_transaction_end"}

    def header(self, typ: int, req_id: int, tx: int, n: int) -> bytes:
        """One struct xsd_sockmsg, laid out by the compiler."""
        h = self.ffi.new(self.hdr_t)
        h.type, h.req_id, h.tx_id, h.len = typ, req_id, tx, n
        return self.ffi.buffer(h)[:]


def _wire() -> _Wire:
    global _w
    if _w is None:
        _w = _Wire()
    return _w


class Conn:
    """One connection to xenstored: a unix socket, or the xenbus device."""

    def __init__(self, flags: int = 0) -> None:
        w = _wire()
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.fd = -1
        self.buf = b""             # bytes received past the last reply taken
        self.next_id = 0
        path = os.fsdecode(w.ffi.string(w.lib.xs_daemon_socket()))
        err: OSError | None = None
        try:
            if stat.S_ISSOCK(os.stat(path).st_mode):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
                try:
                    s.connect(path)
                except OSError:
                    s.close()
                    raise
                self.sock = s
                return
        except OSError as e:
            err = e
        if flags & w.lib.XS_OPEN_SOCKETONLY:
            raise xenstore_error(err.errno if err and err.errno else _errno.ENOENT,
                                 "connect", path)
        dev = os.environ.get("XENSTORED_PATH") or "/dev/xen/xenbus"
        try:
            self.fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
        except OSError as e:
            raise xenstore_error(e.errno or _errno.EIO, "open", dev) from None

    def close(self) -> None:
        """Close the descriptor (idempotent)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _send(self, msgs: list[bytes]) -> None:
        if self.sock is not None:
            self.sock.sendall(b"".join(msgs))
        else:
            for m in msgs:             # the xenbus device takes one message per write()
                view = memoryview(m)
                while view:
                    view = view[os.write(self.fd, view):]

    def _recv(self) -> bytes:
        if self.sock is not None:
            data = self.sock.recv(65536)
        else:
            data = os.read(self.fd, 65536)
        if not data:
            raise XenStoreError(_errno.ECONNRESET, call="xenstored connection",
                                detail="xenstored closed the connection")
        return data

    def exchange(self, reqs: list[tuple[int, int, bytes]]) -> list[tuple[int, bytes]]:
        """Send (type, tx, payload) requests, at most WINDOW outstanding; the replies
        (type, payload) in order. Call with ``lock`` held."""
        w = _wire()
        hs = w.hdr_size
        n = len(reqs)
        base = self.next_id
        self.next_id = (base + n) & 0xFFFFFFFF
        ffi, hdr_t, watch_event = w.ffi, w.hdr_t, w.WATCH_EVENT
        # every header in one array the compiler lays out, then each followed by its payload
        hdrs: Any = ffi.new(w.hdrs_t, n)
        for i, (t, tx, p) in enumerate(reqs):
            h: Any = hdrs[i]
            h.type, h.req_id, h.tx_id, h.len = t, (base + i) & 0xFFFFFFFF, tx, len(p)
        raw = ffi.buffer(hdrs)[:]
        msgs = [raw[i * hs:(i + 1) * hs] + p for i, (_t, _tx, p) in enumerate(reqs)]
        out: list[tuple[int, bytes]] = []
        sent = 0
        low = WINDOW // 2
        buf = self.buf
        off = 0
        cb: Any = ffi.from_buffer(buf)
        try:
            while len(out) < n:
                # refill the window once half of it is answered (fewer system calls)
                if sent < n and sent - len(out) <= low:
                    k = min(n, len(out) + WINDOW)
                    self._send(msgs[sent:k])
                    sent = k
                if len(buf) - off >= hs:
                    h = ffi.cast(hdr_t, cb + off)
                    size = h.len
                    if len(buf) - off - hs >= size:
                        typ, rid = h.type, h.req_id
                        payload = buf[off + hs:off + hs + size]
                        off += hs + size
                        if typ == watch_event:
                            continue           # no watches here; never ours
                        if rid != (base + len(out)) & 0xFFFFFFFF:
                            raise XenStoreError(_errno.EPROTO, call="xenstored connection",
                                                detail=f"reply {rid} out of order")
                        out.append((typ, payload))
                        continue
                data = self._recv()            # no complete reply buffered: wait
                buf = buf[off:] + data
                off = 0
                cb = ffi.from_buffer(buf)
        except BaseException:
            self.close()                   # the stream's state is unknown now
            raise
        self.buf = buf[off:]
        return out


def _path_bytes(path: object) -> bytes:
    try:
        return _p2b(path)  # type: ignore[arg-type]
    except TypeError:
        return check_path(path)  # type: ignore[arg-type]


class Reply:
    """One queued request's outcome: ``value`` once the batch ran (raising its error)."""

    __slots__ = ("call", "path", "_kind", "_value", "error", "done")

    def __init__(self, call: str, path: str, kind: int) -> None:
        self.call, self.path, self._kind = call, path, kind
        self._value: Any = None
        self.error: XenStoreError | None = None
        self.done = False

    @property
    def value(self) -> Any:
        """The result (bytes, a list of names, Permissions, None for writes); raises the
        request's XenStoreError if it failed."""
        if not self.done:
            raise TransactionUsageError("the batch has not run yet: read the value after "
                                        "the with block or run()")
        if self.error is not None:
            raise self.error
        return self._value

    @property
    def ok(self) -> bool:
        """True once the request ran and succeeded."""
        return self.done and self.error is None

    def __repr__(self) -> str:
        state = "pending" if not self.done else ("error" if self.error else "ok")
        return f"<pyxen.xenstore.Reply {self.call} {self.path!r} {state}>"


class Batch:
    """Requests queued, then sent pipelined on one connection: ``with xs.batch() as b:``.

    Each method queues one request and returns a :class:`Reply`; nothing is sent until
    ``run()`` (called by the ``with`` block's normal exit). ``run()`` returns the results
    in order and raises the first request's error, if any; xenstored has applied every
    other request of the batch as it would one at a time. Bad paths, values or
    permissions raise at once (typed errors) and queue nothing."""

    def __init__(self, xs: XenStore, tx: "WireTransaction | None" = None) -> None:
        self.xs, self.tx = xs, tx
        self._reqs: list[tuple[int, int, bytes]] = []
        self.replies: list[Reply] = []
        self.ran = False

    def _queue(self, kind: int, path: object, payload: bytes) -> Reply:
        if self.ran:
            raise TransactionUsageError("this batch has run; start a new one")
        w = _wire()
        if len(payload) > w.payload_max:
            raise XenStoreTooBigError(_errno.E2BIG, call=w.names[kind], path=_show(path),
                                      detail=f"request of {len(payload)} bytes, "
                                      f"XENSTORE_PAYLOAD_MAX is {w.payload_max}")
        r = Reply(w.names[kind], _show(path), kind)
        self._reqs.append((kind, 0, payload))
        self.replies.append(r)
        return r

    def read(self, path: str | bytes) -> Reply:
        """Queue ``xs_read``: the value as bytes (XenStoreNotFound if missing)."""
        return self._queue(_wire().READ, path, _path_bytes(path) + b"\0")

    def write(self, path: str | bytes, value: str | bytes | bytearray | memoryview) -> Reply:
        """Queue ``xs_write`` (str as UTF-8, or bytes-like)."""
        v = value if value.__class__ is bytes else _value(value)
        return self._queue(_wire().WRITE, path, _path_bytes(path) + b"\0" + v)

    def mkdir(self, path: str | bytes) -> Reply:
        """Queue ``xs_mkdir``."""
        return self._queue(_wire().MKDIR, path, _path_bytes(path) + b"\0")

    def rm(self, path: str | bytes) -> Reply:
        """Queue ``xs_rm``."""
        return self._queue(_wire().RM, path, _path_bytes(path) + b"\0")

    def ls(self, path: str | bytes) -> Reply:
        """Queue ``xs_directory``: the children's names (a listing over
        XENSTORE_PAYLOAD_MAX is xenstored's E2BIG here; ``XenStore.ls`` pages it)."""
        return self._queue(_wire().DIRECTORY, path, _path_bytes(path) + b"\0")

    directory = ls

    def get_permissions(self, path: str | bytes) -> Reply:
        """Queue ``xs_get_permissions``: a Permissions."""
        return self._queue(_wire().GET_PERMS, path, _path_bytes(path) + b"\0")

    def set_permissions(self, path: str | bytes,
                        perms: Permissions | str | Iterable[DomainPerm]) -> Reply:
        """Queue ``xs_set_permissions`` (Permissions, ``"n0 r5"`` or DomainPerms)."""
        ents = _perm_entries(perms)
        payload = _path_bytes(path) + b"\0" + b"".join(str(e).encode() + b"\0" for e in ents)
        return self._queue(_wire().SET_PERMS, path, payload)

    def __len__(self) -> int:
        return len(self._reqs)

    def run(self) -> list[Any]:
        """Send every queued request, collect the replies; the results in order. Raises
        the first failed request's error (the others' outcomes stay in ``replies``)."""
        if self.ran:
            raise TransactionUsageError("this batch has run; start a new one")
        self.ran = True
        if not self._reqs:
            return []
        if self.tx is not None:
            raw = self.tx._exchange([(k, 0, p) for k, _t, p in self._reqs])
        else:
            raw = self.xs._wire_exchange(self._reqs)
        return _settle(self.replies, raw)

    @property
    def results(self) -> list[Any]:
        """The values in order (a failed request's entry is its exception)."""
        return [r._value if r.error is None else r.error for r in self.replies]

    def __enter__(self) -> "Batch":
        return self

    def __exit__(self, et: type[BaseException] | None, *exc: object) -> None:
        if et is None and not self.ran:
            self.run()


def _show(path: object) -> str:
    if isinstance(path, (bytes, bytearray)):
        return bytes(path).decode("ascii", "replace")
    return str(path)


def _settle(replies: list[Reply], raw: list[tuple[int, bytes]]) -> list[Any]:
    """Fill each Reply from its raw reply; raise the first error."""
    w = _wire()
    first: XenStoreError | None = None
    out: list[Any] = []
    for r, (typ, payload) in zip(replies, raw):
        r.done = True
        if typ == w.ERROR:
            name = payload.rstrip(b"\0")
            err = w.errors.get(name, _errno.EINVAL)    # libxenstore's rule for unknowns
            r.error = e = xenstore_error(err, r.call, r.path)
            if first is None:
                first = e
            out.append(e)
            continue
        k = r._kind
        if k == w.READ:
            v: Any = payload
        elif k == w.DIRECTORY:
            v = [s.decode("ascii", "replace") for s in payload.split(b"\0") if s]
        elif k == w.GET_PERMS:
            ents = []
            for s in payload.split(b"\0"):
                if s:
                    ents.append(DomainPerm(int(s[1:]), Perm.from_letter(chr(s[0]))))
            v = Permissions(ents[0].domid, ents[0].perm, tuple(ents[1:]))
        else:
            v = None
        r._value = v
        out.append(v)
    if first is not None:
        raise first
    return out


class ConnPool:
    """A handle's idle wire connections; a batch takes one and gives it back."""

    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.lock = threading.Lock()
        self.idle: list[Conn] = []
        self.closed = False

    def take(self, owner: object) -> Conn:
        """An idle connection, or a new one; HandleClosedError once closed."""
        with self.lock:
            if self.closed:
                raise HandleClosedError(owner)
            if self.idle:
                return self.idle.pop()
        return Conn(self.flags)

    def give(self, c: Conn) -> None:
        """Back to the pool (closed instead if the pool is closed, full or it broke)."""
        with self.lock:
            alive = c.sock is not None or c.fd >= 0
            if alive and not self.closed and len(self.idle) < POOL_MAX:
                self.idle.append(c)
                return
        c.close()

    def close(self) -> None:
        """Close the idle connections; busy ones close when given back."""
        with self.lock:
            self.closed = True
            idle, self.idle = self.idle, []
        for c in idle:
            c.close()

    def exchange(self, owner: object, reqs: list[tuple[int, int, bytes]]
                 ) -> list[tuple[int, bytes]]:
        """Conn.exchange on a connection taken for the call."""
        c = self.take(owner)
        try:
            with c.lock:
                return c.exchange(reqs)
        finally:
            self.give(c)


class WireTransaction(Transaction):
    """A transaction on a connection of its own, so that batches can run in it:
    ``with xs.batch_transaction() as t: with t.batch() as b: ...`` (or retried:
    ``xs.batch_transactions()``, ``xs.batch_transact(fn)``). Same methods as
    :class:`Transaction`; each one-at-a-time call is a one-request batch."""

    __slots__ = ("_conn", "_pool")

    def __init__(self, xs: XenStore) -> None:
        pool: ConnPool = xs._wire_pool()
        c = pool.take(xs)
        self._conn, self._pool = c, pool
        try:
            with c.lock:
                (typ, payload), = c.exchange([(_wire().TX_START, 0, b"\0")])
        except BaseException:
            pool.give(c)
            raise
        if typ == _wire().ERROR:
            pool.give(c)
            err = _wire().errors.get(payload.rstrip(b"\0"), _errno.EINVAL)
            raise xenstore_error(err, "xs_transaction_start")
        super().__init__(xs, int(payload.rstrip(b"\0")))

    def _exchange(self, reqs: list[tuple[int, int, bytes]]) -> list[tuple[int, bytes]]:
        if self.state != "open":
            raise TransactionStateError(f"transaction {self.id} already {self.state}")
        if self.xs.closed:
            raise HandleClosedError(self.xs)
        c = self._conn
        with c.lock:
            return c.exchange([(k, self.id, p) for k, _t, p in reqs])

    def batch(self) -> Batch:
        """A batch in this transaction."""
        return Batch(self.xs, self)

    def _one(self, fn: Callable[[Batch], Reply]) -> Any:
        b = Batch(self.xs, self)
        r = fn(b)
        b.run()
        return r.value

    def read(self, path: str | bytes) -> bytes:
        """``read`` in this transaction."""
        return self._one(lambda b: b.read(path))

    def read_str(self, path: str | bytes, encoding: str = "utf-8") -> str:
        """``read_str`` in this transaction."""
        return self.read(path).decode(encoding)

    def get(self, path: str | bytes, default: Any = None) -> Any:
        """``get`` in this transaction: the value, or ``default`` if missing."""
        from .errors import XenStoreNotFound
        try:
            return self.read(path)
        except XenStoreNotFound:
            return default

    def exists(self, path: str | bytes) -> bool:
        """``exists`` in this transaction."""
        from .errors import XenStoreNotFound
        try:
            self.read(path)
        except XenStoreNotFound:
            return False
        return True

    def write(self, path: str | bytes, value: str | bytes | bytearray | memoryview) -> None:
        """``write`` in this transaction."""
        self._one(lambda b: b.write(path, value))

    def ls(self, path: str | bytes) -> list[str]:
        """``ls`` in this transaction."""
        return self._one(lambda b: b.ls(path))

    def mkdir(self, path: str | bytes) -> None:
        """``mkdir`` in this transaction."""
        self._one(lambda b: b.mkdir(path))

    def rm(self, path: str | bytes) -> None:
        """``rm`` in this transaction."""
        self._one(lambda b: b.rm(path))

    def get_permissions(self, path: str | bytes) -> Permissions:
        """``get_permissions`` in this transaction."""
        return self._one(lambda b: b.get_permissions(path))

    def set_permissions(self, path: str | bytes,
                        perms: Permissions | str | Iterable[DomainPerm]) -> None:
        """``set_permissions`` in this transaction."""
        self._one(lambda b: b.set_permissions(path, perms))

    def _finish(self, abort: bool) -> None:
        if self.state != "open":
            raise TransactionStateError(f"transaction {self.id} already {self.state}")
        c = self._conn
        try:
            with c.lock:
                (typ, payload), = c.exchange([(_wire().TX_END, self.id,
                                               b"F\0" if abort else b"T\0")])
        except BaseException:
            self.state = "aborted"
            self._pool.give(c)
            raise
        self._pool.give(c)
        if typ == _wire().ERROR:
            err = _wire().errors.get(payload.rstrip(b"\0"), _errno.EINVAL)
            if err == _errno.EAGAIN and not abort:
                self.state = "conflicted"
                raise TransactionConflict(err, call="xs_transaction_end")
            self.state = "aborted"
            raise xenstore_error(err, "xs_transaction_end")
        self.state = "aborted" if abort else "committed"

    def __repr__(self) -> str:
        return f"<pyxen.xenstore.WireTransaction {self.id} {self.state}>"
