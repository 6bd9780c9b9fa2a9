"""pyxen.cpuid: VT-x/AMD-V and hypervisor detection with the CPUID instruction itself.

No /proc parsing and no subprocess: ``pyxen._cpuid`` executes CPUID through a tiny C
helper (``csrc/pyxen_cpuid.c``), so this module works with or without Xen.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Optional

from ._native import cpuid as _cpuid_ext


def cpuid(leaf: int, subleaf: int = 0) -> tuple[int, int, int, int]:
    """Execute CPUID; return (eax, ebx, ecx, edx)."""
    ffi, lib = _cpuid_ext()
    out = ffi.new("unsigned int[4]")
    lib.pyxen_cpuid(leaf & 0xFFFFFFFF, subleaf & 0xFFFFFFFF, out)
    return out[0], out[1], out[2], out[3]


def _regs_str(*regs: int) -> str:
    return struct.pack("<" + "I" * len(regs), *regs).decode("latin-1").rstrip("\0")


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


def vendor() -> str:
    _, b, c, d = cpuid(0)
    return _regs_str(b, d, c)


def hypervisor_signature() -> tuple[Optional[str], Optional[int]]:
    """(signature, base leaf) of the first hypervisor found in 0x40000000-0x4000FF00."""
    for base in range(0x40000000, 0x40010000, 0x100):
        a, b, c, d = cpuid(base)
        sig = _regs_str(b, c, d)
        if sig and sig.isprintable() and a >= base:
            return sig, base
    return None, None


def info() -> CpuInfo:
    max_leaf = cpuid(0)[0]
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
    sig, leaf = hypervisor_signature() if hv else (None, None)
    return CpuInfo(vendor=vendor(), family=family, model=model, stepping=a & 0xF,
                   vmx=bool(c & (1 << 5)), svm=bool(ext_c & (1 << 2)),
                   hypervisor_present=hv, hypervisor_signature=sig, hypervisor_leaf=leaf)
