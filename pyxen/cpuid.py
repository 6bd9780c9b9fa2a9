"""pyxen.cpuid: VT-x/AMD-V and hypervisor detection with the CPUID instruction itself.

No /proc parsing and no subprocess: ``pyxen._cpuid`` executes CPUID through a tiny C
helper (``csrc/pyxen_cpuid.c``), so this module works with or without Xen.

* :func:`info` — vendor, family/model/stepping, VMX (leaf 1 ECX bit 5), SVM
  (0x80000001 ECX bit 2), the hypervisor-present bit (leaf 1 ECX bit 31), the first
  hypervisor signature in 0x40000000-0x4000FF00 (step 0x100) and, for Xen, its version
  leaf (base + 1: EAX = major << 16 | minor).
* :func:`firmware` — whether firmware locked VT-x off (IA32_FEATURE_CONTROL, MSR 0x3a) or
  disabled SVM (VM_CR, MSR 0xC0010114, bit 4), read from ``/dev/cpu/0/msr`` when that
  opens (root, msr module loaded); otherwise "unknown" — never a guess.
* :func:`verdict` — can this host run HVM guests, and why. In a Xen control domain the
  answer comes from Xen itself (physinfo's virt_caps): a PV dom0's own CPUID and MSRs do
  not show the host's VT-x/AMD-V truthfully.

The decision itself is the pure function :func:`decide`, so it can be tested with tables.
"""

from __future__ import annotations

import enum
import functools
import errno as _errno
import os
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

from ._native import cpuid as _cpuid_ext
from .errors import ArgumentError, MsrReadError

if TYPE_CHECKING:
    from ._xen import FFI
    from .ctrl import Ctrl

XEN_SIGNATURE = "XenVMMXenVMM"
MSR_IA32_FEATURE_CONTROL = 0x3A
MSR_VM_CR = 0xC0010114
FEATURE_CONTROL_LOCKED = 1 << 0
FEATURE_CONTROL_VMXON_OUTSIDE_SMX = 1 << 2
VM_CR_SVMDIS = 1 << 4


_ext: Optional[tuple[FFI, Any]] = None


def _ffi_lib() -> tuple[FFI, Any]:
    global _ext
    if _ext is None:
        _ext = _cpuid_ext()
    return _ext


def cpuid(leaf: int, subleaf: int = 0) -> tuple[int, int, int, int]:
    """Execute CPUID; return (eax, ebx, ecx, edx)."""
    ffi, lib = _ext or _ffi_lib()
    out = ffi.new("unsigned int[4]")
    lib.pyxen_cpuid(leaf & 0xFFFFFFFF, subleaf & 0xFFFFFFFF, out)
    return tuple(out)


def xen_pv_cpuid(leaf: int, subleaf: int = 0) -> Optional[tuple[int, int, int, int]]:
    """CPUID as Xen emulates it for a PV domain (forced-emulation prefix), or None when
    this is not a Xen PV domain (the prefix faults; the helper catches that)."""
    ffi, lib = _ext or _ffi_lib()
    out = ffi.new("unsigned int[4]")
    if lib.pyxen_cpuid_xen_pv(leaf & 0xFFFFFFFF, subleaf & 0xFFFFFFFF, out) != 0:
        return None
    return tuple(out)


def _xen_pv_cpuid_n(leaves: list[int]) -> Optional[list[tuple[int, int, int, int]]]:
    """Several leaves through the forced-emulation prefix under one SIGILL guard."""
    ffi, lib = _ext or _ffi_lib()
    out = ffi.new("unsigned int[]", 4 * len(leaves))
    if lib.pyxen_cpuid_xen_pv_n(ffi.new("unsigned int[]", leaves), len(leaves), out) != 0:
        return None
    return [tuple(out[4 * i:4 * i + 4]) for i in range(len(leaves))]


def _regs_str(*regs: int) -> str:
    return struct.pack("<" + "I" * len(regs), *regs).decode("latin-1").rstrip("\0")


def _read_sys(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


@functools.lru_cache(maxsize=None)
def xen_guest_type() -> Optional[str]:
    """"PV", "HVM" or "PVH" when this kernel runs on Xen (/sys/hypervisor), else None.
    Read once per process: a running kernel does not change how it is virtualized."""
    if _read_sys("/sys/hypervisor/type") != "xen":
        return None
    return _read_sys("/sys/hypervisor/guest_type") or "unknown"


@dataclass(frozen=True)
class CpuInfo:
    vendor: str
    family: int
    model: int
    stepping: int
    vmx: bool
    svm: bool
    hypervisor_present: bool
    hypervisor_signature: Optional[str]
    hypervisor_leaf: Optional[int]
    xen_version: Optional[tuple[int, int]] = None
    view: str = "native"  # "native" or "xen-pv" (Xen's forced-emulation CPUID view)


def vendor() -> str:
    """The CPU vendor string (CPUID leaf 0: GenuineIntel, AuthenticAMD, ...)."""
    _, b, c, d = cpuid(0)
    return _regs_str(b, d, c)


def _scan(fn: Callable[[int], Optional[tuple[int, int, int, int]]],
          first: Optional[tuple[int, int, int, int]] = None,
          ) -> tuple[Optional[str], Optional[int], Optional[tuple[int, int]]]:
    for base in range(0x40000000, 0x40010000, 0x100):
        r = first if (base == 0x40000000 and first is not None) else fn(base)
        if r is None:
            return None, None, None
        a, b, c, d = r
        sig = _regs_str(b, c, d)
        if sig and sig.isprintable() and a >= base:
            ver = None
            r1 = fn(base + 1) if sig == XEN_SIGNATURE and a >= base + 1 else None
            if r1 is not None:   # (None: the version leaf faulted after all)
                ver = (r1[0] >> 16, r1[0] & 0xFFFF)
            return sig, base, ver
    return None, None, None


def hypervisor_signature() -> tuple[Optional[str], Optional[int]]:
    """(signature, base leaf) of the first hypervisor found in 0x40000000-0x4000FF00."""
    sig, base, _ = _scan(cpuid)
    return sig, base


def info(_guest: Optional[str] = "?") -> CpuInfo:
    """What CPUID says here. In a Xen PV domain the hypervisor leaves are read through
    Xen's forced-emulation view (native CPUID there may show the layer below Xen).

    Executes the fewest CPUIDs it can (0, 1, 0x80000000, 0x80000001, then the hypervisor
    leaves): inside a VM every CPUID is a VM exit."""
    max_leaf, vb, vc, vd = cpuid(0)
    a, _, c, _ = cpuid(1) if max_leaf >= 1 else (0, 0, 0, 0)
    family = (a >> 8) & 0xF
    model = (a >> 4) & 0xF
    if family == 0xF:
        family += (a >> 20) & 0xFF
    if family >= 6:
        model |= ((a >> 16) & 0xF) << 4
    max_ext = cpuid(0x80000000)[0]
    ext_c = cpuid(0x80000001)[2] if max_ext >= 0x80000001 else 0
    hv = bool(c & (1 << 31))
    view = "native"
    sig = leaf = ver = None
    guest = xen_guest_type() if _guest == "?" else _guest
    # Xen's leaves usually sit at 0x40000000 (0x40000100 with viridian): probe the first
    # two in one guarded call, scan further only if needed.
    probe = _xen_pv_cpuid_n([0x40000000, 0x40000001]) if guest == "PV" else None
    if probe is not None:
        view = "xen-pv"
        hv = True
        a, b, c2, d = probe[0]
        if _regs_str(b, c2, d) == XEN_SIGNATURE and a >= 0x40000001:
            v = probe[1][0]
            sig, leaf, ver = XEN_SIGNATURE, 0x40000000, (v >> 16, v & 0xFFFF)
        else:
            sig, leaf, ver = _scan(xen_pv_cpuid, probe[0])
    elif hv:
        sig, leaf, ver = _scan(cpuid)
    return CpuInfo(vendor=_regs_str(vb, vd, vc), family=family, model=model, stepping=a & 0xF,
                   vmx=bool(c & (1 << 5)), svm=bool(ext_c & (1 << 2)),
                   hypervisor_present=hv, hypervisor_signature=sig, hypervisor_leaf=leaf,
                   xen_version=ver, view=view)


class Firmware(str, enum.Enum):
    ENABLED = "enabled"      # the MSR allows VMXON / SVM
    DISABLED = "disabled"    # locked off (VT-x) or SVMDIS set (AMD-V)
    UNKNOWN = "unknown"      # the MSR could not be read
    NOT_APPLICABLE = "n/a"   # the CPU shows neither VMX nor SVM


@dataclass(frozen=True)
class FirmwareState:
    state: Firmware
    msr: Optional[int]       # MSR number read (0x3a or 0xC0010114)
    value: Optional[int]     # its value, when read
    detail: str


def firmware_from_msr(tech: str, value: int) -> Firmware:
    """Pure: the firmware state an MSR value means for ``tech`` ("vmx" or "svm")."""
    if tech == "vmx":
        locked = bool(value & FEATURE_CONTROL_LOCKED)
        outside_smx = bool(value & FEATURE_CONTROL_VMXON_OUTSIDE_SMX)
        return Firmware.DISABLED if locked and not outside_smx else Firmware.ENABLED
    if tech == "svm":
        return Firmware.DISABLED if value & VM_CR_SVMDIS else Firmware.ENABLED
    raise ArgumentError(f"unknown technology {tech!r}")


def read_msr(msr: int, cpu: int = 0) -> int:
    """Read one MSR through the msr driver (``/dev/cpu/N/msr``); OSError if it cannot."""
    fd = os.open(f"/dev/cpu/{cpu}/msr", os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.pread(fd, 8, msr)
    finally:
        os.close(fd)
    if len(data) != 8:
        raise MsrReadError(_errno.EIO, "short MSR read")
    return struct.unpack("<Q", data)[0]


def firmware(ci: Optional[CpuInfo] = None) -> FirmwareState:
    """Whether firmware left VT-x/AMD-V usable, from the MSR; "unknown" if unreadable."""
    ci = ci or info()
    if ci.vmx:
        tech, msr = "vmx", MSR_IA32_FEATURE_CONTROL
    elif ci.svm:
        tech, msr = "svm", MSR_VM_CR
    else:
        return FirmwareState(Firmware.NOT_APPLICABLE, None, None,
                             "CPUID shows neither VMX nor SVM")
    try:
        value = read_msr(msr)
    except OSError as e:
        why = {_errno.ENOENT: "no /dev/cpu/0/msr (msr module not loaded)",
               _errno.EACCES: "permission denied (needs root)",
               _errno.EPERM: "permission denied (needs root)",
               _errno.EIO: "the MSR read faulted (refused by a hypervisor?)"}.get(
                   e.errno or 0, os.strerror(e.errno or _errno.EIO))
        return FirmwareState(Firmware.UNKNOWN, msr, None, f"MSR {msr:#x} unreadable: {why}")
    state = firmware_from_msr(tech, value)
    if tech == "vmx":
        detail = (f"IA32_FEATURE_CONTROL={value:#x}: lock={value & 1}, "
                  f"vmxon_outside_smx={value >> 2 & 1}")
    else:
        detail = f"VM_CR={value:#x}: SVMDIS={value >> 4 & 1}"
    return FirmwareState(state, msr, value, detail)


@dataclass(frozen=True)
class Verdict:
    """Can this host run HVM guests? ``capable`` is None when that cannot be known here.

    ``reason``: "physinfo" (Xen's virt_caps said so), "cpuid" (the CPU does not offer
    VMX/SVM), "firmware" (CPUID offers it and the MSR says enabled or disabled),
    "unknown" (nothing trustworthy to go on)."""

    capable: Optional[bool]
    reason: str
    detail: str
    technology: Optional[str]      # "vmx", "svm" or None
    hap: Optional[bool]            # EPT/NPT as Xen reports it (physinfo only)
    firmware: str                  # Firmware value
    xen_guest: Optional[str]       # "PV"/"HVM"/"PVH" when running on Xen


def decide(*, vmx: bool, svm: bool, hypervisor: Optional[str], xen_guest: Optional[str],
           xen_virt_caps: Optional[frozenset] = None,
           firmware: Firmware = Firmware.UNKNOWN, firmware_detail: str = "") -> Verdict:
    """Pure decision. ``xen_virt_caps`` are the words of Xen's physinfo virt_caps (as
    ``xl info`` prints them), given when this is a Xen control domain."""
    tech = "vmx" if vmx else "svm" if svm else None
    fw = Firmware(firmware).value
    if xen_virt_caps is not None:
        caps = frozenset(xen_virt_caps)
        hap = "hap" in caps
        if "hvm" in caps:
            return Verdict(True, "physinfo",
                           "Xen reports hvm in virt_caps (" + " ".join(sorted(caps)) + ")"
                           + ("; hap (EPT/NPT) available" if hap else "; shadow paging only"),
                           tech, hap, fw, xen_guest)
        return Verdict(False, "physinfo",
                       "Xen reports no hvm in virt_caps (" + " ".join(sorted(caps)) + "): "
                       "VT-x/AMD-V absent, disabled by firmware, or disabled in Xen",
                       tech, False, fw, xen_guest)
    if xen_guest == "PV":
        return Verdict(None, "unknown",
                       "inside a Xen PV domain neither CPUID nor the MSRs show the host's "
                       "VT-x/AMD-V; ask in dom0 (Xen's physinfo virt_caps)",
                       tech, None, fw, xen_guest)
    if tech is None:
        under = f" (running under {hypervisor}, which does not expose nested " \
                "virtualization)" if hypervisor else ""
        return Verdict(False, "cpuid", f"CPUID shows neither VMX nor SVM{under}",
                       None, None, Firmware.NOT_APPLICABLE.value, xen_guest)
    name = "VT-x (VMX)" if tech == "vmx" else "AMD-V (SVM)"
    if fw == Firmware.DISABLED.value:
        return Verdict(False, "firmware", f"CPU has {name} but firmware disabled it: "
                       f"{firmware_detail}", tech, None, fw, xen_guest)
    if fw == Firmware.ENABLED.value:
        return Verdict(True, "firmware", f"CPU has {name} and firmware leaves it enabled: "
                       f"{firmware_detail}", tech, None, fw, xen_guest)
    return Verdict(None, "unknown", f"CPU has {name}, but whether firmware enabled it is "
                   f"unknown: {firmware_detail or 'MSR not read'}", tech, None, fw, xen_guest)


def _xen_virt_caps(xc: Optional[Ctrl] = None) -> Optional[frozenset[str]]:
    """Xen's physinfo virt_caps words when this is a Xen control domain, else None."""
    from .errors import PyxenError
    try:
        if xc is not None:
            return frozenset(xc.physinfo().virt_caps.xl_names())
        if not (os.path.exists("/dev/xen/privcmd") or os.path.exists("/proc/xen/privcmd")):
            return None
        from . import ctrl
        with ctrl.open() as h:
            return frozenset(h.physinfo().virt_caps.xl_names())
    except (PyxenError, OSError):
        return None


def verdict(xc: Optional[Ctrl] = None) -> Verdict:
    """Can this host run HVM guests, and why (see :func:`decide`). ``xc``: an open
    ``pyxen.ctrl.Ctrl`` to ask instead of opening (and closing) one."""
    guest = xen_guest_type()
    ci = info(guest)
    caps = _xen_virt_caps(xc) if guest is not None else None
    if caps is None and guest != "PV":
        fs = firmware(ci)
        fw, detail = fs.state, fs.detail
    else:
        fw, detail = Firmware.UNKNOWN, ""
    return decide(vmx=ci.vmx, svm=ci.svm, hypervisor=ci.hypervisor_signature,
                  xen_guest=guest, xen_virt_caps=caps, firmware=fw, firmware_detail=detail)
