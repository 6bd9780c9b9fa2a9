"""pyxen.devicemodel: acting as an HVM domain's device model through libxendevicemodel
(privcmd's DM_OP).

``with pyxen.devicemodel.open() as dm:`` gives a :class:`DeviceModel`: create, enable and
destroy ioreq servers and route I/O port ranges, MMIO ranges and PCI devices to them; raise
and lower ISA, PCI INTx and GSI lines; inject an MSI; track dirty VRAM, mark memory modified;
shut the domain down; relocate or pin memory.

:class:`IoreqServer` is a small ioreq server in Python: it creates a server for a domain,
maps its request page (``xenforeignmemory_map_resource``), binds each vCPU's event channel,
and :meth:`~IoreqServer.serve` loops: wait for an event, take the vCPU's request (state
IOREQ_READY, then a read barrier), call a Python handler with an :class:`Ioreq`, write the
answer back (a write barrier, then STATE_IORESP_READY) and notify the vCPU.

Failed calls raise :class:`pyxen.errors.DeviceModelError` subclasses (a bad domain
DeviceModelDomainError, a bad server id IoreqServerNotFound); arguments out of range are
ArgumentError before any call.
"""

from __future__ import annotations

import enum
import errno as _errno
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from . import evtchn as _evtchn
from . import foreignmemory as _fmem
from ._log import XtlLogger
from ._mapped import PAGE_SIZE, StableHandle
from ._native import require_dom0, xen
from .errors import (ArgumentError, ArgumentTypeError, DeviceModelDomainError,
                     DeviceModelError, DeviceModelInvalidError, DeviceModelPermissionError,
                     HandleClosedError, IoreqServerNotFound, XenUnavailableError,
                     check_devicemodel)

__all__ = ["open", "DeviceModel", "IoreqServer", "Ioreq", "IoreqType", "BufIoreq",
           "CacheAttr", "DeviceModelError", "DeviceModelDomainError",
           "DeviceModelInvalidError", "DeviceModelPermissionError", "IoreqServerNotFound"]


class BufIoreq(enum.IntEnum):
    """``HVM_IOREQSRV_BUFIOREQ_*``: whether a new ioreq server has a buffered-request ring."""

    OFF = 0
    LEGACY = 1
    ATOMIC = 2


class IoreqType(enum.IntEnum):
    """``IOREQ_TYPE_*`` (xen/hvm/ioreq.h): what an :class:`Ioreq` asks for."""

    PIO = 0
    COPY = 1          # MMIO
    PCI_CONFIG = 2
    TIMEOFFSET = 7
    INVALIDATE = 8


class CacheAttr(enum.IntEnum):
    """``XEN_DMOP_MEM_CACHEATTR_*`` for :meth:`DeviceModel.pin_memory_cacheattr`."""

    UC = 0
    WC = 1
    WT = 4
    WP = 5
    WB = 6
    UCM = 7


def open() -> DeviceModel:  # noqa: A001 - the module's verb, as pyxen.ctrl.open
    """Open libxendevicemodel (a dom0, or a domain allowed to be a device model)."""
    require_dom0("libxendevicemodel")
    return DeviceModel()


def _int(name: str, value: object, bits: int) -> int:
    """An unsigned C argument of ``bits`` bits, or ArgumentError before the call."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value < (1 << bits):
        raise ArgumentError(f"{name} {value} out of range (0..{(1 << bits) - 1})")
    return value


def _dom(domid: object) -> int:
    return _int("domid", domid, 16)


def _sid(server: object) -> int:
    return _int("server", server, 16)


@dataclass(frozen=True)
class IoreqServerInfo:
    """What :meth:`DeviceModel.ioreq_server_info` reports: the guest frames of the request
    pages (0 unless asked for, the legacy way of mapping them) and the buffered ring's port."""

    ioreq_gfn: int
    bufioreq_gfn: int
    bufioreq_port: int | None


class DeviceModel(StableHandle):
    """A libxendevicemodel handle."""

    def __init__(self) -> None:
        ffi, lib = self._ffi_lib = xen()
        log = XtlLogger("pyxen.devicemodel")
        raw = lib.xendevicemodel_open(log.ptr, 0)
        if raw == ffi.NULL:
            err = ffi.errno
            if err in (_errno.ENOENT, _errno.ENODEV, _errno.ENXIO):
                raise XenUnavailableError(f"cannot open /dev/xen/privcmd ({os.strerror(err)})")
            check_devicemodel(-1, "xendevicemodel_open", err=err)
        self._open_core(ffi, raw, lib.xendevicemodel_close, keep=log)

    def _call(self, name: str, *args: Any, domid: int | None = None,
              server: int | None = None) -> int:
        rc = getattr(self._ffi_lib[1], name)(self._p(), *args)  # holds the handle open
        return rc if rc >= 0 else check_devicemodel(rc, name, domid, server)

    # ioreq servers
    def create_ioreq_server(self, domid: int, bufioreq: int = BufIoreq.OFF) -> int:
        """A new (disabled) ioreq server for HVM domain ``domid``; returns its id."""
        ffi, _ = self._ffi_lib
        d = _dom(domid)
        out = ffi.new("ioservid_t *")
        self._call("xendevicemodel_create_ioreq_server", d, _int("bufioreq", int(bufioreq), 8),
                   out, domid=d)
        return int(out[0])

    def ioreq_server_info(self, domid: int, server: int, *,
                          gfns: bool = False) -> IoreqServerInfo:
        """The server's buffered-ring port; with ``gfns=True`` also the guest frames of its
        pages (which makes Xen put them into the guest's physmap: the legacy way; prefer
        ``foreignmemory.map_resource``)."""
        ffi, _ = self._ffi_lib
        d, s = _dom(domid), _sid(server)
        g1, g2 = (ffi.new("xen_pfn_t *"), ffi.new("xen_pfn_t *")) if gfns else (ffi.NULL,
                                                                              ffi.NULL)
        port = ffi.new("evtchn_port_t *")
        self._call("xendevicemodel_get_ioreq_server_info", d, s, g1, g2, port, domid=d,
                   server=s)
        return IoreqServerInfo(int(g1[0]) if gfns else 0, int(g2[0]) if gfns else 0,
                               int(port[0]) or None)

    def set_ioreq_server_state(self, domid: int, server: int, enabled: bool) -> None:
        """Enable (I/O is sent to it) or disable the server."""
        d, s = _dom(domid), _sid(server)
        self._call("xendevicemodel_set_ioreq_server_state", d, s, int(bool(enabled)),
                   domid=d, server=s)

    def destroy_ioreq_server(self, domid: int, server: int) -> None:
        """Destroy the server (its ranges go with it)."""
        d, s = _dom(domid), _sid(server)
        self._call("xendevicemodel_destroy_ioreq_server", d, s, domid=d, server=s)

    def map_io_range(self, domid: int, server: int, start: int, end: int, *,
                     mmio: bool = False) -> None:
        """Send the guest's accesses to ports (or, ``mmio=True``, guest physical addresses)
        ``start``..``end`` (inclusive) to the server."""
        d, s = _dom(domid), _sid(server)
        lo, hi = _int("start", start, 64), _int("end", end, 64)
        if hi < lo:
            raise ArgumentError(f"end {hi:#x} before start {lo:#x}")
        self._call("xendevicemodel_map_io_range_to_ioreq_server", d, s, int(mmio), lo, hi,
                   domid=d, server=s)

    def unmap_io_range(self, domid: int, server: int, start: int, end: int, *,
                       mmio: bool = False) -> None:
        """Undo :meth:`map_io_range` for the same range."""
        d, s = _dom(domid), _sid(server)
        self._call("xendevicemodel_unmap_io_range_from_ioreq_server", d, s, int(mmio),
                   _int("start", start, 64), _int("end", end, 64), domid=d, server=s)

    def map_pcidev(self, domid: int, server: int, segment: int, bus: int, device: int,
                   function: int) -> None:
        """Send PCI config-space accesses to ``segment:bus:device.function`` to the server
        (they arrive as IoreqType.PCI_CONFIG, ``addr`` = SBDF << 32 | register)."""
        d, s = _dom(domid), _sid(server)
        self._call("xendevicemodel_map_pcidev_to_ioreq_server", d, s, *_sbdf(
            segment, bus, device, function), domid=d, server=s)

    def unmap_pcidev(self, domid: int, server: int, segment: int, bus: int, device: int,
                     function: int) -> None:
        """Undo :meth:`map_pcidev`."""
        d, s = _dom(domid), _sid(server)
        self._call("xendevicemodel_unmap_pcidev_from_ioreq_server", d, s, *_sbdf(
            segment, bus, device, function), domid=d, server=s)

    # interrupts
    def set_isa_irq_level(self, domid: int, irq: int, level: int) -> None:
        """Raise (1) or lower (0) ISA IRQ line ``irq`` (0..15)."""
        d = _dom(domid)
        self._call("xendevicemodel_set_isa_irq_level", d, _int("irq", irq, 8),
                   _int("level", level, 1), domid=d)

    def set_pci_intx_level(self, domid: int, segment: int, bus: int, device: int,
                           intx: int, level: int) -> None:
        """Raise or lower INTx (0=A .. 3=D) of PCI device ``segment:bus:device``."""
        d = _dom(domid)
        seg, b, dev, _ = _sbdf(segment, bus, device, 0)
        self._call("xendevicemodel_set_pci_intx_level", d, seg, b, dev, _int("intx", intx, 2),
                   _int("level", level, 1), domid=d)

    def set_irq_level(self, domid: int, irq: int, level: int) -> None:
        """Raise or lower GSI ``irq`` (an IO-APIC pin)."""
        d = _dom(domid)
        self._call("xendevicemodel_set_irq_level", d, _int("irq", irq, 32),
                   _int("level", level, 1), domid=d)

    def set_pci_link_route(self, domid: int, link: int, irq: int) -> None:
        """Route PCI interrupt link ``link`` (0..3) to ISA IRQ ``irq`` (0 disables)."""
        d = _dom(domid)
        self._call("xendevicemodel_set_pci_link_route", d, _int("link", link, 2),
                   _int("irq", irq, 4), domid=d)

    def inject_msi(self, domid: int, addr: int, data: int) -> None:
        """Inject an MSI (address, data) into the domain."""
        d = _dom(domid)
        self._call("xendevicemodel_inject_msi", d, _int("addr", addr, 64),
                   _int("data", data, 32), domid=d)

    # memory
    def track_dirty_vram(self, domid: int, first_pfn: int, nr: int) -> list[int]:
        """Start (or continue) tracking writes to ``nr`` frames from ``first_pfn`` (the
        VRAM); returns the frames written since the last call (``nr=0`` stops tracking)."""
        ffi, _ = self._ffi_lib
        d = _dom(domid)
        n = _int("nr", nr, 20)  # the hypervisor's limit is 1 GiB of VRAM
        bits = ffi.sizeof("unsigned long") * 8
        bitmap = ffi.new("unsigned long[]", max(1, -(-n // bits)))
        # always a real buffer: libxendevicemodel bounces it even for nr=0 (NULL: EFAULT)
        self._call("xendevicemodel_track_dirty_vram", d, _int("first_pfn", first_pfn, 64), n,
                   bitmap, domid=d)
        return [first_pfn + i for i in range(n) if bitmap[i // bits] >> (i % bits) & 1]

    def modified_memory(self, domid: int, first_pfn: int, nr: int) -> None:
        """Tell Xen the device model wrote ``nr`` frames from ``first_pfn`` (for log-dirty
        tracking, e.g. during migration)."""
        d = _dom(domid)
        self._call("xendevicemodel_modified_memory", d, _int("first_pfn", first_pfn, 64),
                   _int("nr", nr, 32), domid=d)

    def relocate_memory(self, domid: int, size: int, src_gfn: int, dst_gfn: int) -> None:
        """Move ``size`` frames of guest memory from ``src_gfn`` to ``dst_gfn``."""
        d = _dom(domid)
        self._call("xendevicemodel_relocate_memory", d, _int("size", size, 32),
                   _int("src_gfn", src_gfn, 64), _int("dst_gfn", dst_gfn, 64), domid=d)

    def pin_memory_cacheattr(self, domid: int, start: int, end: int, type: int) -> None:  # noqa: A002
        """Pin the cache attribute (:class:`CacheAttr`) of frames ``start``..``end``."""
        d = _dom(domid)
        self._call("xendevicemodel_pin_memory_cacheattr", d, _int("start", start, 64),
                   _int("end", end, 64), _int("type", int(type), 32), domid=d)

    # the domain
    def shutdown(self, domid: int, reason: int) -> None:
        """Shut the domain down with ``reason`` (``SHUTDOWN_*``: 0 poweroff, 1 reboot,
        3 crash ...), as a device model does when the guest asks its firmware to."""
        d = _dom(domid)
        self._call("xendevicemodel_shutdown", d, _int("reason", int(reason), 32), domid=d)

    def nr_vcpus(self, domid: int) -> int:
        """How many vCPUs the domain has (each has a request slot)."""
        ffi, _ = self._ffi_lib
        d = _dom(domid)
        out = ffi.new("unsigned int *")
        self._call("xendevicemodel_nr_vcpus", d, out, domid=d)
        return int(out[0])

    def restrict(self, domid: int) -> None:
        """Restrict this handle to calls about domain ``domid`` (cannot be undone)."""
        d = _dom(domid)
        self._call("xendevicemodel_restrict", d, domid=d)


def _sbdf(segment: int, bus: int, device: int, function: int) -> tuple[int, int, int, int]:
    return (_int("segment", segment, 16), _int("bus", bus, 8), _int("device", device, 5),
            _int("function", function, 3))


@dataclass(frozen=True)
class Ioreq:
    """One request of a guest vCPU: ``type`` (:class:`IoreqType`), ``addr`` (a port, a
    guest physical address, or for PCI_CONFIG ``SBDF << 32 | register``), ``size`` in
    bytes, ``count`` (rep prefix), ``read`` (else a write of ``data``), ``data_is_ptr``
    (``data`` is then the guest address of the items), ``df`` (direction flag)."""

    vcpu: int
    type: int
    addr: int
    size: int
    count: int
    read: bool
    data: int
    data_is_ptr: bool
    df: bool

    @property
    def sbdf(self) -> int:
        """For PCI_CONFIG: segment << 16 | bus << 8 | device << 3 | function."""
        return self.addr >> 32

    @property
    def register(self) -> int:
        """For PCI_CONFIG: the config-space register (offset)."""
        return self.addr & 0xFFF


#: a handler answers a read with the value (None: all ones, as an absent device reads);
#: what it returns for a write is ignored
Handler = Callable[[Ioreq], "int | None"]
_HANDLED = (IoreqType.PIO, IoreqType.COPY, IoreqType.PCI_CONFIG)


class IoreqServer:
    """An ioreq server for HVM domain ``domid`` served by Python: created (disabled) with
    :meth:`map_io_range`/:meth:`map_pcidev` to say what it serves, :meth:`enable`, then
    :meth:`serve` (or :meth:`serve_one`) with a handler. ``close()`` (or the ``with``
    block's end) destroys the server and unbinds and unmaps what it used. Rep string
    accesses (``data_is_ptr``) are copied to and from guest memory through a foreign map.
    """

    def __init__(self, domid: int, *, dm: DeviceModel | None = None, vcpus: int | None = None):
        ffi, lib = self._ffi_lib = xen()
        self.domid = _dom(domid)
        self._own_dm = dm is None
        self.dm = dm if dm is not None else open()
        self._lock = threading.Lock()
        self._closed = False
        self.fm: _fmem.ForeignMemory | None = None
        self.ev: _evtchn.EventChannel | None = None
        self.page: Any = None
        self._ptr: Any = None
        try:
            n = vcpus if vcpus is not None else self.dm.nr_vcpus(self.domid)
            most = PAGE_SIZE // ffi.sizeof("ioreq_t")  # the slots one request page holds
            self.vcpus = _int("vcpus", n, 16)
            if not 1 <= self.vcpus <= most:
                raise ArgumentError(f"vcpus {n}: an ioreq page has 1..{most} slots")
            self.id = self.dm.create_ioreq_server(self.domid, BufIoreq.OFF)
        except BaseException:
            if self._own_dm:
                self.dm.close()
            raise
        try:
            self.fm = _fmem.open()
            self.page = self.fm.map_resource(self.domid, _fmem.Resource.IOREQ_SERVER, self.id,
                                             lib.pyxen_ioreq_frame, 1, writable=True)
            self._ptr = ffi.from_buffer(self.page.buffer)
            self._slots = ffi.cast("ioreq_t *", self._ptr)
            self.ev = _evtchn.open()
            self._vcpu_of: dict[int, int] = {}
            self._port_of: list[int] = []
            self._req = ffi.new("ioreq_t *")
        except BaseException:
            self.close()
            raise

    def map_io_range(self, start: int, end: int, *, mmio: bool = False) -> None:
        """Serve ports (or MMIO addresses) ``start``..``end`` (inclusive)."""
        self.dm.map_io_range(self.domid, self.id, start, end, mmio=mmio)

    def map_pcidev(self, segment: int, bus: int, device: int, function: int) -> None:
        """Serve the config space of PCI device ``segment:bus:device.function``."""
        self.dm.map_pcidev(self.domid, self.id, segment, bus, device, function)

    def enable(self) -> None:
        """Enable the server and bind each vCPU's event channel: requests start arriving."""
        self._live()
        self.dm.set_ioreq_server_state(self.domid, self.id, True)
        assert self.ev is not None
        for vcpu in range(len(self._port_of), self.vcpus):
            remote = int(self._slots[vcpu].vp_eport)
            local = self.ev.bind_interdomain(self.domid, remote)
            self._vcpu_of[local] = vcpu
            self._port_of.append(local)

    def _live(self) -> None:
        if self._closed:
            raise HandleClosedError(self)

    def serve_one(self, handler: Handler, timeout: float | None = None) -> Ioreq | None:
        """Wait up to ``timeout`` s for one event; if it brought a request, answer it with
        ``handler`` and return it (else None)."""
        self._live()
        ev = self.ev
        assert ev is not None
        port = ev.wait(timeout)
        if port is None:
            return None
        vcpu = self._vcpu_of.get(port)
        if vcpu is None:
            return None
        return self._handle(handler, vcpu, port)

    def _handle(self, handler: Handler, vcpu: int, port: int) -> Ioreq | None:
        _, lib = self._ffi_lib
        r = self._req
        with self._lock:
            self._live()
            if not lib.pyxen_ioreq_take(self._ptr, vcpu, r):
                return None  # a spurious event (a new binding starts pending)
        req = Ioreq(vcpu, int(r.type), int(r.addr), int(r.size), int(r.count),
                    r.dir == lib.IOREQ_READ, int(r.data), bool(r.data_is_ptr), bool(r.df))
        data = 0
        try:
            if req.type in _HANDLED:
                data = self._dispatch(handler, req)
        finally:
            with self._lock:
                if not self._closed:
                    lib.pyxen_ioreq_respond(self._ptr, vcpu, data)
                    assert self.ev is not None
                    self.ev.notify(port)
        return req

    def _dispatch(self, handler: Handler, req: Ioreq) -> int:
        mask = (1 << (8 * req.size)) - 1 if 0 < req.size <= 8 else (1 << 64) - 1
        if not req.data_is_ptr:
            value = handler(req)
            return (mask if value is None else int(value)) & mask if req.read else 0
        # rep ins/outs or movs: count items of size bytes at guest address data
        step = -req.size if req.df else req.size
        for i in range(req.count):
            gpa = req.data + i * step
            item = Ioreq(req.vcpu, req.type, req.addr + (i * step if req.type ==
                                                         IoreqType.COPY else 0),
                         req.size, 1, req.read, 0, False, req.df)
            if req.read:
                value = handler(item)
                v = (mask if value is None else int(value)) & mask
                self._guest_write(gpa, v.to_bytes(req.size, "little"))
            else:
                v = int.from_bytes(self._guest_read(gpa, req.size), "little")
                handler(Ioreq(item.vcpu, item.type, item.addr, item.size, 1, False, v, False,
                              item.df))
        return 0

    def _guest_map(self, gpa: int, size: int) -> Any:
        assert self.fm is not None
        first, last = gpa >> 12, (gpa + size - 1) >> 12
        return self.fm.map(self.domid, list(range(first, last + 1)), writable=True)

    def _guest_read(self, gpa: int, size: int) -> bytes:
        with self._guest_map(gpa, size) as m:
            return m.read(gpa & 0xFFF, size)

    def _guest_write(self, gpa: int, data: bytes) -> None:
        with self._guest_map(gpa, len(data)) as m:
            m.write(data, gpa & 0xFFF)

    def serve(self, handler: Handler, *, until: Callable[[], bool] | None = None,
              timeout: float | None = None, poll: float = 0.5) -> int:
        """Answer requests with ``handler`` until ``until()`` is true (checked after each
        request and every ``poll`` s) or ``timeout`` s pass; returns how many were served."""
        end = None if timeout is None else time.monotonic() + timeout
        n = 0
        while not (until is not None and until()):
            left = poll if end is None else min(poll, end - time.monotonic())
            if left <= 0:
                break
            if self.serve_one(handler, left) is not None:
                n += 1
        return n

    def close(self) -> None:
        """Destroy the server, unbind its ports, unmap its page (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        ffi, _ = self._ffi_lib
        try:
            if self.ev is not None:
                self.ev.close()
            if self._ptr is not None:
                ffi.release(self._ptr)
                self._ptr = None
            if self.page is not None:
                self.page.unmap()
            if self.fm is not None:
                self.fm.close()
            try:
                self.dm.destroy_ioreq_server(self.domid, self.id)
            except (DeviceModelDomainError, IoreqServerNotFound):
                pass  # the domain (and its servers) already went
        finally:
            if self._own_dm:
                self.dm.close()

    @property
    def closed(self) -> bool:
        """True once ``close()`` has started."""
        return self._closed

    def __enter__(self) -> IoreqServer:
        self._live()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"server {getattr(self, 'id', '?')}"
        return f"<pyxen.devicemodel.IoreqServer domain {self.domid} {state}>"

