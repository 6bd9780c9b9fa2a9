"""pyxen.light: libxenlight (libxl), the toolstack library behind ``xl``.

``with pyxen.light.open() as ctx:`` gives a :class:`Context` (``libxl_ctx_alloc`` with
libxl's log routed into Python ``logging`` under ``pyxen.light``). Each method maps to one
libxl call; domains are named by id or by name. Every failure raises :class:`LibxlError`
(or a subclass) from libxl's ``ERROR_*`` code.

Domain creation takes a :class:`pyxen.config.DomainConfig` (or a libxl JSON object): it is
converted to libxl's JSON, read into a ``libxl_domain_config`` by
``libxl_domain_config_from_json`` and created with ``libxl_domain_create_new``: synchronously
(:meth:`Context.create`, ``ao_how`` NULL) or as a libxl asynchronous operation
(:meth:`Context.create_async`: ``ao_how.for_event`` set, so it returns while libxl is still
attaching devices / starting the device model; :class:`CreateOp` drives libxl's event loop
— ``libxl_osevent_beforepoll``/``poll``/``afterpoll`` + ``libxl_event_check`` — until the
``OPERATION_COMPLETE`` event). On failure libxl destroys what it built.

Domain-death notification: :meth:`Context.watch_death` (``libxl_evenable_domain_death``)
gives typed :class:`DomainEvent` s (``DOMAIN_SHUTDOWN`` with its reason, ``DOMAIN_DEATH``).

libxl's child processes (hotplug scripts, the device model launcher) are reaped by libxl
itself, selectively (``libxl_sigchld_owner_libxl_always_selective_reap``), so the
application may keep its own subprocesses while an operation is in flight.
"""

from __future__ import annotations

import builtins
import collections
import enum
import itertools
import json
import logging
import re
import threading
import time
import uuid as _uuid
from dataclasses import dataclass
from typing import Any, Iterable

from . import _interrupt
from ._handle import Handle
from ._log import XtlLogger
from ._native import require_dom0, xen
from .types import ShutdownReason, state_letters
from .config import (DiskSpec, DomainConfig, DomainType, NicSpec, disk_from_c, parse_disk,
                     parse_nic)
from .errors import (CreateTimeout, DomainNotFound, DomainNotFoundError,  # noqa: F401
                     HandleClosedError, LibxlDeviceNotFound, LibxlError, LibxlInvalid,
                     LibxlNotFound, PyxenError, XenError, check_libxl, libxl_error)

__all__ = ["open", "Context", "DomainInfo", "DiskInfo", "NicInfo", "VcpuInfo", "VncAddress",
           "ShutdownReason", "LibxlError", "DomainNotFound", "LibxlInvalid", "ConsoleType",
           "EventType", "DomainEvent", "CreateOp", "DestroyOp", "DeathWatch", "parse_cpus"]


# the exception classes and libxl's checker live in pyxen.errors; the old names stay here
_check = check_libxl


# ShutdownReason is pyxen.types.ShutdownReason (imported above), shared with ctrl and guest


class ConsoleType(enum.IntEnum):
    SERIAL = 1
    PV = 2
    VUART = 3


@dataclass(frozen=True)
class DiskInfo:
    """A disk of a running domain: its spec plus ``libxl_device_disk_getinfo``'s view
    (``state`` is the xenbus state, 4 = connected)."""

    disk: DiskSpec
    devid: int
    state: int
    evtch: int
    rref: int
    backend_id: int
    backend: str | None
    frontend: str | None

    @property
    def vdev(self) -> str:
        """The disk's virtual device name (xvda, hda, ...)."""
        return self.disk.vdev

    def to_json(self) -> dict:
        """This disk as a JSON-ready dict."""
        d = dict(self.__dict__)
        d["disk"] = {k: v for k, v in self.disk.__dict__.items() if k != "spec"}
        return d


@dataclass(frozen=True)
class DomainInfo:
    """One domain, from libxl_dominfo (memory in KiB, cpu_time in ns)."""

    domid: int
    name: str | None
    uuid: str
    type: DomainType | None
    running: bool
    blocked: bool
    paused: bool
    shutdown: bool
    dying: bool
    shutdown_reason: ShutdownReason | None
    current_memkb: int
    outstanding_memkb: int
    max_memkb: int
    cpu_time: int
    vcpu_online: int
    vcpu_max_id: int
    cpupool: int

    @property
    def memory_mb(self) -> int:
        """What ``xl list`` shows in Mem: (current + outstanding) / 1024."""
        return (self.current_memkb + self.outstanding_memkb) // 1024

    @property
    def state(self) -> str:
        """``xl list``'s state column (``r-----``): r b p s, then the shutdown reason's
        letter (- r s c w S for poweroff/reboot/suspend/crash/watchdog/soft_reset), then d."""
        return state_letters(running=self.running, blocked=self.blocked, paused=self.paused,
                             shutdown=self.shutdown, reason=self.shutdown_reason,
                             dying=self.dying)

    @property
    def cpu_seconds(self) -> float:
        """CPU time in seconds."""
        return self.cpu_time / 1e9

    def to_json(self) -> dict:
        """This domain as a JSON-ready dict."""
        d = dict(self.__dict__)
        d["type"] = self.type.value if self.type else None
        d["shutdown_reason"] = self.shutdown_reason.label if self.shutdown_reason is not None \
            else None
        d["state"] = self.state
        d["memory_mb"] = self.memory_mb
        return d



class EventType(enum.IntEnum):
    """libxl_event_type."""

    DOMAIN_SHUTDOWN = 1
    DOMAIN_DEATH = 2
    DISK_EJECT = 3
    OPERATION_COMPLETE = 4
    DOMAIN_CREATE_CONSOLE_AVAILABLE = 5


@dataclass(frozen=True)
class DomainEvent:
    """One libxl_event: ``shutdown_reason`` for DOMAIN_SHUTDOWN, ``rc`` (and ``code``) for
    OPERATION_COMPLETE, ``vdev`` for DISK_EJECT."""

    type: EventType
    domid: int
    shutdown_reason: ShutdownReason | None = None
    rc: int | None = None
    code: str | None = None
    vdev: str | None = None
    for_user: int = 0

    def to_json(self) -> dict:
        """This event as a JSON-ready dict."""
        return {"type": self.type.name.lower(), "domid": self.domid,
                "shutdown_reason": self.shutdown_reason.label
                if self.shutdown_reason is not None else None,
                "rc": self.rc, "code": self.code, "vdev": self.vdev}




@dataclass(frozen=True)
class NicInfo:
    """A network interface of a running domain: its spec plus ``libxl_device_nic_getinfo``."""

    nic: NicSpec
    devid: int
    state: int
    evtch: int
    rref_tx: int
    rref_rx: int
    backend_id: int
    backend: str | None
    frontend: str | None

    @property
    def mac(self) -> str:
        """The NIC's MAC address."""
        return self.nic.mac

    def to_json(self) -> dict:
        """This NIC as a JSON-ready dict."""
        d = dict(self.__dict__)
        d["nic"] = {k: v for k, v in self.nic.__dict__.items() if k != "spec"}
        return d


@dataclass(frozen=True)
class VcpuInfo:
    """One vcpu (``libxl_list_vcpu``): where it runs and its hard/soft affinity."""

    vcpuid: int
    cpu: int
    online: bool
    blocked: bool
    running: bool
    vcpu_time: int
    hard: frozenset
    soft: frozenset

    @property
    def state(self) -> str:
        """``xl vcpu-list``'s State column."""
        if not self.online:
            return "--p"
        return ("r" if self.running else "-") + ("b" if self.blocked else "-") + "-"

    def to_json(self) -> dict:
        """This vCPU as a JSON-ready dict."""
        d = dict(self.__dict__)
        d["hard"], d["soft"] = sorted(self.hard), sorted(self.soft)
        d["state"] = self.state
        return d


@dataclass(frozen=True)
class VncAddress:
    """Where an HVM domain's device model serves VNC (what ``xl vncviewer`` connects to)."""

    domid: int
    host: str
    port: int

    @property
    def display(self) -> int:
        """The VNC display number (port - 5900)."""
        return self.port - 5900

    def __str__(self) -> str:
        return f"{self.host}:{self.display}"

    def to_json(self) -> dict:
        """This address as a JSON-ready dict."""
        return {"domid": self.domid, "host": self.host, "port": self.port,
                "display": self.display, "address": str(self)}


def parse_cpus(text: str, ncpus: int) -> frozenset:
    """An xl cpu list (``all``, ``3``, ``0-2,5``, ``^1``, ``all,^0``) as a set of cpus.
    Raises LibxlInvalid for anything else or cpus the host lacks."""
    out: set = set()

    def bad(why: str) -> LibxlError:
        shown = repr(text) if len(repr(text)) <= 80 else repr(text)[:80] + "..."
        return libxl_error(xen()[1].ERROR_INVAL, "parse_cpus", detail=f"{shown}: {why}")

    if not isinstance(text, str):
        raise bad(f"a cpu list is a str, not {type(text).__name__}")
    parts = [p.strip(" \t") for p in text.split(",")]
    if not text or not all(parts):
        raise bad("empty cpu list")
    for part in parts:
        neg = part.startswith("^")
        body = part[1:] if neg else part
        if body == "all":
            rng = set(range(ncpus))
        else:
            # ASCII decimal only (int() would take "1_0" and Unicode digits)
            m = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", body)
            if not m:
                raise bad(f"{part[:20]!r} is not a cpu, a range or 'all'")
            # (digits past 12 only make a bigger number: the cpu check refuses it)
            a = int(m.group(1).lstrip("0")[:12] or "0")
            b = a if m.group(2) is None else int(m.group(2).lstrip("0")[:12] or "0")
            if a < 0 or b < a:
                raise bad(f"invalid range {part!r}")
            if b >= ncpus:
                raise bad(f"cpu {b} does not exist (the host has {ncpus})")
            rng = set(range(a, b + 1))
        if neg:
            out -= rng
        else:
            out |= rng
    if not out:
        raise bad("no cpu left")
    return frozenset(out)


def open() -> "Context":  # noqa: A001 - module-level constructor like pyxen.ctrl.open
    """A libxl context (needs a Xen dom0)."""
    return Context()


_LOG = logging.getLogger("pyxen.light")
# contexts whose asynchronous operations did not end by close(): never freed (libxl must
# not be freed under a running operation; a leak is the safe outcome)
_UNFINISHED: list[Any] = []


class Context(Handle):
    """A ``libxl_ctx``. Safe to share between threads and to close from any thread
    (pyxen._handle's rule): libxl locks the ctx itself, pyxen's event machinery (token
    queues, operations, poll fds) is locked here; each thread polls with its own fds."""

    def __init__(self) -> None:
        require_dom0("libxl")
        ffi, lib = xen()
        self._lib = lib
        self._logger = XtlLogger("pyxen.light")
        pp = ffi.new("libxl_ctx **")
        rc = lib.libxl_ctx_alloc(pp, lib.LIBXL_VERSION, 0, self._logger.ptr)
        if rc:
            self._logger.destroy()
        _check(rc, "libxl_ctx_alloc")
        logger = self._logger
        # first, before libxl has any fd or timeout: the asyncio forms' hooks (_OsEvents)
        osev = _OsEvents(self)
        oshooks = _osevent_hooks()
        lib.libxl_osevent_register_hooks(pp[0], oshooks, ffi.cast("void *", osev.id))
        hooks = _child_hooks()
        # before libxl can have children: libxl reaps only its own (see the module doc)
        lib.libxl_childproc_setmode(pp[0], hooks, ffi.NULL)

        def free(p: Any, _keep: object = (hooks, oshooks), _log: XtlLogger = logger,
                 _os: _OsEvents = osev) -> None:
            lib.libxl_ctx_free(p)   # the logger outlives the ctx, and is freed after it
            _log.destroy()
            _OS_USERS.pop(_os.id, None)

        self._lock = threading.RLock()   # _tokens, _queues, _ops and each op's state
        self._tokens = itertools.count(1)
        self._queues: dict[int, collections.deque] = {}
        self._ops: dict[int, "CreateOp | DestroyOp"] = {}
        self._os = osev
        self._awaiting: builtins.list[tuple[Any, Any]] = []  # (loop, future) of each await
        self._local = threading.local()  # per thread: pollfds, npollfds
        self._adopt(ffi, pp[0], free)

    close_timeout = 60.0    # how long close() drives aborted operations to their end

    def close(self) -> None:
        """Idempotent, from any thread. Calls from now on raise HandleClosedError; running
        creations are aborted and driven to their end (at most ``close_timeout`` s), then
        ``libxl_ctx_free`` runs with the last call still using the ctx. A creation that
        does not end in time leaves the ctx allocated (never freed under it)."""
        super().close()

    def _on_close(self) -> None:
        with self._lock:
            ops = list(self._ops.values())
        end = time.monotonic() + self.close_timeout
        for op in ops:
            try:
                op.abort()
                op.wait(timeout=max(0.0, end - time.monotonic()))
            except Exception:  # noqa: BLE001 - closing: keep going
                pass
        with self._lock:
            left = [op for op in self._ops.values() if not op.done]
        self._os.detach()
        self._notify()                  # pending awaits raise HandleClosedError
        if left:
            _UNFINISHED.append(self._closing)
            _LOG.warning("libxl context closed with %d creation(s) still running: left "
                         "allocated", len(left))

    # -- libxl's event loop (libxl_event.h, the beforepoll/poll/afterpoll approach) ------
    def _token(self) -> int:
        with self._lock:
            t = next(self._tokens)
            self._queues[t] = collections.deque()
        return t

    def _drop_token(self, token: int) -> None:
        with self._lock:
            self._queues.pop(token, None)

    def _event(self, ev: Any) -> DomainEvent:
        ffi, lib = self._ffi, self._lib
        etype = EventType(int(ev.type))
        reason = rc = code = vdev = None
        if etype in (EventType.DOMAIN_SHUTDOWN, EventType.OPERATION_COMPLETE,
                     EventType.DISK_EJECT):
            p = lib.libxl_event_to_json(self._p(), ev)
            u = {}
            if p != ffi.NULL:
                try:
                    js = json.loads(ffi.string(p).decode("utf-8", "replace"))
                    # the keyed union is printed under "type.<event type>"
                    u = next((v for k, v in js.items()
                              if k.startswith("type.") and isinstance(v, dict)), {})
                finally:
                    lib.free(p)
            if etype == EventType.DOMAIN_SHUTDOWN:
                # libxl's JSON omits fields at their default: no key means 0, poweroff
                # a uint8 of Xen's SHUTDOWN_* codes (libxl_types.idl)
                raw = u.get("shutdown_reason", 0)
                reason = ShutdownReason.from_code(raw) if isinstance(raw, int) \
                    else ShutdownReason.from_label(str(raw))
            elif etype == EventType.OPERATION_COMPLETE:
                rc = int(u.get("rc", 0))
                if rc < 0:
                    s_ = lib.libxl_error_to_string(rc)
                    code = ffi.string(s_).decode().upper() if s_ != ffi.NULL else str(rc)
            else:
                vdev = u.get("vdev")
        return DomainEvent(type=etype, domid=int(ev.domid), shutdown_reason=reason, rc=rc,
                           code=code, vdev=vdev, for_user=int(ev.for_user))

    def _drain(self) -> int:
        """Take every event libxl has ready (``libxl_event_check``) into its token's queue."""
        ffi, lib = self._ffi, self._lib
        out = ffi.new("libxl_event **")
        n = 0
        while True:
            rc = lib.libxl_event_check(self._p(), out, _EVENTMASK_ALL, ffi.NULL, ffi.NULL)
            if rc == lib.ERROR_NOT_READY:
                if n:
                    self._notify()      # the awaits on this context look again
                return n
            _check(rc, "libxl_event_check")
            try:
                ev = self._event(out[0])
            finally:
                lib.libxl_event_free(self._p(), out[0])
            with self._lock:
                q = self._queues.get(ev.for_user)
                if q is not None:
                    q.append(ev)
            n += 1

    def _now(self) -> Any:
        tv = self._ffi.new("struct timeval *")
        t = time.time()
        tv.tv_sec = int(t)
        tv.tv_usec = int((t - int(t)) * 1e6)
        return tv[0]

    def run_events(self, timeout: float | None = 0) -> int:
        """One round of libxl's event loop: ``libxl_osevent_beforepoll``, ``poll`` (at most
        ``timeout`` seconds; None: as long as libxl likes, capped at 0.5 s so signals are
        seen), ``libxl_osevent_afterpoll``, then collect the events (``libxl_event_check``).
        Returns how many events arrived. Operations and watches call this for you. Threads
        may run it at once (each polls its own fds, as libxl allows)."""
        ffi, lib = self._ffi, self._lib
        n = self._drain()
        ms = 500 if timeout is None else max(0, min(500, int(timeout * 1000)))
        if n:
            ms = 0
        local = self._local
        pollfds = getattr(local, "pollfds", None)
        if pollfds is None:
            local.npollfds = 8
            pollfds = local.pollfds = ffi.new("struct pollfd[]", 8)
        while True:
            nfds = ffi.new("int *", local.npollfds)
            tmo = ffi.new("int *", ms)
            rc = lib.libxl_osevent_beforepoll(self._p(), nfds, pollfds, tmo, self._now())
            if rc == lib.ERROR_BUFFERFULL:
                local.npollfds = nfds[0] + 4
                pollfds = local.pollfds = ffi.new("struct pollfd[]", local.npollfds)
                continue
            _check(rc, "libxl_osevent_beforepoll")
            break
        if lib.poll(pollfds, nfds[0], tmo[0]) < 0:  # EINTR: nothing became ready
            for i in range(nfds[0]):
                pollfds[i].revents = 0
        lib.libxl_osevent_afterpoll(self._p(), nfds[0], pollfds, self._now())
        self._os.flush()
        return n + self._drain()

    def _wait_queue(self, token: int, timeout: float | None) -> DomainEvent | None:
        q = self._queues.get(token)
        if q is None:
            raise HandleClosedError("libxl watch or operation")
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                return q.popleft()      # (another thread waiting on it may take it first)
            except IndexError:
                pass
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                self._drain()
                try:
                    return q.popleft()
                except IndexError:
                    return None
            self.run_events(left)

    # -- asyncio (libxl_osevent_register_hooks; see _OsEvents) -----------------------------
    async def acreate(self, cfg: DomainConfig | dict | str, *, paused: bool = False,
                      timeout: float | None = None) -> int:
        """``await ctx.acreate(cfg)``: :meth:`create` on the running asyncio loop (libxl's
        fds and timeouts on the loop, no thread); cancelled, it undoes the creation."""
        return await _create_await(CreateOp(self, cfg, paused), timeout)

    async def adestroy(self, dom: int | str, *, timeout: float | None = None) -> None:
        """``await ctx.adestroy(dom)``: ``libxl_domain_destroy`` as a libxl asynchronous
        operation awaited on the running loop."""
        await DestroyOp(self, self.domid(dom)).await_(timeout)

    def destroy_async(self, dom: int | str) -> "DestroyOp":
        """Start ``libxl_domain_destroy`` as a libxl asynchronous operation; a DestroyOp
        to ``wait()`` or ``await``."""
        return DestroyOp(self, self.domid(dom))

    async def _await_queue(self, token: int, timeout: float | None) -> DomainEvent | None:
        import asyncio
        loop = asyncio.get_running_loop()
        self._os.attach(loop)
        end = None if timeout is None else loop.time() + timeout
        while True:
            q = self._queues.get(token)
            if q is None:
                raise HandleClosedError("libxl watch or operation")
            try:
                return q.popleft()
            except IndexError:
                pass
            self._drain()               # HandleClosedError once the context is closed
            if q:
                continue
            left = None if end is None else end - loop.time()
            if left is not None and left <= 0:
                return None
            await _tick(self, loop, left)

    def _notify(self) -> None:
        """Wake every await on this context (events arrived, or it closed)."""
        with self._lock:
            waiting = list(self._awaiting)
        for loop, fut in waiting:
            try:
                loop.call_soon_threadsafe(_wake, fut)
            except RuntimeError:        # its loop closed
                pass

    # -- names and ids -------------------------------------------------------------------
    def domid(self, dom: int | str) -> int:
        """The id of an existing domain, given an id (int or digits; checked with
        ``libxl_domain_info``) or a name (``libxl_name_to_domid``)."""
        if isinstance(dom, int) or (isinstance(dom, str) and dom.isdigit()):
            domid = int(dom)
            ffi, lib = self._ffi, self._lib
            if not 0 <= domid < 0x7FF0:
                raise libxl_error(lib.ERROR_DOMAIN_NOTFOUND, "domid", domid,
                                  detail="not a valid domain id")
            i = ffi.new("libxl_dominfo *")
            lib.libxl_dominfo_init(i)
            try:
                _check(lib.libxl_domain_info(self._p(), i, domid), "libxl_domain_info", domid)
            finally:
                lib.libxl_dominfo_dispose(i)
            return domid
        ffi, lib = self._ffi, self._lib
        out = ffi.new("uint32_t *")
        rc = lib.libxl_name_to_domid(self._p(), str(dom).encode(), out)
        if rc:  # libxl's own rc (ERROR_INVAL for a name no domain has), as xl prints it
            raise libxl_error(rc if rc < 0 else lib.ERROR_INVAL, "libxl_name_to_domid",
                              detail=f"no domain named {dom!r}", cls=DomainNotFound)
        return int(out[0])

    def name(self, domid: int) -> str | None:
        """``libxl_domid_to_name``: the domain's name, or None."""
        ffi, lib = self._ffi, self._lib
        p = lib.libxl_domid_to_name(self._p(), domid)
        if p == ffi.NULL:
            return None
        try:
            return ffi.string(p).decode("utf-8", "replace")
        finally:
            lib.free(p)

    # -- listing -------------------------------------------------------------------------
    def _info(self, i: Any) -> DomainInfo:
        ffi, lib = self._ffi, self._lib
        t = lib.libxl_domain_type_to_string(i.domain_type)
        try:
            dtype = DomainType(ffi.string(t).decode()) if t != ffi.NULL else None
        except ValueError:
            dtype = None
        reason = None
        if i.shutdown:
            r = lib.libxl_shutdown_reason_to_string(i.shutdown_reason)
            reason = ShutdownReason.from_label(ffi.string(r).decode()) if r != ffi.NULL \
                else None
        return DomainInfo(
            domid=int(i.domid), name=self.name(int(i.domid)),
            uuid=str(_uuid.UUID(bytes=bytes(ffi.buffer(i.uuid.uuid, 16)))),
            type=dtype, running=bool(i.running), blocked=bool(i.blocked),
            paused=bool(i.paused), shutdown=bool(i.shutdown), dying=bool(i.dying),
            shutdown_reason=reason, current_memkb=int(i.current_memkb),
            outstanding_memkb=int(i.outstanding_memkb), max_memkb=int(i.max_memkb),
            cpu_time=int(i.cpu_time), vcpu_online=int(i.vcpu_online),
            vcpu_max_id=int(i.vcpu_max_id), cpupool=int(i.cpupool))

    def list(self) -> list[DomainInfo]:
        """All domains (``libxl_list_domain``)."""
        ffi, lib = self._ffi, self._lib
        n = ffi.new("int *")
        arr = lib.libxl_list_domain(self._p(), n)
        if arr == ffi.NULL:
            _check(lib.ERROR_FAIL, "libxl_list_domain")
        try:
            return [self._info(arr[k]) for k in range(n[0])]
        finally:
            lib.libxl_dominfo_list_free(arr, n[0])

    def info(self, dom: int | str) -> DomainInfo:
        """One domain (``libxl_domain_info``)."""
        ffi, lib = self._ffi, self._lib
        domid = dom if isinstance(dom, int) and 0 <= dom < 0x7FF0 else self.domid(dom)
        i = ffi.new("libxl_dominfo *")
        lib.libxl_dominfo_init(i)
        try:
            _check(lib.libxl_domain_info(self._p(), i, domid), "libxl_domain_info", domid)
            return self._info(i)
        finally:
            lib.libxl_dominfo_dispose(i)

    def exists(self, dom: int | str) -> bool:
        """Does a domain with that id or name exist?"""
        try:
            self.info(dom)
            return True
        except DomainNotFound:
            return False

    # -- libxl_domain_config <-> JSON ----------------------------------------------------
    def _d_config(self, cfg: DomainConfig | dict | str) -> Any:
        """A new libxl_domain_config read from cfg's JSON (caller disposes)."""
        ffi, lib = self._ffi, self._lib
        if isinstance(cfg, DomainConfig):
            text = json.dumps(cfg.to_libxl_json())
        elif isinstance(cfg, dict):
            text = json.dumps(cfg)
        else:
            text = str(cfg)
        d = ffi.new("libxl_domain_config *")
        lib.libxl_domain_config_init(d)
        rc = lib.libxl_domain_config_from_json(self._p(), d, text.encode())
        if rc:
            lib.libxl_domain_config_dispose(d)
            _check(rc if rc < 0 else lib.ERROR_INVAL, "libxl_domain_config_from_json",
                   detail="libxl rejected the domain config JSON")
        return d

    def _to_json(self, d: Any) -> dict:
        ffi, lib = self._ffi, self._lib
        p = lib.libxl_domain_config_to_json(self._p(), d)
        if p == ffi.NULL:
            _check(lib.ERROR_FAIL, "libxl_domain_config_to_json")
        try:
            return json.loads(ffi.string(p).decode("utf-8"))
        finally:
            lib.free(p)

    def config_to_libxl(self, cfg: DomainConfig | dict | str) -> dict:
        """cfg as libxl reads and re-prints it (``libxl_domain_config_from_json`` then
        ``libxl_domain_config_to_json``): validates the conversion."""
        d = self._d_config(cfg)
        try:
            return self._to_json(d)
        finally:
            self._lib.libxl_domain_config_dispose(d)

    def config_from_libxl(self, js: dict, like: DomainConfig | None = None) -> DomainConfig:
        """The DomainConfig libxl keeps for a domain (``libxl_retrieve_domain_configuration``)."""
        return DomainConfig.from_libxl_json(js, like=like)

    # -- lifecycle -----------------------------------------------------------------------
    def _create_config(self, cfg: DomainConfig | dict | str) -> Any:
        if isinstance(cfg, DomainConfig) and cfg.uuid is None:
            cfg = cfg.replace(uuid=str(_uuid.uuid4()))  # as xl does: every domain has one
        return self._d_config(cfg)

    def create(self, cfg: DomainConfig | dict | str, *, paused: bool = False) -> int:
        """Create a domain and wait until it is built (``libxl_domain_create_new``); unpause
        it unless ``paused``. Returns its domid. A config without a uuid gets a random one
        (as xl's parser gives it).

        libxl runs it as an asynchronous operation that this call drives to its end, so a
        Ctrl-C (KeyboardInterrupt) can cut it short: the operation is aborted
        (``libxl_ao_abort``), driven to completion and whatever it built destroyed before
        the KeyboardInterrupt goes on."""
        return CreateOp(self, cfg, paused).wait()

    def create_async(self, cfg: DomainConfig | dict | str, *,
                     paused: bool = False) -> "CreateOp":
        """Start creating a domain and return at once: ``libxl_domain_create_new`` as a
        libxl asynchronous operation (``ao_how.for_event``; console availability reported
        through ``aop_console_how``). Drive it with :meth:`CreateOp.wait` /
        :meth:`CreateOp.poll`; the domain is unpaused on success unless ``paused``."""
        return CreateOp(self, cfg, paused)

    def watch_death(self, dom: int | str) -> "DeathWatch":
        """Domain-death notification (``libxl_evenable_domain_death``): a
        :class:`DeathWatch` yielding DOMAIN_SHUTDOWN and DOMAIN_DEATH events."""
        return DeathWatch(self, self.domid(dom))

    def destroy(self, dom: int | str) -> None:
        """``libxl_domain_destroy``: the domain, its device model and its devices go."""
        domid = self.domid(dom)
        _check(self._lib.libxl_domain_destroy(self._p(), domid, self._ffi.NULL),
               "libxl_domain_destroy", domid)

    def shutdown(self, dom: int | str) -> None:
        """Ask the guest to shut down (PV control node / ACPI); returns at once."""
        domid = self.domid(dom)
        _check(self._lib.libxl_domain_shutdown(self._p(), domid, self._ffi.NULL),
               "libxl_domain_shutdown", domid)

    def reboot(self, dom: int | str) -> None:
        """``libxl_domain_reboot``: ask the guest to reboot."""
        domid = self.domid(dom)
        _check(self._lib.libxl_domain_reboot(self._p(), domid, self._ffi.NULL),
               "libxl_domain_reboot", domid)

    def pause(self, dom: int | str) -> None:
        """``libxl_domain_pause``."""
        domid = self.domid(dom)
        _check(self._lib.libxl_domain_pause(self._p(), domid, self._ffi.NULL),
               "libxl_domain_pause", domid)

    def unpause(self, dom: int | str) -> None:
        """``libxl_domain_unpause``."""
        domid = self.domid(dom)
        _check(self._lib.libxl_domain_unpause(self._p(), domid, self._ffi.NULL),
               "libxl_domain_unpause", domid)

    def set_memory_target(self, dom: int | str, target_kb: int, *, relative: bool = False,
                          enforce: bool = True) -> None:
        """``libxl_set_memory_target`` (``xl mem-set`` uses enforce=True)."""
        domid = self.domid(dom)
        if not relative and target_kb <= 0:
            raise libxl_error(self._lib.ERROR_INVAL, "libxl_set_memory_target", domid,
                              detail=f"target {target_kb} KiB must be positive")
        _check(self._lib.libxl_set_memory_target(self._p(), domid, int(target_kb),
                                                 int(relative), int(enforce)),
               "libxl_set_memory_target", domid)

    def mem_set(self, dom: int | str, memory_mb: int) -> None:
        """``xl mem-set DOM <MiB>``."""
        self.set_memory_target(dom, int(memory_mb) * 1024)

    def set_vcpus_online(self, dom: int | str, count: int) -> None:
        """Bring vcpus 0..count-1 online and the rest offline (``libxl_set_vcpuonline``)."""
        ffi, lib = self._ffi, self._lib
        domid = self.domid(dom)
        info = self.info(domid)
        nmax = info.vcpu_max_id + 1
        if not 1 <= count <= nmax:
            raise libxl_error(lib.ERROR_INVAL, "libxl_set_vcpuonline", domid,
                              detail=f"{count} vcpus requested; domain has 1..{nmax}")
        bm = ffi.new("libxl_bitmap *")
        lib.libxl_bitmap_init(bm)
        try:
            _check(lib.libxl_bitmap_alloc(self._p(), bm, nmax), "libxl_bitmap_alloc", domid)
            for i in range(count):
                lib.libxl_bitmap_set(bm, i)
            _check(lib.libxl_set_vcpuonline(self._p(), domid, bm, ffi.NULL),
                   "libxl_set_vcpuonline", domid)
        finally:
            lib.libxl_bitmap_dispose(bm)

    def console_tty(self, dom: int | str, num: int = 0,
                    type: ConsoleType = ConsoleType.PV) -> str:  # noqa: A002
        """The pty of a domain's console (``libxl_console_get_tty``), checked with
        :func:`pyxen.guest.check_console_pty`: libxl reads it from the guest's own
        directory, so pyxen.guest.ConsoleTtyError if it is not a pty served for this
        domain by xenconsoled or its device model."""
        from .guest import check_console_pty
        ffi, lib = self._ffi, self._lib
        domid = self.domid(dom)
        out = ffi.new("char **")
        _check(lib.libxl_console_get_tty(self._p(), domid, num, int(type), out),
               "libxl_console_get_tty", domid)
        try:
            tty = ffi.string(out[0])
        finally:
            lib.free(out[0])
        return check_console_pty(domid, tty)

    def retrieve_config_json(self, dom: int | str) -> dict:
        """A running domain's config as libxl JSON (``libxl_retrieve_domain_configuration``)."""
        ffi, lib = self._ffi, self._lib
        domid = self.domid(dom)
        d = ffi.new("libxl_domain_config *")
        lib.libxl_domain_config_init(d)
        try:
            _check(lib.libxl_retrieve_domain_configuration(self._p(), domid, d, ffi.NULL),
                   "libxl_retrieve_domain_configuration", domid)
            return self._to_json(d)
        finally:
            lib.libxl_domain_config_dispose(d)

    def retrieve_config(self, dom: int | str) -> DomainConfig:
        """A running domain's config as a DomainConfig."""
        return DomainConfig.from_libxl_json(self.retrieve_config_json(dom))

    # -- disks ---------------------------------------------------------------------------
    def _disk_struct(self, disk: str | DiskSpec) -> Any:
        """A new libxl_device_disk (caller disposes) from a spec string (xlu_disk_parse,
        via pyxen.config) or a DiskSpec (libxl_device_disk_from_json)."""
        ffi, lib = self._ffi, self._lib
        if not isinstance(disk, DiskSpec):
            disk = parse_disk(disk)  # a str or bytes spec; ConfigTypeError for the rest
        d = ffi.new("libxl_device_disk *")
        lib.libxl_device_disk_init(d)
        rc = lib.libxl_device_disk_from_json(self._p(), d,
                                             json.dumps(disk.to_libxl_json()).encode())
        if rc:
            lib.libxl_device_disk_dispose(d)
            _check(rc if rc < 0 else lib.ERROR_INVAL, "libxl_device_disk_from_json")
        return d

    def disk_add(self, dom: int | str, disk: str | DiskSpec) -> None:
        """Attach a disk to a running domain (``libxl_device_disk_add``; ``xl block-attach``).
        ``disk`` is an xl disk spec string or a DiskSpec."""
        domid = self.domid(dom)
        d = self._disk_struct(disk)
        try:
            rc = self._lib.libxl_device_disk_add(self._p(), domid, d, self._ffi.NULL)
            if rc:
                # libxl can leave a half-added vbd behind (e.g. a hotplug script timeout):
                # force it away so a failed attach leaves nothing
                self._lib.libxl_device_disk_destroy(self._p(), domid, d, self._ffi.NULL)
                _check(rc, "libxl_device_disk_add", domid)
        finally:
            self._lib.libxl_device_disk_dispose(d)

    def disk_list(self, dom: int | str) -> builtins.list[DiskInfo]:
        """The domain's disks (``libxl_device_disk_list`` + ``libxl_device_disk_getinfo``)."""
        ffi, lib = self._ffi, self._lib
        domid = self.domid(dom)
        n = ffi.new("int *")
        arr = lib.libxl_device_disk_list(self._p(), domid, n)
        if arr == ffi.NULL:
            return []
        out = []
        try:
            for k in range(n[0]):
                info = ffi.new("libxl_diskinfo *")
                lib.libxl_diskinfo_init(info)
                try:
                    _check(lib.libxl_device_disk_getinfo(self._p(), domid, arr + k, info),
                           "libxl_device_disk_getinfo", domid)

                    def s_(p: Any) -> str | None:
                        return None if p == ffi.NULL else ffi.string(p).decode()

                    out.append(DiskInfo(disk=disk_from_c(arr[k]), devid=int(info.devid),
                                        state=int(info.state), evtch=int(info.evtch),
                                        rref=int(info.rref), backend_id=int(info.backend_id),
                                        backend=s_(info.backend), frontend=s_(info.frontend)))
                finally:
                    lib.libxl_diskinfo_dispose(info)
        finally:
            lib.libxl_device_disk_list_free(arr, n[0])
        return out

    def disk_remove(self, dom: int | str, vdev: str) -> None:
        """Detach a disk by its vdev (``libxl_vdev_to_device_disk`` +
        ``libxl_device_disk_remove``; ``xl block-detach``)."""
        ffi, lib = self._ffi, self._lib
        domid = self.domid(dom)
        d = ffi.new("libxl_device_disk *")
        lib.libxl_device_disk_init(d)
        try:
            rc = lib.libxl_vdev_to_device_disk(self._p(), domid, vdev.encode(), d)
            if rc:
                # libxl says ERROR_FAIL for a vdev the domain lacks: a device not found
                raise libxl_error(rc if rc == lib.ERROR_INVAL else lib.ERROR_NOTFOUND,
                                  "libxl_vdev_to_device_disk", domid,
                                  detail=f"no disk {vdev!r} (libxl: {rc})")
            _check(lib.libxl_device_disk_remove(self._p(), domid, d, ffi.NULL),
                   "libxl_device_disk_remove", domid)
        finally:
            lib.libxl_device_disk_dispose(d)

    # -- network interfaces --------------------------------------------------------------
    def _nic_struct(self, nic: str | NicSpec) -> Any:
        """A new libxl_device_nic (caller disposes) from a vif spec string or a NicSpec."""
        ffi, lib = self._ffi, self._lib
        if not isinstance(nic, NicSpec):
            nic = parse_nic(nic)  # a str or bytes spec; ConfigTypeError for the rest
        n = ffi.new("libxl_device_nic *")
        lib.libxl_device_nic_init(n)
        rc = lib.libxl_device_nic_from_json(self._p(), n,
                                            json.dumps(nic.to_libxl_json()).encode())
        if rc:
            lib.libxl_device_nic_dispose(n)
            _check(rc if rc < 0 else lib.ERROR_INVAL, "libxl_device_nic_from_json")
        return n

    def _nic_spec(self, n: Any) -> NicSpec:
        ffi, lib = self._ffi, self._lib
        p = lib.libxl_device_nic_to_json(self._p(), n)
        if p == ffi.NULL:
            _check(lib.ERROR_FAIL, "libxl_device_nic_to_json")
        try:
            return NicSpec.from_libxl_json(json.loads(ffi.string(p).decode("utf-8")))
        finally:
            lib.free(p)

    def nic_add(self, dom: int | str, nic: str | NicSpec) -> NicInfo:
        """Attach a network interface to a running domain (``libxl_device_nic_add``;
        ``xl network-attach``). ``nic`` is an xl vif spec (``bridge=xenbr0,mac=...``) or a
        NicSpec; a spec without ``mac=`` gets a random one. Returns the new interface."""
        ffi, lib = self._ffi, self._lib
        domid = self.domid(dom)
        n = self._nic_struct(nic)
        try:
            before = {x.devid for x in self.nic_list(domid)}
            rc = lib.libxl_device_nic_add(self._p(), domid, n, ffi.NULL)
            if rc:
                # like disk_add: a half-added vif (hotplug script failure) is forced away
                lib.libxl_device_nic_destroy(self._p(), domid, n, ffi.NULL)
                _check(rc, "libxl_device_nic_add", domid)
            mac = self._nic_spec(n).mac
        finally:
            lib.libxl_device_nic_dispose(n)
        for x in self.nic_list(domid):
            if x.devid not in before and x.mac == mac:
                return x
        raise libxl_error(lib.ERROR_FAIL, "libxl_device_nic_list", domid,
                         detail=f"nic {mac} added but not listed")

    def nic_list(self, dom: int | str) -> builtins.list[NicInfo]:
        """The domain's network interfaces (``libxl_device_nic_list`` +
        ``libxl_device_nic_getinfo``; ``xl network-list``)."""
        ffi, lib = self._ffi, self._lib
        domid = self.domid(dom)
        n = ffi.new("int *")
        arr = lib.libxl_device_nic_list(self._p(), domid, n)
        if arr == ffi.NULL:
            return []
        out = []

        def s_(p: Any) -> str | None:
            return None if p == ffi.NULL else ffi.string(p).decode()

        try:
            for k in range(n[0]):
                info = ffi.new("libxl_nicinfo *")
                lib.libxl_nicinfo_init(info)
                try:
                    _check(lib.libxl_device_nic_getinfo(self._p(), domid, arr + k, info),
                           "libxl_device_nic_getinfo", domid)
                    out.append(NicInfo(nic=self._nic_spec(arr + k), devid=int(info.devid),
                                       state=int(info.state), evtch=int(info.evtch),
                                       rref_tx=int(info.rref_tx), rref_rx=int(info.rref_rx),
                                       backend_id=int(info.backend_id),
                                       backend=s_(info.backend), frontend=s_(info.frontend)))
                finally:
                    lib.libxl_nicinfo_dispose(info)
        finally:
            lib.libxl_device_nic_list_free(arr, n[0])
        return out

    def nic_remove(self, dom: int | str, which: int | str) -> None:
        """Detach a network interface by devid or MAC (``libxl_devid_to_device_nic`` /
        ``libxl_mac_to_device_nic`` + ``libxl_device_nic_remove``; ``xl network-detach``)."""
        ffi, lib = self._ffi, self._lib
        domid = self.domid(dom)
        n = ffi.new("libxl_device_nic *")
        lib.libxl_device_nic_init(n)
        try:
            if isinstance(which, int) or str(which).isdigit():
                call = "libxl_devid_to_device_nic"
                rc = lib.libxl_devid_to_device_nic(self._p(), domid, int(which), n)
            else:
                call = "libxl_mac_to_device_nic"
                rc = lib.libxl_mac_to_device_nic(self._p(), domid, str(which).encode(), n)
            if rc:
                raise libxl_error(rc if rc == lib.ERROR_INVAL else lib.ERROR_NOTFOUND, call,
                                  domid, detail=f"no network interface {which!r} (libxl: {rc})")
            _check(lib.libxl_device_nic_remove(self._p(), domid, n, ffi.NULL),
                   "libxl_device_nic_remove", domid)
        finally:
            lib.libxl_device_nic_dispose(n)

    # -- vcpus ---------------------------------------------------------------------------
    def max_cpus(self) -> int:
        """How many physical cpus the host can have (``libxl_get_max_cpus``)."""
        return _check(self._lib.libxl_get_max_cpus(self._p()), "libxl_get_max_cpus")

    def _cpus_of(self, bm: Any) -> frozenset:
        return frozenset(i for i in range(int(bm.size) * 8)
                         if self._lib.libxl_bitmap_test(bm, i))

    def vcpu_list(self, dom: int | str) -> builtins.list[VcpuInfo]:
        """The domain's vcpus with their affinities (``libxl_list_vcpu``; ``xl vcpu-list``)."""
        ffi, lib = self._ffi, self._lib
        domid = self.domid(dom)
        nb, ncpus = ffi.new("int *"), ffi.new("int *")
        arr = lib.libxl_list_vcpu(self._p(), domid, nb, ncpus)
        if arr == ffi.NULL:
            _check(lib.ERROR_FAIL, "libxl_list_vcpu", domid)
        try:
            return [VcpuInfo(vcpuid=int(v.vcpuid), cpu=int(v.cpu), online=bool(v.online),
                             blocked=bool(v.blocked), running=bool(v.running),
                             vcpu_time=int(v.vcpu_time),
                             hard=self._cpus_of(ffi.addressof(v, "cpumap")),
                             soft=self._cpus_of(ffi.addressof(v, "cpumap_soft")))
                    for v in (arr[i] for i in range(nb[0]))]
        finally:
            lib.libxl_vcpuinfo_list_free(arr, nb[0])

    def _bitmap(self, cpus: Iterable[int], domid: int) -> Any:
        """A new cpu libxl_bitmap with ``cpus`` set (caller disposes)."""
        ffi, lib = self._ffi, self._lib
        bm = ffi.new("libxl_bitmap *")
        lib.libxl_bitmap_init(bm)
        try:
            _check(lib.libxl_cpu_bitmap_alloc(self._p(), bm, 0), "libxl_cpu_bitmap_alloc",
                   domid)
            for c in cpus:
                if not 0 <= c < bm.size * 8:
                    raise libxl_error(lib.ERROR_INVAL, "libxl_set_vcpuaffinity",
                                       domid, detail=f"cpu {c} does not exist")
                lib.libxl_bitmap_set(bm, c)
        except BaseException:
            lib.libxl_bitmap_dispose(bm)
            raise
        return bm

    def vcpu_pin(self, dom: int | str, vcpu: int | str, hard: str | Iterable[int] | None = "all",
                 soft: str | Iterable[int] | None = None) -> None:
        """Pin vcpu(s) to physical cpus (``libxl_set_vcpuaffinity``; ``xl vcpu-pin``).
        ``vcpu`` is a number or ``"all"``; ``hard``/``soft`` are cpu sets or xl cpu lists
        (``"0-1"``, ``"all"``, ``"^0"``); ``None`` leaves that affinity alone."""
        ffi, lib = self._ffi, self._lib
        domid = self.domid(dom)
        ncpus = self.max_cpus()
        vcpus = [v.vcpuid for v in self.vcpu_list(domid)]
        if str(vcpu) == "all":
            targets = vcpus
        else:
            try:
                v = int(vcpu)
            except ValueError:
                raise libxl_error(lib.ERROR_INVAL, "libxl_set_vcpuaffinity", domid,
                                   detail=f"invalid vcpu {vcpu!r}") from None
            if v not in vcpus:
                raise libxl_error(lib.ERROR_INVAL, "libxl_set_vcpuaffinity", domid,
                                   detail=f"vcpu {v} does not exist (domain has "
                                          f"{len(vcpus)})")
            targets = [v]

        def cpuset(x: str | Iterable[int] | None) -> frozenset | None:
            if x is None:
                return None
            return parse_cpus(x, ncpus) if isinstance(x, str) else frozenset(x)

        hard_s, soft_s = cpuset(hard), cpuset(soft)
        if hard_s is None and soft_s is None:
            raise libxl_error(lib.ERROR_INVAL, "libxl_set_vcpuaffinity", domid,
                               detail="neither hard nor soft affinity given")
        hb = self._bitmap(hard_s, domid) if hard_s is not None else None
        try:
            sb = self._bitmap(soft_s, domid) if soft_s is not None else None
            try:
                for v in targets:
                    _check(lib.libxl_set_vcpuaffinity(self._p(), domid, v,
                                                      hb if hb is not None else ffi.NULL,
                                                      sb if sb is not None else ffi.NULL),
                           "libxl_set_vcpuaffinity", domid)
            finally:
                if sb is not None:
                    lib.libxl_bitmap_dispose(sb)
        finally:
            if hb is not None:
                lib.libxl_bitmap_dispose(hb)

    # -- VNC -----------------------------------------------------------------------------
    def vnc(self, dom: int | str, *, timeout: float = 0) -> VncAddress:
        """The VNC address of a domain's display, as its device model reports it (QMP
        ``query-vnc`` on ``/var/run/xen/qmp-libxl-<domid>``, the control socket libxl and
        pyxen give qemu in dom0). Not from ``console/vnc-port`` and ``vnc-listen``, which
        ``libxl_vncviewer_exec`` reads: they are in the guest's own directory, and a guest
        could send the viewer to a host of its choosing. ``timeout``: seconds to wait for
        the device model to answer. LibxlError NOTFOUND if the domain has no VNC display."""
        from .guest import QmpError, qmp
        domid = self.domid(dom)
        end = time.monotonic() + timeout
        while True:
            try:
                r = qmp(domid, "query-vnc", timeout=max(5.0, end - time.monotonic()))
                break
            except QmpError as e:
                if time.monotonic() >= end:
                    raise libxl_error(self._lib.ERROR_NOTFOUND, "vnc", domid,
                                     detail="no VNC display (not an HVM guest with vnc=1, "
                                            f"or its device model has not started: {e.reason})"
                                     ) from None
                time.sleep(0.2)
        service = str(r.get("service", "")) if isinstance(r, dict) else ""
        if not isinstance(r, dict) or not r.get("enabled") \
                or not re.fullmatch(r"[1-9][0-9]{0,4}", service) or int(service) > 65535:
            raise libxl_error(self._lib.ERROR_NOTFOUND, "vnc", domid,
                             detail="its device model serves no VNC display")
        return VncAddress(domid=domid, host=str(r.get("host") or "localhost"),
                          port=int(service))


_EVENTMASK_ALL = 0xFFFFFFFFFFFFFFFF
_CHILD_HOOKS: Any = None


def _child_hooks() -> Any:
    """The one libxl_childproc_hooks every pyxen context uses (libxl requires all of a
    process's contexts to agree, and the struct to outlive them)."""
    global _CHILD_HOOKS
    if _CHILD_HOOKS is None:
        ffi, lib = xen()
        h = ffi.new("libxl_childproc_hooks *")
        h.chldowner = lib.libxl_sigchld_owner_libxl_always_selective_reap
        _CHILD_HOOKS = h
    return _CHILD_HOOKS


class CreateOp:
    """A domain creation in flight (:meth:`Context.create_async`).

    libxl owns ``d_config`` and the domid slot until the ``OPERATION_COMPLETE`` event, so
    both live here (and the context keeps this object) until then. ``domid`` is known
    from the ``DOMAIN_CREATE_CONSOLE_AVAILABLE`` progress event or from completion."""

    def __init__(self, ctx: Context, cfg: DomainConfig | dict | str, paused: bool):
        ffi, lib = ctx._ffi, ctx._lib
        self.ctx = ctx
        self.paused = paused
        self._d = ctx._create_config(cfg)
        self._domid = ffi.new("uint32_t *", 0xFFFFFFFF)
        self._token = ctx._token()
        self._ctoken = ctx._token()
        self._how = ffi.new("libxl_asyncop_how *")
        self._how.callback = ffi.NULL
        self._how.u.for_event = self._token
        self._chow = ffi.new("libxl_asyncprogress_how *")
        self._chow.callback = ffi.NULL
        self._chow.for_event = self._ctoken
        self.domid: int | None = None
        self.console_available = False
        self.done = False
        self.error: LibxlError | None = None
        self.started = time.monotonic()
        self.elapsed: float | None = None
        with _interrupt.deferred_sigint():  # in flight from here: recorded before a Ctrl-C
            rc = lib.libxl_domain_create_new(ctx._p(), self._d, self._domid, self._how,
                                             self._chow)
            if not rc:
                with ctx._lock:
                    ctx._ops[self._token] = self
        if rc:  # not started: nothing is in flight
            self._finish()
            _check(rc, "libxl_domain_create_new")
        try:
            _interrupt.point("light.create_started")
        except BaseException:
            self.cancel()
            raise

    def _finish(self) -> None:
        with self.ctx._lock:            # once, whichever thread sees the completion
            self.done = True
            self.ctx._ops.pop(self._token, None)
            self.ctx._drop_token(self._token)
            self.ctx._drop_token(self._ctoken)
            if self._d is not None:
                self.ctx._lib.libxl_domain_config_dispose(self._d)
                self._d = None

    def _take(self) -> None:
        # under the context's lock: of threads waiting on one op, one takes each event and
        # finishes the op (unpause included) before another sees the result (_settled)
        with self.ctx._lock:
            if not self.done:
                self._take_locked()

    def _settled(self) -> None:
        """Wait until the thread that saw the completion is done with it."""
        with self.ctx._lock:
            pass

    def _take_locked(self) -> None:
        cq = self.ctx._queues.get(self._ctoken)
        while cq:
            ev = cq.popleft()
            self.console_available = True
            self.domid = ev.domid
        q = self.ctx._queues.get(self._token)
        if q:
            ev = q.popleft()
            self.elapsed = time.monotonic() - self.started
            domid = int(self._domid[0])
            if ev.rc:
                self.error = libxl_error(ev.rc, "libxl_domain_create_new",
                                         detail="libxl destroyed the partly built domain")
            else:
                self.domid = domid
            self._finish()
            _interrupt.point("light.create_completed")
            if self.error is None and not self.paused:
                try:
                    self.ctx.unpause(domid)
                except LibxlError as e:
                    self.error = e
                    self.ctx.destroy(domid)

    def poll(self) -> bool:
        """Let libxl make progress without blocking; True once the operation finished."""
        if not self.done:
            self.ctx.run_events(0)
            self._take()
        self._settled()
        return self.done

    def wait_console(self, timeout: float | None = None) -> int | None:
        """Wait until the domain's console exists (or the creation finished); its domid,
        or None on timeout / failure."""
        end = None if timeout is None else time.monotonic() + timeout
        while not (self.console_available or self.done):
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                break
            self.ctx.run_events(left)
            self._take()
        return self.domid

    def wait(self, timeout: float | None = None) -> int:
        """Drive libxl until the creation completes; the new domid. Raises the creation's
        LibxlError, or TimeoutError (the operation stays in flight)."""
        end = None if timeout is None else time.monotonic() + timeout
        try:
            while not self.done:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    raise CreateTimeout(f"domain creation still in progress after {timeout:g}s")
                _interrupt.point("light.create_wait")
                self.ctx.run_events(left)
                self._take()
        except (TimeoutError, HandleClosedError):
            raise                       # still in flight / its context's close() ends it
        except BaseException:           # a Ctrl-C (or a failure driving libxl): undo it all
            self.cancel()
            raise
        self._settled()
        if self.error is not None:
            raise self.error
        assert self.domid is not None  # completed without an error: _take() set it
        return int(self.domid)

    def cancel(self, timeout: float = 60.0) -> None:
        """Abort the creation (``libxl_ao_abort``), drive it to its end and destroy the
        domain it made, if any: what a Ctrl-C in :meth:`wait` does. A second Ctrl-C waits
        until this is done."""
        with _interrupt.deferred_sigint():
            self.paused = True          # never unpause what is being undone
            if not self.done:
                try:
                    self.abort()
                except (LibxlError, HandleClosedError):
                    pass                # (closed: its context's close() aborted it)
                end = time.monotonic() + timeout
                while not self.done and time.monotonic() < end:
                    try:
                        self.ctx.run_events(min(1.0, max(0.0, end - time.monotonic())))
                        self._take()
                    except PyxenError:
                        break
            domid = self.domid
            if domid is None and int(self._domid[0]) != 0xFFFFFFFF:
                domid = int(self._domid[0])
            if domid is not None:
                try:
                    self.ctx.destroy(domid)
                except PyxenError:
                    pass                # libxl destroyed it already (a failed creation)

    async def await_(self, timeout: float | None = None) -> int:
        """``await op`` / ``await op.await_(timeout)``: :meth:`wait` on the running loop.
        Cancelled, it undoes the creation (what :meth:`cancel` does)."""
        return await _create_await(self, timeout)

    def __await__(self) -> Any:
        return _create_await(self, None).__await__()

    def abort(self) -> None:
        """Ask libxl to cut the creation short (``libxl_ao_abort``); :meth:`wait` then
        raises ABORTED (or the domain completes anyway)."""
        if self.done:
            return
        rc = self.ctx._lib.libxl_ao_abort(self.ctx._p(), self._how)
        if rc not in (0, self.ctx._lib.ERROR_NOTFOUND, self.ctx._lib.ERROR_ABORTED):
            _check(rc, "libxl_ao_abort")

    def __repr__(self) -> str:
        state = "done" if self.done else "in progress"
        return f"<CreateOp domid={self.domid} {state}>"


class DeathWatch:
    """DOMAIN_SHUTDOWN / DOMAIN_DEATH events of one domain
    (``libxl_evenable_domain_death`` .. ``libxl_evdisable_domain_death``)."""

    def __init__(self, ctx: Context, domid: int):
        ffi, lib = ctx._ffi, ctx._lib
        self.ctx = ctx
        self.domid = domid
        self._dead = False
        self._token = ctx._token()
        self._evgen = ffi.new("libxl_evgen_domain_death **")
        rc = lib.libxl_evenable_domain_death(ctx._p(), domid, self._token, self._evgen)
        if rc:
            ctx._drop_token(self._token)
            _check(rc, "libxl_evenable_domain_death", domid)

    def wait(self, timeout: float | None = None) -> DomainEvent | None:
        """The next event (DOMAIN_SHUTDOWN with its reason, or DOMAIN_DEATH), or None
        after ``timeout`` seconds."""
        return self.ctx._wait_queue(self._token, timeout)

    def wait_for(self, *types: EventType, timeout: float | None = None) -> DomainEvent | None:
        """Skip events until one of ``types`` (default DOMAIN_DEATH); None on timeout."""
        types = types or (EventType.DOMAIN_DEATH,)
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if end is None else max(0.0, end - time.monotonic())
            ev = self.wait(left)
            if ev is None or ev.type in types:
                return ev

    async def await_event(self, timeout: float | None = None) -> DomainEvent | None:
        """:meth:`wait` for asyncio: the next event, or None after ``timeout`` seconds."""
        return await self.ctx._await_queue(self._token, timeout)

    async def await_for(self, *types: EventType,
                        timeout: float | None = None) -> DomainEvent | None:
        """:meth:`wait_for` for asyncio: skip events until one of ``types`` (default
        DOMAIN_DEATH); None on timeout."""
        import asyncio
        types = types or (EventType.DOMAIN_DEATH,)
        loop = asyncio.get_running_loop()
        end = None if timeout is None else loop.time() + timeout
        while True:
            left = None if end is None else max(0.0, end - loop.time())
            ev = await self.ctx._await_queue(self._token, left)
            if ev is None or ev.type in types:
                return ev

    def __aiter__(self) -> "DeathWatch":
        return self

    async def __anext__(self) -> DomainEvent:
        if self._dead or self._evgen is None:
            raise StopAsyncIteration
        try:
            ev = await self.ctx._await_queue(self._token, None)
        except HandleClosedError:
            if self._evgen is None:     # this watch was closed
                raise StopAsyncIteration from None
            raise
        assert ev is not None
        if ev.type == EventType.DOMAIN_DEATH:
            self._dead = True           # nothing follows a domain's death
        return ev

    def close(self) -> None:
        """Stop watching (``libxl_evdisable_domain_death``); idempotent, works after the context
        closed."""
        with self.ctx._lock:            # idempotent, from any thread
            evgen, self._evgen = self._evgen, None
        if evgen is not None and evgen[0] != self.ctx._ffi.NULL:
            try:
                self.ctx._lib.libxl_evdisable_domain_death(self.ctx._p(), evgen[0])
            except HandleClosedError:
                pass                    # libxl_ctx_free disables it
        self.ctx._drop_token(self._token)

    def __enter__(self) -> DeathWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- asyncio ------------------------------------------------------------------------------
# libxl's second event approach (libxl_event.h): libxl_osevent_register_hooks hands the
# application every fd and timeout libxl wants watched; the application's loop calls
# libxl_osevent_occurred_fd / _timeout when they fire. libxl allows mixing it with the
# beforepoll/afterpoll approach, so the blocking forms (run_events) keep working as before
# while an asyncio loop sees the same fds and timeouts through add_reader/add_writer/call_at.
# The hooks may be called from any thread, inside any libxl call, with libxl's ctx lock
# held: they only update the tables here (under _OsEvents._lock, which is never held while
# calling libxl: libxl_event.h's lock rule (a)) and tell the loop to look at them again.

_OSEVENT_HOOKS: Any = None
_OS_USERS: dict[int, "_OsEvents"] = {}   # id -> _OsEvents, for the hooks' user pointer
_OS_IDS = itertools.count(1)


def _osevent_hooks() -> Any:
    """The one libxl_osevent_hooks struct (libxl keeps the pointer: it outlives every ctx)."""
    global _OSEVENT_HOOKS
    if _OSEVENT_HOOKS is not None:
        return _OSEVENT_HOOKS
    ffi, lib = xen()

    def owner(user: Any) -> "_OsEvents | None":
        return _OS_USERS.get(int(ffi.cast("uintptr_t", user)))

    def key_of(reg: Any) -> int:
        return int(ffi.cast("uintptr_t", reg))

    @ffi.def_extern()
    def pyxen_fd_register(user: Any, fd: int, reg_out: Any, events: int,
                          for_libxl: Any) -> int:
        os_ = owner(user)
        if os_ is None:
            return int(lib.ERROR_OSEVENT_REG_FAIL)
        try:
            reg_out[0] = ffi.cast("void *", os_._fd_register(fd, events, for_libxl))
            return 0
        except Exception:  # noqa: BLE001 - never unwind into C
            return int(lib.ERROR_OSEVENT_REG_FAIL)

    @ffi.def_extern()
    def pyxen_fd_modify(user: Any, fd: int, reg_update: Any, events: int) -> int:
        os_ = owner(user)
        if os_ is not None:
            try:
                os_._fd_modify(key_of(reg_update[0]), events)
            except Exception:  # noqa: BLE001
                return int(lib.ERROR_OSEVENT_REG_FAIL)
        return 0

    @ffi.def_extern()
    def pyxen_fd_deregister(user: Any, fd: int, reg: Any) -> None:
        os_ = owner(user)
        if os_ is not None:
            try:
                os_._fd_deregister(key_of(reg))
            except Exception:  # noqa: BLE001
                pass

    @ffi.def_extern()
    def pyxen_timeout_register(user: Any, reg_out: Any, abs: Any, for_libxl: Any) -> int:
        os_ = owner(user)
        if os_ is None:
            return int(lib.ERROR_OSEVENT_REG_FAIL)
        try:
            at = int(abs.tv_sec) + int(abs.tv_usec) / 1e6
            reg_out[0] = ffi.cast("void *", os_._timeout_register(at, for_libxl))
            return 0
        except Exception:  # noqa: BLE001
            return int(lib.ERROR_OSEVENT_REG_FAIL)

    @ffi.def_extern()
    def pyxen_timeout_modify(user: Any, reg_update: Any, abs: Any) -> int:
        os_ = owner(user)             # libxl only ever asks for {0,0}: as soon as possible
        if os_ is not None:
            try:
                os_._timeout_modify(key_of(reg_update[0]))
            except Exception:  # noqa: BLE001
                return int(lib.ERROR_OSEVENT_REG_FAIL)
        return 0

    @ffi.def_extern()
    def pyxen_timeout_deregister(user: Any, reg: Any) -> None:
        pass                          # never called by libxl (libxl_event.h)

    h = ffi.new("libxl_osevent_hooks *")
    h.fd_register = lib.pyxen_fd_register
    h.fd_modify = lib.pyxen_fd_modify
    h.fd_deregister = lib.pyxen_fd_deregister
    h.timeout_register = lib.pyxen_timeout_register
    h.timeout_modify = lib.pyxen_timeout_modify
    h.timeout_deregister = lib.pyxen_timeout_deregister
    _OSEVENT_HOOKS = h
    return h


class _OsEvents:
    """One context's libxl fds and timeouts, and the asyncio loop they are on (if any).

    Registration tables change in whichever thread libxl calls the hooks from; the loop's
    own view (readers, writers, timer handles) changes only in the loop's thread
    (:meth:`_sync`, scheduled with ``call_soon_threadsafe`` from other threads). Without a
    loop, or once it closed, timeouts libxl cancelled (modified to "now") are handed back
    to libxl by :meth:`flush`, which run_events calls after each round."""

    def __init__(self, ctx: "Context") -> None:
        import weakref
        self._ctx = weakref.ref(ctx)
        self.id = next(_OS_IDS)
        self._lock = threading.Lock()
        self._keys = itertools.count(1)
        self._fds: dict[int, list] = {}          # key -> [fd, events, for_libxl]
        self._timeouts: dict[int, list] = {}     # key -> [wall time (0: now), for_libxl]
        self._loop: Any = None
        self._loop_thread: int | None = None
        self._on_loop: dict[int, tuple[bool, bool]] = {}   # fd -> (reader, writer) added
        self._timers: dict[int, tuple[float, Any]] = {}    # key -> (when, TimerHandle)
        _OS_USERS[self.id] = self

    # hooks (any thread, inside libxl: no libxl call here)
    def _fd_register(self, fd: int, events: int, for_libxl: Any) -> int:
        with self._lock:
            key = next(self._keys)
            self._fds[key] = [fd, events, for_libxl]
        self._changed()
        return key

    def _fd_modify(self, key: int, events: int) -> None:
        with self._lock:
            if key in self._fds:
                self._fds[key][1] = events
        self._changed()

    def _fd_deregister(self, key: int) -> None:
        with self._lock:
            self._fds.pop(key, None)
        self._changed()

    def _timeout_register(self, at: float, for_libxl: Any) -> int:
        with self._lock:
            key = next(self._keys)
            self._timeouts[key] = [at, for_libxl]
        self._changed()
        return key

    def _timeout_modify(self, key: int) -> None:
        with self._lock:
            if key in self._timeouts:
                self._timeouts[key][0] = 0.0
        self._changed()

    def _changed(self) -> None:
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._sync()
            return
        try:
            loop.call_soon_threadsafe(self._sync)
        except RuntimeError:          # the loop closed: flush() takes over
            pass

    # the loop's side (its thread only)
    def attach(self, loop: Any) -> None:
        """Put libxl's fds and timeouts on ``loop`` (the running one, in its thread)."""
        if self._loop is loop:
            return
        self.detach()
        self._loop, self._loop_thread = loop, threading.get_ident()
        self._sync()

    def detach(self) -> None:
        """Take everything off the loop (in its thread, or when it is closed)."""
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() != self._loop_thread and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._detach_here, loop)
            except RuntimeError:
                pass
            self._loop = self._loop_thread = None
            return
        self._detach_here(loop)
        self._loop = self._loop_thread = None

    def _detach_here(self, loop: Any) -> None:
        if not loop.is_closed():
            for fd, (r, w) in self._on_loop.items():
                if r:
                    loop.remove_reader(fd)
                if w:
                    loop.remove_writer(fd)
        for _, h in self._timers.values():
            h.cancel()
        self._on_loop.clear()
        self._timers.clear()

    def _sync(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or threading.get_ident() != self._loop_thread:
            return
        lib = xen()[1]
        with self._lock:
            want: dict[int, tuple[bool, bool]] = {}
            for fd, events, _ in self._fds.values():
                r, w = want.get(fd, (False, False))
                want[fd] = (r or bool(events & (lib.POLLIN | lib.POLLPRI)),
                            w or bool(events & lib.POLLOUT))
            timeouts = {k: v[0] for k, v in self._timeouts.items()}
        for fd in set(want) | set(self._on_loop):
            r0, w0 = self._on_loop.get(fd, (False, False))
            r1, w1 = want.get(fd, (False, False))
            try:                        # (an fd libxl closed meanwhile: dropped by the
                if r1 and not r0:       # kernel, its next registration adds it again)
                    loop.add_reader(fd, self._on_fd, fd, True)
                elif r0 and not r1:
                    loop.remove_reader(fd)
            except (OSError, ValueError):
                r1 = False
            try:
                if w1 and not w0:
                    loop.add_writer(fd, self._on_fd, fd, False)
                elif w0 and not w1:
                    loop.remove_writer(fd)
            except (OSError, ValueError):
                w1 = False
            if r1 or w1:
                self._on_loop[fd] = (r1, w1)
            else:
                self._on_loop.pop(fd, None)
        for key in list(self._timers):
            if key not in timeouts:
                self._timers.pop(key)[1].cancel()
        for key, at in timeouts.items():
            old = self._timers.get(key)
            if old is not None and old[0] == at:
                continue
            if old is not None:
                old[1].cancel()
            delay = max(0.0, at - time.time()) if at else 0.0
            self._timers[key] = (at, loop.call_at(loop.time() + delay, self._on_timeout, key))

    def _on_fd(self, fd: int, readable: bool) -> None:
        ctx = self._ctx()
        if ctx is None:
            return
        ffi, lib = xen()
        bits = (lib.POLLIN | lib.POLLPRI) if readable else lib.POLLOUT
        with self._lock:
            regs = [(events, fl) for f, events, fl in self._fds.values()
                    if f == fd and events & bits]
        try:
            for events, fl in regs:
                lib.libxl_osevent_occurred_fd(ctx._p(), fl, fd, events, events & bits)
            ctx._drain()
        except HandleClosedError:       # closed from another thread: off the loop
            if self._loop is not None:
                self._detach_here(self._loop)
            self._loop = self._loop_thread = None
            ctx._notify()

    def _on_timeout(self, key: int) -> None:
        ctx = self._ctx()
        with self._lock:
            entry = self._timeouts.pop(key, None)
        self._timers.pop(key, None)
        if ctx is None or entry is None:
            return
        try:
            xen()[1].libxl_osevent_occurred_timeout(ctx._p(), entry[1])
            ctx._drain()
        except HandleClosedError:
            ctx._notify()

    def flush(self) -> None:
        """Without a live loop: give libxl back the timeouts it cancelled (outside libxl)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            return
        ctx = self._ctx()
        if ctx is None:
            return
        with self._lock:
            due = [k for k, v in self._timeouts.items() if v[0] == 0.0]
            entries = [self._timeouts.pop(k) for k in due]
        for _, fl in entries:
            xen()[1].libxl_osevent_occurred_timeout(ctx._p(), fl)


async def _tick(ctx: "Context", loop: Any, left: float | None) -> None:
    """Wait until ``ctx`` delivers events (or at most ``left`` s, and 1 s at a time: a
    last resort that re-checks, never the way events arrive)."""
    import asyncio
    fut = loop.create_future()
    with ctx._lock:
        ctx._awaiting.append((loop, fut))
    try:
        await asyncio.wait([fut], timeout=1.0 if left is None else max(0.0, min(1.0, left)))
    finally:
        with ctx._lock:
            try:
                ctx._awaiting.remove((loop, fut))
            except ValueError:
                pass


def _wake(fut: Any) -> None:
    if not fut.done():
        fut.set_result(None)


class DestroyOp:
    """A ``libxl_domain_destroy`` in flight as a libxl asynchronous operation
    (:meth:`Context.adestroy`); its context's close() drives it to its end."""

    def __init__(self, ctx: "Context", domid: int) -> None:
        ffi, lib = ctx._ffi, ctx._lib
        self.ctx, self.domid = ctx, domid
        self.error: LibxlError | None = None
        self._done = False
        self._token = ctx._token()
        self._how = ffi.new("libxl_asyncop_how *")
        self._how.callback = ffi.NULL
        self._how.u.for_event = self._token
        with ctx._lock:
            ctx._ops[self._token] = self
        try:
            rc = lib.libxl_domain_destroy(ctx._p(), domid, self._how)
        except BaseException:
            self._end()
            raise
        if rc:
            self._end()
            _check(rc, "libxl_domain_destroy", domid)

    def _end(self) -> None:
        with self.ctx._lock:
            self._done = True
            self.ctx._ops.pop(self._token, None)
            self.ctx._drop_token(self._token)

    @property
    def done(self) -> bool:
        """True once libxl reported the destruction complete."""
        if not self._done:
            with self.ctx._lock:
                q = self.ctx._queues.get(self._token)
                ev = q.popleft() if q else None
            if ev is not None:
                if ev.rc:
                    self.error = libxl_error(ev.rc, "libxl_domain_destroy", self.domid)
                self._end()
        return self._done

    def abort(self) -> None:
        """A destruction is not cut short (libxl_ao_abort would leave a half-gone domain)."""

    def wait(self, timeout: float | None = None) -> None:
        """Drive libxl until the destruction completes (blocking); its LibxlError."""
        end = None if timeout is None else time.monotonic() + timeout
        while not self.done:
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                raise CreateTimeout(f"domain {self.domid}: destruction still in progress")
            self.ctx.run_events(left)
        if self.error is not None:
            raise self.error

    async def await_(self, timeout: float | None = None) -> None:
        """``await``: until the destruction completes. A cancelled await leaves the
        destruction running to its end (driven by the loop, or by close())."""
        import asyncio
        loop = asyncio.get_running_loop()
        self.ctx._os.attach(loop)
        end = None if timeout is None else loop.time() + timeout
        while not self.done:
            left = None if end is None else end - loop.time()
            if left is not None and left <= 0:
                raise CreateTimeout(f"domain {self.domid}: destruction still in progress")
            await _tick(self.ctx, loop, left)
            if not self.done:
                self.ctx._drain()
        if self.error is not None:
            raise self.error

    def __await__(self) -> Any:
        return self.await_().__await__()


async def _create_await(op: CreateOp, timeout: float | None) -> int:
    """CreateOp.await_'s body: true awaits on the context's events."""
    import asyncio
    ctx = op.ctx
    loop = asyncio.get_running_loop()
    ctx._os.attach(loop)
    end = None if timeout is None else loop.time() + timeout
    try:
        while not op.done:
            ctx._drain()
            op._take()
            if op.done:
                break
            left = None if end is None else end - loop.time()
            if left is not None and left <= 0:
                raise CreateTimeout(f"domain creation still in progress after {timeout:g}s")
            await _tick(ctx, loop, left)
    except (TimeoutError, HandleClosedError):
        raise                       # still in flight / its context's close() ends it
    except BaseException:           # cancelled (or a failure driving libxl): undo it all
        await _create_undo(op)
        raise
    op._settled()
    if op.error is not None:
        raise op.error
    assert op.domid is not None
    return int(op.domid)


async def _create_undo(op: CreateOp, timeout: float = 60.0) -> None:
    """CreateOp.cancel for a cancelled await: abort, await the end, destroy what was made.
    A second cancellation waits until this is done."""
    import asyncio
    ctx = op.ctx
    loop = asyncio.get_running_loop()
    op.paused = True                # never unpause what is being undone
    if not op.done:
        try:
            op.abort()
        except (LibxlError, HandleClosedError):
            pass
        end = loop.time() + timeout
        while not op.done and loop.time() < end:
            try:
                ctx._drain()
                op._take()
                if not op.done:
                    await _tick(ctx, loop, end - loop.time())
            except asyncio.CancelledError:
                continue
            except PyxenError:
                break
    domid = op.domid
    if domid is None and int(op._domid[0]) != 0xFFFFFFFF:
        domid = int(op._domid[0])
    if domid is not None:
        try:
            ctx.destroy(domid)
        except PyxenError:
            pass                    # libxl destroyed it already (a failed creation)
