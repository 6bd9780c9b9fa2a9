"""Loads the compiled extension modules; turns "no Xen here" into XenUnavailableError."""

from __future__ import annotations

import functools
import os

import re
from typing import TYPE_CHECKING, Any

from .errors import XenFeatureUnavailable, XenUnavailableError

if TYPE_CHECKING:  # the compiled modules' types come from their .pyi stubs
    from ._xen import FFI


@functools.lru_cache(maxsize=None)
def xen() -> tuple[FFI, Any]:
    """``(ffi, lib)`` of ``pyxen._xen`` (linked against the Xen libraries)."""
    try:
        from . import _xen
    except ImportError as e:
        m = re.search(r"lib(?:xen\w*|xlutil)\.so\.(\d+\.\d+)", str(e))
        if m:
            raise XenUnavailableError(
                f"pyxen was built against Xen {m.group(1)}'s libraries, which this system "
                f"lacks ({e}); rebuild pyxen here (pip install --force-reinstall .)") from None
        raise XenUnavailableError(
            f"pyxen's Xen extension cannot be loaded ({e}); build it on a machine with the "
            "Xen libraries: apt-get install libxen-dev && pip install .") from None
    return _xen.ffi, _xen.lib


def built_version() -> tuple[int, int]:
    """The Xen release whose headers and libraries pyxen._xen was compiled against."""
    _, lib = xen()
    return lib.pyxen_built_xen_major, lib.pyxen_built_xen_minor


def has(name: str) -> bool:
    """Whether the Xen release pyxen was built against provides C symbol ``name``."""
    return hasattr(xen()[1], name)


def need(name: str, since: str | None = None) -> Any:
    """The C function ``name``, or XenFeatureUnavailable naming the Xen release it needs."""
    lib = xen()[1]
    try:
        return getattr(lib, name)
    except AttributeError:
        major, minor = built_version()
        when = f" (needs Xen {since} or later)" if since else ""
        raise XenFeatureUnavailable(f"{name} is not available in Xen {major}.{minor}{when}, "
                                    "which pyxen was built against") from None


def check_hypervisor(major: int, minor: int) -> None:
    """Refuse to drive a hypervisor of another release than the libraries we link."""
    built = built_version()
    if (major, minor) != built:
        raise XenUnavailableError(
            f"pyxen was built against Xen {built[0]}.{built[1]} but the running hypervisor is "
            f"Xen {major}.{minor}: libxenctrl's ABI differs between releases; rebuild pyxen "
            "on this host (pip install --force-reinstall .)")


def cpuid() -> tuple[FFI, Any]:
    """The CPUID helper module (pyxen._cpuid): its ffi and lib."""
    from . import _cpuid
    return _cpuid.ffi, _cpuid.lib


def linux() -> tuple[FFI, Any]:
    """The Linux ioctl interfaces (pyxen._linux: loop, block, interfaces and bridges)."""
    from . import _linux
    return _linux.ffi, _linux.lib


def require_dom0(what: str) -> None:
    """Raise XenUnavailableError unless this looks like a Xen control domain."""
    if os.path.exists("/dev/xen/privcmd") or os.path.exists("/proc/xen/privcmd"):
        return
    if not os.path.exists("/proc/xen") and not os.path.exists("/sys/hypervisor/type"):
        hint = "not running under Xen"
    else:
        try:
            with open("/sys/hypervisor/type") as f:
                hv = f.read().strip()
        except OSError:
            hv = "unknown"
        hint = (f"hypervisor is {hv!r} but the privcmd driver is not loaded "
                "(modprobe xen-privcmd; mount -t xenfs xenfs /proc/xen)")
    raise XenUnavailableError(f"cannot open {what}: no /dev/xen/privcmd: {hint}; "
                              "pyxen's hypervisor calls need a Xen dom0 "
                              "(try one with: python -m pyxen.lab shell)")
