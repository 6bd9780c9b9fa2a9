"""Loads the compiled extension modules; turns "no Xen here" into XenUnavailableError."""

from __future__ import annotations

import functools
import os

from .errors import XenUnavailableError


@functools.lru_cache(maxsize=None)
def xen():
    """``(ffi, lib)`` of ``pyxen._xen`` (linked against the Xen libraries)."""
    try:
        from . import _xen
    except ImportError as e:
        raise XenUnavailableError(
            f"pyxen's Xen extension cannot be loaded ({e}); build it on a machine with the "
            "Xen libraries: apt-get install libxen-dev && pip install .") from None
    return _xen.ffi, _xen.lib


def cpuid():
    from . import _cpuid
    return _cpuid.ffi, _cpuid.lib


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
