"""pyxen.ctrl: hypercall control of the host and its domains through libxenctrl."""

from __future__ import annotations

import enum
import errno as _errno
from dataclasses import dataclass

from ._handle import Handle
from ._log import XtlLogger
from ._native import require_dom0, xen
from .errors import XenError

PAGE_KB = 4


class XenCtrlError(XenError):
    """A libxenctrl call failed; ``domid`` is set when the call was about one domain."""

    def __init__(self, err: int, message: str | None = None, *, call: str | None = None,
                 detail: str | None = None, domid: int | None = None):
        super().__init__(err, message, call=call, detail=detail)
        self.domid = domid


def _check(xc: "Ctrl", rc: int, call: str, domid: int | None = None) -> int:
    """The one libxenctrl error mapper: negative rc → XenCtrlError from errno + last error."""
    if rc >= 0:
        return rc
    ffi, lib = xen()
    err = ffi.errno or _errno.EIO
    detail = None
    last = lib.xc_get_last_error(xc._p())
    if last != ffi.NULL and last.code != lib.XC_ERROR_NONE:
        detail = ffi.string(last.message).decode("utf-8", "replace") or None
        lib.xc_clear_last_error(xc._p())
    raise XenCtrlError(err, call=call, detail=detail, domid=domid)


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
        d = VirtCaps.DIRECTIO in self
        words = [("pv", VirtCaps.PV in self), ("hvm", VirtCaps.HVM in self),
                 ("hvm_directio", VirtCaps.HVM in self and d),
                 ("pv_directio", VirtCaps.PV in self and d),
                 ("hap", VirtCaps.HAP in self), ("shadow", VirtCaps.SHADOW in self),
                 ("iommu_hap_pt_share", VirtCaps.IOMMU_HAP_PT_SHARE in self),
                 ("vmtrace", VirtCaps.VMTRACE in self), ("vpmu", VirtCaps.VPMU in self),
                 ("gnttab-v1", VirtCaps.GNTTAB_V1 in self),
                 ("gnttab-v2", VirtCaps.GNTTAB_V2 in self)]
        return [w for w, on in words if on]


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
        per = max(1, self.threads_per_core * self.cores_per_socket)
        return max(1, self.nr_cpus // per)

    @property
    def total_memory_mb(self) -> int:
        return self.total_memory_kb // 1024

    @property
    def free_memory_mb(self) -> int:
        return self.free_memory_kb // 1024


@dataclass(frozen=True)
class DomainInfo:
    domid: int
    uuid: str
    flags: int
    hvm: bool
    dying: bool
    shutdown: bool
    paused: bool
    blocked: bool
    running: bool
    shutdown_reason: int | None
    memory_kb: int
    max_memory_kb: int
    online_vcpus: int
    max_vcpu_id: int
    cpu_time_ns: int
    cpupool: int

    @property
    def state(self) -> str:
        """The six state letters as xl prints them (r b p s c d)."""
        crashed = self.shutdown and self.shutdown_reason == 3
        return "".join(ch if on else "-" for ch, on in (
            ("r", self.running), ("b", self.blocked), ("p", self.paused),
            ("s", self.shutdown and not crashed), ("c", crashed), ("d", self.dying)))


def _uuid(handle) -> str:
    h = bytes(handle)
    return f"{h[0:4].hex()}-{h[4:6].hex()}-{h[6:8].hex()}-{h[8:10].hex()}-{h[10:16].hex()}"


def _domaininfo(lib, d) -> DomainInfo:
    f = d.flags
    shut = bool(f & lib.XEN_DOMINF_shutdown)
    return DomainInfo(
        domid=d.domain, uuid=_uuid(d.handle), flags=f,
        hvm=bool(f & lib.XEN_DOMINF_hvm_guest), dying=bool(f & lib.XEN_DOMINF_dying),
        shutdown=shut, paused=bool(f & lib.XEN_DOMINF_paused),
        blocked=bool(f & lib.XEN_DOMINF_blocked), running=bool(f & lib.XEN_DOMINF_running),
        shutdown_reason=((f >> lib.XEN_DOMINF_shutdownshift) & lib.XEN_DOMINF_shutdownmask)
        if shut else None,
        memory_kb=d.tot_pages * PAGE_KB, max_memory_kb=d.max_pages * PAGE_KB,
        online_vcpus=d.nr_online_vcpus, max_vcpu_id=d.max_vcpu_id,
        cpu_time_ns=d.cpu_time, cpupool=d.cpupool)


class Ctrl(Handle):
    """An open libxenctrl interface (``xc_interface``)."""

    def __init__(self) -> None:
        require_dom0("libxenctrl")
        ffi, lib = xen()
        self._log = XtlLogger("pyxen.xenctrl")
        raw = lib.xc_interface_open(self._log.ptr, self._log.ptr, 0)
        if raw == ffi.NULL:
            err = ffi.errno
            raise XenCtrlError(err or _errno.EIO, call="xc_interface_open",
                               detail="are you root in a Xen dom0?")
        self._adopt(ffi, raw, lib.xc_interface_close)

    def _version_str(self, cmd: int, ctype: str) -> str:
        ffi, lib = xen()
        buf = ffi.new(ctype)
        _check(self, lib.xc_version(self._p(), cmd, buf), "xc_version")
        return ffi.string(ffi.cast("char *", buf)).decode("utf-8", "replace")

    def version(self) -> XenVersion:
        ffi, lib = xen()
        v = _check(self, lib.xc_version(self._p(), lib.XENVER_version, ffi.NULL), "xc_version")
        ci = ffi.new("xen_compile_info_t *")
        _check(self, lib.xc_version(self._p(), lib.XENVER_compile_info, ci), "xc_version")
        pagesize = _check(self, lib.xc_version(self._p(), lib.XENVER_pagesize, ffi.NULL),
                          "xc_version")

        def s(field) -> str:
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

    def domains(self, batch: int = 256) -> list[DomainInfo]:
        """Every domain (xc_domain_getinfolist, paginated past ``batch``)."""
        ffi, lib = xen()
        buf = ffi.new("xc_domaininfo_t[]", batch)
        out: list[DomainInfo] = []
        first = 0
        while True:
            n = _check(self, lib.xc_domain_getinfolist(self._p(), first, batch, buf),
                       "xc_domain_getinfolist")
            out.extend(_domaininfo(lib, buf[i]) for i in range(n))
            if n < batch:
                return out
            first = out[-1].domid + 1


def open() -> Ctrl:  # noqa: A001 - mirrors xc_interface_open
    """Open the hypervisor control interface (root in a Xen dom0)."""
    return Ctrl()
