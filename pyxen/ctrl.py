"""pyxen.ctrl: hypercall control of the host and its domains through libxenctrl."""

from __future__ import annotations

import atexit
import enum
import re
import weakref
import errno as _errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

from . import _interrupt
from ._handle import Handle
from ._log import XtlLogger
from ._native import check_hypervisor, require_dom0, xen
from .types import ShutdownReason, state_letters
from .errors import (NoSuchDomainError, PyxenError, XenArgumentTypeError,  # noqa: F401
                     XenCtrlError, XenDomainExistsError, XenError, XenInvalidArgumentError,
                     XenOutOfMemoryError, XenPermissionError, XenUnavailableError,
                     check_xenctrl, xenctrl_error)

if TYPE_CHECKING:
    from uuid import UUID

    from ._xen import FFI

PAGE_KB = 4


# the exception classes live in pyxen.errors; these names stay importable from here
_error = xenctrl_error


def _check(xc: object, rc: int, call: str, domid: int | None = None) -> int:
    """``errors.check_xenctrl`` under its old name (``xc`` is no longer read: the errno is
    this thread's, saved by cffi right after the call, not the handle's shared last
    error)."""
    return check_xenctrl(rc, call, domid)


def _vcpu(vcpu: int, call: str, domid: int) -> int:
    if isinstance(vcpu, bool) or not isinstance(vcpu, int) or not 0 <= vcpu < 2**31:
        raise _error(_errno.EINVAL, call, domid, detail=f"bad vcpu number {vcpu!r}")
    return vcpu


def _domid(domid: int, call: str, *, allow_self: bool = False) -> int:
    """Validate a domain id before it reaches C (libxenctrl truncates to 16 bits)."""
    if isinstance(domid, bool) or not isinstance(domid, int):
        raise XenArgumentTypeError(_errno.EINVAL, call=call,
                                   detail=f"domid must be an int, not {type(domid).__name__}")
    if not 0 <= domid < DOMID_FIRST_RESERVED and not (allow_self and domid == DOMID_SELF):
        raise _error(_errno.EINVAL, call, domid,
                     detail=f"domid must be 0..{DOMID_FIRST_RESERVED - 1}")
    return domid


class VirtCaps(enum.IntFlag):
    """Xen's XEN_SYSCTL_PHYSCAP_* bits, as ``xl info`` prints them in ``virt_caps``."""

    HVM = 1 << 0
    PV = 1 << 1
    DIRECTIO = 1 << 2
    HAP = 1 << 3
    SHADOW = 1 << 4
    IOMMU_HAP_PT_SHARE = 1 << 5
    VMTRACE = 1 << 6
    VPMU = 1 << 7
    GNTTAB_V1 = 1 << 8
    GNTTAB_V2 = 1 << 9

    def xl_names(self) -> list[str]:
        """The words of ``xl info``'s virt_caps line, in xl's order."""
        v = self.value
        pv, hvm, d = v & 2, v & 1, v & 4
        words = [("pv", pv), ("hvm", hvm), ("hvm_directio", hvm and d),
                 ("pv_directio", pv and d), ("hap", v & 8), ("shadow", v & 16),
                 ("iommu_hap_pt_share", v & 32), ("vmtrace", v & 64), ("vpmu", v & 128),
                 ("gnttab-v1", v & 256), ("gnttab-v2", v & 512)]
        return [w for w, on in words if on]

    @property
    def hvm_capable(self) -> bool:
        """Xen can run HVM guests here (VT-x/AMD-V present, enabled, and used by Xen)."""
        return VirtCaps.HVM in self

    @property
    def hap_capable(self) -> bool:
        """Hardware-assisted paging (EPT/NPT) for HVM guests."""
        return VirtCaps.HAP in self


@dataclass(frozen=True)
class XenVersion:
    major: int
    minor: int
    extra: str
    changeset: str
    compiler: str
    compile_by: str
    compile_domain: str
    compile_date: str
    capabilities: tuple[str, ...]
    commandline: str
    pagesize: int

    @property
    def release(self) -> str:
        """``4.17.7-pre``-style string, as ``xl info`` prints in xen_version."""
        return f"{self.major}.{self.minor}{self.extra}"

    def __str__(self) -> str:
        return self.release


@dataclass(frozen=True)
class PhysInfo:
    nr_cpus: int
    max_cpu_id: int
    threads_per_core: int
    cores_per_socket: int
    nr_nodes: int
    max_node_id: int
    cpu_khz: int
    total_memory_kb: int
    free_memory_kb: int
    scrub_memory_kb: int
    outstanding_memory_kb: int
    max_mfn: int
    hw_caps: tuple[int, ...]
    virt_caps: VirtCaps

    @property
    def sockets(self) -> int:
        """Number of CPU sockets."""
        per = max(1, self.threads_per_core * self.cores_per_socket)
        return max(1, self.nr_cpus // per)

    @property
    def total_memory_mb(self) -> int:
        """Host memory in MiB (``xl info``'s total_memory)."""
        return self.total_memory_kb // 1024

    @property
    def free_memory_mb(self) -> int:
        """Free host memory in MiB (``xl info``'s free_memory)."""
        return self.free_memory_kb // 1024


# ShutdownReason is pyxen.types.ShutdownReason (imported above), shared with light and guest

class Scheduler(enum.IntEnum):
    """XEN_SCHEDULER_* (xen/domctl.h), as ``xc_sched_id`` returns it."""

    CREDIT = 5
    CREDIT2 = 6
    ARINC653 = 7
    RTDS = 8
    NULL = 9

    @property
    def xl_name(self) -> str:
        """The name ``xl info`` prints in ``xen_scheduler``."""
        return self.name.lower()


class CreateFlags(enum.IntFlag):
    """XEN_DOMCTL_CDF_* (xen/domctl.h): flags of ``xen_domctl_createdomain``."""

    HVM = 1 << 0
    HAP = 1 << 1
    S3_INTEGRITY = 1 << 2
    OOS_OFF = 1 << 3
    XS_DOMAIN = 1 << 4
    IOMMU = 1 << 5
    NESTED_VIRT = 1 << 6
    VPMU = 1 << 7


class DomainFlags(enum.IntFlag):
    """XEN_DOMINF_* (xen/domctl.h), the low bits of getdomaininfo's ``flags``."""

    DYING = 1 << 0
    HVM_GUEST = 1 << 1
    SHUTDOWN = 1 << 2
    PAUSED = 1 << 3
    BLOCKED = 1 << 4
    RUNNING = 1 << 5
    DEBUGGED = 1 << 6
    XS_DOMAIN = 1 << 7
    HAP = 1 << 8


class Affinity(enum.IntFlag):
    """XEN_VCPUAFFINITY_* (xen/domctl.h)."""

    HARD = 1 << 0
    SOFT = 1 << 1
    FORCE = 1 << 2


DOMID_FIRST_RESERVED = 0x7FF0
DOMID_SELF = 0x7FF0
DOMID_INVALID = 0x7FF4
XEN_INVALID_MAX_VCPU_ID = 0xFFFFFFFF
MAXMEM_SLACK_KB = 1024  # LIBXL_MAXMEM_CONSTANT: what xl mem-set adds to max over target

# Python-side values of the header constants above, checked against the compiled ones
# (lib.<NAME>, filled in by the C compiler) by tests/host/test_ctrl_consts.py.
HEADER_CONSTANTS = {
    **{f"SHUTDOWN_{str(m.name).lower()}": m.value for m in ShutdownReason},
    **{f"XEN_SCHEDULER_{m.name}": m.value for m in Scheduler},
    **{f"XEN_DOMCTL_CDF_{str(m.name).lower()}": m.value for m in CreateFlags},
    **{f"XEN_DOMINF_{str(m.name).lower()}": m.value for m in DomainFlags},
    **{f"XEN_VCPUAFFINITY_{m.name}": m.value for m in Affinity},
    **{f"XEN_SYSCTL_PHYSCAP_{str(m.name).lower()}": m.value for m in VirtCaps},
    "DOMID_FIRST_RESERVED": DOMID_FIRST_RESERVED, "DOMID_SELF": DOMID_SELF,
    "DOMID_INVALID": DOMID_INVALID, "XEN_INVALID_MAX_VCPU_ID": XEN_INVALID_MAX_VCPU_ID,
}


@dataclass(frozen=True)
class DomainInfo:
    """One domain as ``xc_domain_getinfolist`` reports it (memory in kB, time in ns)."""

    domid: int
    uuid: str
    flags: DomainFlags
    hvm: bool
    hap: bool
    dying: bool
    shutdown: bool
    paused: bool
    blocked: bool
    running: bool
    shutdown_reason: ShutdownReason | int | None
    memory_kb: int
    max_memory_kb: int
    outstanding_kb: int
    shared_kb: int
    online_vcpus: int
    max_vcpu_id: int | None
    cpu_time_ns: int
    cpupool: int
    ssidref: int

    @property
    def crashed(self) -> bool:
        """Shut down with reason crash."""
        return self.shutdown and self.shutdown_reason == ShutdownReason.CRASH

    @property
    def max_vcpus(self) -> int:
        """The number of vCPUs the domain may have (max_vcpu_id + 1)."""
        return 0 if self.max_vcpu_id is None else self.max_vcpu_id + 1

    @property
    def type(self) -> str:
        """"hvm" or "pv" (PVH domains are HVM containers without a device model)."""
        return "hvm" if self.hvm else "pv"

    @property
    def state(self) -> str:
        """The six State letters exactly as ``xl list`` prints them: r b p s, then the
        shutdown reason's letter (- r s c w S for poweroff/reboot/suspend/crash/watchdog/
        soft_reset), then d."""
        return state_letters(running=self.running, blocked=self.blocked, paused=self.paused,
                             shutdown=self.shutdown, reason=self.shutdown_reason,
                             dying=self.dying)

    @property
    def cpu_time_s(self) -> float:
        """CPU time in seconds."""
        return self.cpu_time_ns / 1e9


@dataclass(frozen=True)
class VcpuInfo:
    """One vCPU (``xc_vcpu_getinfo``)."""

    vcpu: int
    online: bool
    blocked: bool
    running: bool
    cpu_time_ns: int
    cpu: int | None  # the physical CPU it last ran on; None when offline

    @property
    def state(self) -> str:
        """``xl vcpu-list``'s State letters (r b p are running, blocked, domain paused)."""
        return ("r" if self.running else "-") + ("b" if self.blocked else "-")


@dataclass(frozen=True)
class VcpuAffinity:
    """Hard and soft affinity of one vCPU, as sets of physical CPU numbers."""

    hard: frozenset[int]
    soft: frozenset[int]


def _uuid(raw: bytes) -> str:
    h = raw.hex()
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


_FLAGS_CACHE: dict[int, DomainFlags] = {}
_DOMINFO_NEW = object.__new__
# XEN_DOMINF_* bit values (checked against the headers by HEADER_CONSTANTS' tests)
_DYING, _HVM, _SHUT, _PAUSED, _BLOCKED, _RUNNING, _HAP = (
    DomainFlags.DYING.value, DomainFlags.HVM_GUEST.value, DomainFlags.SHUTDOWN.value,
    DomainFlags.PAUSED.value, DomainFlags.BLOCKED.value, DomainFlags.RUNNING.value,
    DomainFlags.HAP.value)


def _domaininfo(ffi: FFI, d: Any) -> DomainInfo:
    """getdomaininfo → DomainInfo. Hot path of domains(): no enum construction or
    frozen-dataclass __setattr__ per field (the instance dict is filled directly)."""
    f = d.flags
    low = f & 0x1FF
    flags = _FLAGS_CACHE.get(low)
    if flags is None:
        flags = _FLAGS_CACHE[low] = DomainFlags(low)
    shut = bool(f & _SHUT)
    reason = None
    if shut:
        code = (f >> 16) & 0xFF  # XEN_DOMINF_shutdownshift / shutdownmask
        try:
            reason = ShutdownReason(code)
        except ValueError:
            reason = code
    mvid = d.max_vcpu_id
    info = _DOMINFO_NEW(DomainInfo)
    info.__dict__.update(
        domid=d.domain, uuid=_uuid(ffi.buffer(d.handle)[:]), flags=flags,
        hvm=bool(f & _HVM), hap=bool(f & _HAP), dying=bool(f & _DYING), shutdown=shut,
        paused=bool(f & _PAUSED), blocked=bool(f & _BLOCKED), running=bool(f & _RUNNING),
        shutdown_reason=reason, memory_kb=d.tot_pages * PAGE_KB,
        max_memory_kb=d.max_pages * PAGE_KB, outstanding_kb=d.outstanding_pages * PAGE_KB,
        shared_kb=d.shr_pages * PAGE_KB, online_vcpus=d.nr_online_vcpus,
        max_vcpu_id=None if mvid == XEN_INVALID_MAX_VCPU_ID else mvid,
        cpu_time_ns=d.cpu_time, cpupool=d.cpupool, ssidref=d.ssidref)
    return info


def _parse_uuid(value: str | bytes | bytearray | UUID | None) -> bytes:
    import uuid as _uuidmod
    if value is None:
        return _uuidmod.uuid4().bytes
    if isinstance(value, (bytes, bytearray)) and len(value) == 16:
        return bytes(value)
    if isinstance(value, _uuidmod.UUID):
        return value.bytes
    if not isinstance(value, str):
        raise XenInvalidArgumentError(_errno.EINVAL, call="xc_domain_create",
                                      detail=f"a uuid is a str, UUID or 16 bytes, not "
                                             f"{type(value).__name__}")
    # UUID()'s own forms (braces, urn:uuid:, dashes anywhere), but hex digits only: the
    # int(.., 16) inside UUID() would also take Unicode digits, "_", blanks and a sign
    m = re.fullmatch(r"(?:urn:uuid:)?(\{)?([0-9a-fA-F-]+)(?(1)\})", value)
    digits = m.group(2).replace("-", "") if m else ""
    if len(digits) != 32:
        raise XenInvalidArgumentError(_errno.EINVAL, call="xc_domain_create",
                                      detail=f"invalid uuid {value[:40]!r}")
    return bytes.fromhex(digits)


def _has(name: str) -> bool:
    try:
        return hasattr(xen()[1], name)
    except PyxenError:
        return False


_HAS_GETINFO_SINGLE: bool | None = None  # set on first Ctrl.domain() call


_OPEN_HANDLES: "weakref.WeakSet[Ctrl]" = weakref.WeakSet()


@atexit.register
def _close_open_handles() -> None:
    """Close handles still open at exit, while their xentoollog loggers (and Python) are
    intact: left to interpreter teardown, a logger could be freed before the
    ``xc_interface`` that writes to it."""
    for h in list(_OPEN_HANDLES):
        try:
            h.close()
        except Exception:  # noqa: BLE001 - exiting anyway
            pass


class Ctrl(Handle):
    """An open libxenctrl interface (``xc_interface``)."""

    def __init__(self) -> None:
        require_dom0("libxenctrl")
        ffi, lib = xen()
        self._log = XtlLogger("pyxen.xenctrl")
        raw = lib.xc_interface_open(self._log.ptr, self._log.ptr, 0)
        if raw == ffi.NULL:
            err = ffi.errno
            self._log.destroy()
            raise _error(err or _errno.EIO, "xc_interface_open",
                         detail="are you root in a Xen dom0?")
        log = self._log

        def _close(p: Any, _close: Callable[[Any], object] = lib.xc_interface_close,
                   _log: XtlLogger = log) -> None:
            _close(p)       # the logger stays alive until the interface is closed ...
            _log.destroy()  # ... and is freed after it

        self._adopt(ffi, raw, _close)
        self._cpumap_bytes = 0
        _OPEN_HANDLES.add(self)
        # libxenctrl's domctl/sysctl ABI is per release: refuse a hypervisor of another one.
        v = lib.xc_version(raw, lib.XENVER_version, ffi.NULL)
        if v >= 0:
            try:
                check_hypervisor(v >> 16, v & 0xFFFF)
            except XenUnavailableError:
                self.close()
                raise

    # -- host ---------------------------------------------------------------------------

    def _version_str(self, cmd: int, ctype: str) -> str:
        ffi, lib = xen()
        buf = ffi.new(ctype)
        _check(self, lib.xc_version(self._p(), cmd, buf), "xc_version")
        return ffi.string(ffi.cast("char *", buf)).decode("utf-8", "replace")

    def version(self) -> XenVersion:
        """``xc_version``: the hypervisor's (major, minor, extra)."""
        ffi, lib = xen()
        v = _check(self, lib.xc_version(self._p(), lib.XENVER_version, ffi.NULL), "xc_version")
        ci = ffi.new("xen_compile_info_t *")
        _check(self, lib.xc_version(self._p(), lib.XENVER_compile_info, ci), "xc_version")
        pagesize = _check(self, lib.xc_version(self._p(), lib.XENVER_pagesize, ffi.NULL),
                          "xc_version")

        def s(field: Any) -> str:
            return ffi.string(field).decode("utf-8", "replace")

        return XenVersion(
            major=v >> 16, minor=v & 0xFFFF,
            extra=self._version_str(lib.XENVER_extraversion, "xen_extraversion_t"),
            changeset=self._version_str(lib.XENVER_changeset, "xen_changeset_info_t"),
            compiler=s(ci.compiler), compile_by=s(ci.compile_by),
            compile_domain=s(ci.compile_domain), compile_date=s(ci.compile_date),
            capabilities=tuple(self._version_str(lib.XENVER_capabilities,
                                                 "xen_capabilities_info_t").split()),
            commandline=self._version_str(lib.XENVER_commandline, "xen_commandline_t"),
            pagesize=pagesize)

    def physinfo(self) -> PhysInfo:
        """``xc_physinfo``: the host's CPUs, memory and capabilities."""
        ffi, lib = xen()
        p = ffi.new("xc_physinfo_t *")
        _check(self, lib.xc_physinfo(self._p(), p), "xc_physinfo")
        return PhysInfo(
            nr_cpus=p.nr_cpus, max_cpu_id=p.max_cpu_id, threads_per_core=p.threads_per_core,
            cores_per_socket=p.cores_per_socket, nr_nodes=p.nr_nodes,
            max_node_id=p.max_node_id, cpu_khz=p.cpu_khz,
            total_memory_kb=p.total_pages * PAGE_KB, free_memory_kb=p.free_pages * PAGE_KB,
            scrub_memory_kb=p.scrub_pages * PAGE_KB,
            outstanding_memory_kb=p.outstanding_pages * PAGE_KB, max_mfn=p.max_mfn,
            hw_caps=tuple(p.hw_cap), virt_caps=VirtCaps(p.capabilities & 0x3FF))

    def sched_id(self) -> Scheduler | int:
        """The hypervisor's scheduler (``xc_sched_id``)."""
        ffi, lib = xen()
        out = ffi.new("int *")
        _check(self, lib.xc_sched_id(self._p(), out), "xc_sched_id")
        try:
            return Scheduler(out[0])
        except ValueError:
            return out[0]

    def free_memory_kb(self, node: int = -1) -> int:
        """Free hypervisor heap in kB, on all nodes or one (``xc_availheap``)."""
        ffi, lib = xen()
        out = ffi.new("uint64_t *")
        _check(self, lib.xc_availheap(self._p(), 0, 0, node, out), "xc_availheap")
        return out[0] // 1024

    def max_cpus(self) -> int:
        """How many physical CPUs the hypervisor supports (``xc_get_max_cpus``)."""
        _, lib = xen()
        return _check(self, lib.xc_get_max_cpus(self._p()), "xc_get_max_cpus")

    # -- domains ------------------------------------------------------------------------

    def domains(self, batch: int | None = None) -> list[DomainInfo]:
        """Every domain (xc_domain_getinfolist, paginated past ``batch``).

        The default batch fills one 4 KiB page: libxenctrl bounces the whole array through
        a hypercall buffer, and xencall caches single pages but maps larger ones anew on
        every call (which costs more than the hypercall when few domains exist)."""
        ffi, lib = xen()
        if batch is None:
            batch = max(1, 4096 // ffi.sizeof("xc_domaininfo_t"))
        if batch < 1:
            raise _error(_errno.EINVAL, "xc_domain_getinfolist", detail="batch must be >= 1")
        buf = ffi.new("xc_domaininfo_t[]", batch)
        out: list[DomainInfo] = []
        first = 0
        while first < DOMID_FIRST_RESERVED:
            n = _check(self, lib.xc_domain_getinfolist(self._p(), first, batch, buf),
                       "xc_domain_getinfolist")
            out.extend([_domaininfo(ffi, buf[i]) for i in range(n)])
            if n < batch:
                break
            first = out[-1].domid + 1
        return out

    def domain(self, domid: int) -> DomainInfo:
        """One domain by id; NoSuchDomainError if there is none."""
        ffi, lib = xen()
        call = "xc_domain_getinfolist"
        _domid(domid, call)
        buf = ffi.new("xc_domaininfo_t *")
        global _HAS_GETINFO_SINGLE
        if _HAS_GETINFO_SINGLE is None:
            _HAS_GETINFO_SINGLE = _has("xc_domain_getinfo_single")
        if _HAS_GETINFO_SINGLE:  # Xen >= 4.18
            call = "xc_domain_getinfo_single"
            _check(self, lib.xc_domain_getinfo_single(self._p(), domid, buf), call, domid)
        else:
            n = _check(self, lib.xc_domain_getinfolist(self._p(), domid, 1, buf), call, domid)
            if n != 1 or buf.domain != domid:  # getinfolist returns the next domain up
                raise _error(_errno.ESRCH, call, domid, detail=f"no domain {domid}")
        return _domaininfo(ffi, buf)

    def create_domain(self, *, hvm: bool = False, hap: bool | None = None,
                      max_vcpus: int = 1, max_evtchn_port: int = 1023,
                      max_grant_frames: int = -1, max_maptrack_frames: int = -1,
                      max_grant_version: int | None = None,
                      emulation_flags: int | None = None,
                      uuid: str | bytes | UUID | None = None, domid: int = 0,
                      cpupool: int = 0, ssidref: int = 0,
                      flags: CreateFlags = CreateFlags(0)) -> int:
        """Create an empty, paused domain (``xc_domain_create``); returns its domid.

        ``hap`` defaults to ``hvm``; ``max_grant_version`` to 2 where Xen offers gnttab v2;
        ``emulation_flags`` to XEN_X86_EMU_ALL less VPCI for HVM and 0 for PV; ``domid`` 0 lets Xen
        choose. Negative grant/maptrack frames mean the hypervisor's default. The domain
        has no memory and no vCPUs until built; follow with :meth:`max_vcpus`.
        """
        ffi, lib = xen()
        call = "xc_domain_create"
        if domid:
            _domid(domid, call)
        if max_vcpus < 1:
            raise _error(_errno.EINVAL, call, detail="max_vcpus must be >= 1")
        if hap is None:
            hap = hvm
        if max_grant_version is None:
            caps = self.physinfo().virt_caps
            max_grant_version = 2 if VirtCaps.GNTTAB_V2 in caps else 1
        cfg = ffi.new("struct xen_domctl_createdomain *")
        cfg.ssidref = ssidref
        ffi.memmove(cfg.handle, _parse_uuid(uuid), 16)
        f = int(flags)
        if hvm:
            f |= lib.XEN_DOMCTL_CDF_hvm
        if hap:
            f |= lib.XEN_DOMCTL_CDF_hap
        cfg.flags = f
        cfg.max_vcpus = max_vcpus
        cfg.max_evtchn_port = max_evtchn_port
        cfg.max_grant_frames = max_grant_frames
        cfg.max_maptrack_frames = max_maptrack_frames
        cfg.grant_opts = max_grant_version & lib.XEN_DOMCTL_GRANT_version_mask
        cfg.cpupool_id = cpupool
        if emulation_flags is None:  # what libxl uses for HVM (vPCI is dom0-only) and PV
            emulation_flags = (lib.XEN_X86_EMU_ALL & ~lib.XEN_X86_EMU_VPCI) if hvm else 0
        cfg.arch.emulation_flags = emulation_flags
        out = ffi.new("uint32_t *", domid)
        rc = lib.xc_domain_create(self._p(), out, cfg)
        _interrupt.point("ctrl.xc_domain_create")  # a domain may exist from here on
        _check(self, rc, call, domid or None)
        return int(out[0])

    def max_vcpus(self, domid: int, n: int) -> None:
        """Allocate the domain's vCPUs (``xc_domain_max_vcpus``; must equal creation's)."""
        _, lib = xen()
        _check(self, lib.xc_domain_max_vcpus(self._p(), _domid(domid, "xc_domain_max_vcpus"),
                                             n), "xc_domain_max_vcpus", domid)

    def pause(self, domid: int) -> None:
        """``xc_domain_pause``."""
        _, lib = xen()
        _check(self, lib.xc_domain_pause(self._p(), _domid(domid, "xc_domain_pause")),
               "xc_domain_pause", domid)

    def unpause(self, domid: int) -> None:
        """``xc_domain_unpause``."""
        _, lib = xen()
        _check(self, lib.xc_domain_unpause(self._p(), _domid(domid, "xc_domain_unpause")),
               "xc_domain_unpause", domid)

    def shutdown(self, domid: int, reason: ShutdownReason = ShutdownReason.POWEROFF) -> None:
        """Mark the domain shut down with ``reason`` (``xc_domain_shutdown``)."""
        _, lib = xen()
        reason = ShutdownReason(reason)
        _check(self, lib.xc_domain_shutdown(self._p(), _domid(domid, "xc_domain_shutdown"),
                                            int(reason)), "xc_domain_shutdown", domid)

    def destroy(self, domid: int) -> None:
        """``xc_domain_destroy``: the domain dies (its memory is freed once nothing maps it)."""
        _, lib = xen()
        _check(self, lib.xc_domain_destroy(self._p(), _domid(domid, "xc_domain_destroy")),
               "xc_domain_destroy", domid)

    def set_max_memory(self, domid: int, max_kb: int) -> None:
        """The domain's memory ceiling in kB (``xc_domain_setmaxmem``)."""
        _, lib = xen()
        if max_kb < 0:
            raise _error(_errno.EINVAL, "xc_domain_setmaxmem", domid, detail="max_kb < 0")
        _check(self, lib.xc_domain_setmaxmem(self._p(), _domid(domid, "xc_domain_setmaxmem"),
                                             max_kb), "xc_domain_setmaxmem", domid)

    def set_memory_target(self, domid: int, target_kb: int, *,
                          max_kb: int | None = None) -> None:
        """Balloon target, as ``xl mem-set`` does it: max memory to ``max_kb`` (default
        target + 1 MiB slack, ``xc_domain_setmaxmem``), then xenstore
        ``/local/domain/<domid>/memory/target`` = target, which the guest's balloon
        driver honours (``xs_write``)."""
        from . import xenstore, xspath
        if target_kb < 0:
            raise _error(_errno.EINVAL, "xs_write", domid, detail="target_kb < 0")
        self.set_max_memory(domid, target_kb + MAXMEM_SLACK_KB if max_kb is None else max_kb)
        path = f"{xspath.domain(domid)}/memory/target"
        data = str(int(target_kb)).encode()
        with xenstore.open() as xs:
            try:
                xs.write(path, data)
            except xenstore.XenStoreError as e:
                raise _error(e.errno or _errno.EIO, "xs_write", domid, detail=path) from e

    # -- vCPUs --------------------------------------------------------------------------

    def vcpu_info(self, domid: int, vcpu: int) -> VcpuInfo:
        """``xc_vcpu_getinfo``: one vCPU's state, CPU time and current CPU."""
        ffi, lib = xen()
        call = "xc_vcpu_getinfo"
        _vcpu(vcpu, call, domid)
        out = ffi.new("xc_vcpuinfo_t *")
        _check(self, lib.xc_vcpu_getinfo(self._p(), _domid(domid, call), vcpu, out),
               call, domid)
        return VcpuInfo(vcpu=out.vcpu, online=bool(out.online), blocked=bool(out.blocked),
                        running=bool(out.running), cpu_time_ns=out.cpu_time,
                        cpu=out.cpu if out.online else None)

    def vcpus(self, domid: int) -> list[VcpuInfo]:
        """Every vCPU of the domain, 0..max_vcpu_id."""
        return [self.vcpu_info(domid, v) for v in range(self.domain(domid).max_vcpus)]

    def _cpumap_size(self) -> int:
        if not self._cpumap_bytes:
            _, lib = xen()
            self._cpumap_bytes = _check(self, lib.xc_get_cpumap_size(self._p()),
                                        "xc_get_cpumap_size")
        return self._cpumap_bytes

    def _cpumap(self, cpus: Iterable[int] | None, call: str, domid: int) -> Any:
        """A zeroed cpumap of xc_get_cpumap_size() bytes with ``cpus`` set; CPU numbers
        are checked against xc_get_max_cpus() first."""
        ffi, _ = xen()
        m = ffi.new("uint8_t[]", self._cpumap_size())
        if cpus is None:
            return m
        limit = self._max_cpus()
        for c in cpus:
            if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < limit:
                raise _error(_errno.EINVAL, call, domid,
                             detail=f"cpu {c!r} out of range 0..{limit - 1}")
            m[c // 8] |= 1 << (c % 8)
        return m

    def _max_cpus(self) -> int:
        if not getattr(self, "_max_cpus_n", 0):
            self._max_cpus_n = self.max_cpus()
        return self._max_cpus_n

    def _cpuset(self, m: Any) -> frozenset[int]:
        return frozenset(c for c in range(self._max_cpus()) if m[c // 8] >> (c % 8) & 1)

    def get_affinity(self, domid: int, vcpu: int) -> VcpuAffinity:
        """Hard and soft affinity of one vCPU (``xc_vcpu_getaffinity``)."""
        _, lib = xen()
        call = "xc_vcpu_getaffinity"
        hard, soft = self._cpumap(None, call, domid), self._cpumap(None, call, domid)
        _vcpu(vcpu, call, domid)
        _check(self, lib.xc_vcpu_getaffinity(
            self._p(), _domid(domid, call), vcpu, hard, soft,
            lib.XEN_VCPUAFFINITY_HARD | lib.XEN_VCPUAFFINITY_SOFT), call, domid)
        return VcpuAffinity(hard=self._cpuset(hard), soft=self._cpuset(soft))

    def set_affinity(self, domid: int, vcpu: int, hard: Iterable[int] | None = None,
                     soft: Iterable[int] | None = None) -> VcpuAffinity:
        """Set hard and/or soft affinity (sets of CPU numbers; None leaves one alone);
        returns the effective affinity Xen reports back (``xc_vcpu_setaffinity``)."""
        _, lib = xen()
        call = "xc_vcpu_setaffinity"
        if hard is None and soft is None:
            raise _error(_errno.EINVAL, call, domid, detail="give hard and/or soft")
        _vcpu(vcpu, call, domid)
        flags = (lib.XEN_VCPUAFFINITY_HARD if hard is not None else 0) | \
                (lib.XEN_VCPUAFFINITY_SOFT if soft is not None else 0)
        hmap, smap = self._cpumap(hard, call, domid), self._cpumap(soft, call, domid)
        _check(self, lib.xc_vcpu_setaffinity(self._p(), _domid(domid, call), vcpu, hmap,
                                             smap, flags), call, domid)
        return self.get_affinity(domid, vcpu)

    # -- event channels -----------------------------------------------------------------

    def evtchn_alloc_unbound(self, domid: int, remote_domid: int) -> int:
        """Allocate an unbound port in ``domid`` that ``remote_domid`` may bind; the port."""
        _, lib = xen()
        call = "xc_evtchn_alloc_unbound"
        return _check(self, lib.xc_evtchn_alloc_unbound(
            self._p(), _domid(domid, call), _domid(remote_domid, call)), call, domid)


def open() -> Ctrl:  # noqa: A001 - mirrors xc_interface_open
    """Open the hypervisor control interface (root in a Xen dom0)."""
    return Ctrl()
