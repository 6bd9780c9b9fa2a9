"""CFFI (API, out-of-line) builders for pyxen's three extension modules.

* ``pyxen._cpuid``: the CPUID helper; no Xen dependency.
* ``pyxen._linux``: the Linux loop, block and interface ioctls pyxen.devices makes
  (``csrc/linux.h``); no Xen dependency.
* ``pyxen._ring``: Xen's shared-ring protocol (``csrc/ring.h``, ``csrc/pyxen_ring.c``):
  only the public io headers (``xen/io/ring.h`` ...), no library.
* ``pyxen._xen``: libxenstore, libxenctrl, libxenguest, libxenlight, libxlutil,
  libxentoollog, libxenhypfs, libxenstat and the stable libxenevtchn, libxengnttab,
  libxenforeignmemory, libxendevicemodel and libxenvchan, declared by the trimmed headers in
  ``csrc/``.

Declarations are version-aware: a line ``#if XEN >= 4.18`` ... ``#else`` ... ``#endif``
in a ``csrc/*.h`` file is resolved here against the Xen version found at build time
(``PYXEN_XEN_VERSION``, else pkg-config's ``xencontrol`` version, else the installed
libxenctrl's soname), so one source
tree serves several Xen releases without copying shared declarations.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from cffi import FFI

CSRC = Path(__file__).resolve().parents[1] / "csrc"
# pkg-config names of the libraries pyxen._xen links (libxen-dev ships a .pc for each but
# libxlutil, which is linked by name).
XEN_PKGCONFIG = ["xenstore", "xencontrol", "xenguest", "xenlight", "xentoollog", "xenhypfs",
                 "xenstat", "xenevtchn", "xengnttab", "xenforeignmemory", "xendevicemodel",
                 "xenvchan"]
XEN_LIBS = ["xenstore", "xenctrl", "xenguest", "xenlight", "xlutil", "xentoollog", "xenhypfs",
            "xenstat", "xenevtchn", "xengnttab", "xenforeignmemory", "xendevicemodel",
            "xenvchan"]
# Order matters: later headers use types declared by earlier ones.
XEN_HEADERS = ["xentoollog.h", "xenstore.h", "xenctrl.h", "xenguest.h", "libxl.h",
               "libxlutil.h", "xenhypfs.h", "xenstat.h", "xenevtchn.h", "xengnttab.h",
               "xenforeignmemory.h", "xendevicemodel.h", "libxenvchan.h", "pyxen_xen.h"]
INCLUDE_DIRS = [p for p in os.environ.get("PYXEN_XEN_INCLUDE", "").split(":") if p]
LIB_DIRS = [p for p in os.environ.get("PYXEN_XEN_LIBDIR", "").split(":") if p]
FIX = "pyxen: Xen development headers not found (xenctrl.h): apt-get install libxen-dev"


def _rel(path: Path) -> str:
    """A source path relative to the working directory: setuptools refuses absolute ones."""
    return os.path.relpath(path)


def _pkgconfig_version() -> tuple[int, int] | None:
    """The release from ``xencontrol.pc`` (libxen-dev), or None without pkg-config or it."""
    pkg_config = shutil.which(os.environ.get("PKG_CONFIG", "pkg-config"))
    if pkg_config is None:
        return None
    try:
        out = subprocess.run([pkg_config, "--modversion", "xencontrol"], capture_output=True,
                             text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.match(r"(\d+)\.(\d+)", out.stdout.strip()) if out.returncode == 0 else None
    return (int(m.group(1)), int(m.group(2))) if m else None


def _soname_version() -> tuple[int, int] | None:
    dirs = LIB_DIRS + ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"]
    for d in dirs:
        for path in sorted(glob.glob(os.path.join(d, "libxenctrl.so.*.*"))):
            m = re.search(r"libxenctrl\.so\.(\d+)\.(\d+)", path)
            if m:
                return int(m.group(1)), int(m.group(2))
    return None


def xen_version() -> tuple[int, int]:
    """The Xen release whose libraries this build links against.

    ``PYXEN_XEN_VERSION`` if set; else pkg-config's ``xencontrol`` module version; else the
    installed libxenctrl's soname.
    """
    env = os.environ.get("PYXEN_XEN_VERSION")
    if env:
        major, minor = env.split(".")[:2]
        return int(major), int(minor)
    found = _pkgconfig_version() or _soname_version()
    if found is None:
        sys.exit(FIX)
    return found


def _use_pkgconfig() -> bool:
    """pkg-config knows every .pc we need (and no PYXEN_XEN_INCLUDE/LIBDIR override)."""
    if INCLUDE_DIRS or LIB_DIRS or _pkgconfig_version() is None:
        return False
    pkg_config = shutil.which(os.environ.get("PKG_CONFIG", "pkg-config")) or "pkg-config"
    rc = subprocess.run([pkg_config, "--exists", *XEN_PKGCONFIG], capture_output=True,
                        timeout=30, check=False).returncode
    return rc == 0


def _find_header(name: str) -> bool:
    return any(os.path.exists(os.path.join(d, name))
               for d in INCLUDE_DIRS + ["/usr/include", "/usr/local/include"])


def preprocess(text: str, version: tuple[int, int]) -> str:
    """Resolve ``#if XEN >= X.Y`` / ``#if XEN < X.Y`` / ``#else`` / ``#endif`` blocks."""
    out, stack = [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        m = re.match(r"\s*#if\s+XEN\s*(>=|<|==)\s*(\d+)\.(\d+)\s*$", line)
        if m:
            want = (int(m.group(2)), int(m.group(3)))
            ok = {">=": version >= want, "<": version < want, "==": version == want}[m.group(1)]
            stack.append(ok)
            out.append("")
            continue
        if re.match(r"\s*#else\b", line):
            if not stack:
                raise ValueError(f"line {lineno}: #else without #if XEN")
            stack[-1] = not stack[-1]
            out.append("")
            continue
        if re.match(r"\s*#endif\b", line):
            if not stack:
                raise ValueError(f"line {lineno}: #endif without #if XEN")
            stack.pop()
            out.append("")
            continue
        out.append(line if all(stack) else "")
    if stack:
        raise ValueError("unterminated #if XEN block")
    return "\n".join(out)


def _read(name: str, version: tuple[int, int]) -> str:
    return preprocess((CSRC / name).read_text(), version)


cpuid_ffi = FFI()
cpuid_ffi.cdef((CSRC / "pyxen_cpuid.h").read_text())
cpuid_ffi.set_source("pyxen._cpuid", '#include "pyxen_cpuid.h"',
                     sources=[_rel(CSRC / "pyxen_cpuid.c")], include_dirs=[_rel(CSRC)])


linux_ffi = FFI()
linux_ffi.cdef((CSRC / "linux.h").read_text())
linux_ffi.set_source("pyxen._linux", (CSRC / "pyxen_linux.c").read_text(),
                     extra_compile_args=["-Wno-unused-function"])


ring_ffi = FFI()
ring_ffi.cdef((CSRC / "ring.h").read_text())
ring_ffi.set_source("pyxen._ring", (CSRC / "pyxen_ring.c").read_text(),
                    include_dirs=INCLUDE_DIRS, extra_compile_args=["-Wno-unused-function"])


def _make_xen_ffi() -> FFI:
    if not _find_header("xenctrl.h") and "PYXEN_XEN_VERSION" not in os.environ:
        sys.exit(FIX)
    version = xen_version()
    ffi = FFI()
    ffi.cdef("\n".join(_read(h, version) for h in XEN_HEADERS))
    source = _read("pyxen_xen.c", version) + "\n" + _read("pyxen_vchan.c", version)
    macros = [("PYXEN_XEN_MAJOR", str(version[0])), ("PYXEN_XEN_MINOR", str(version[1]))]
    cflags = ["-Wno-unused-function"]
    if _use_pkgconfig():
        # cffi merges pkg-config's --cflags/--libs; libxlutil has no .pc file.
        ffi.set_source_pkgconfig("pyxen._xen", XEN_PKGCONFIG, source, libraries=["xlutil"],
                                 define_macros=macros, extra_compile_args=cflags)
    else:
        ffi.set_source("pyxen._xen", source, libraries=XEN_LIBS, include_dirs=INCLUDE_DIRS,
                       library_dirs=LIB_DIRS, define_macros=macros, extra_compile_args=cflags)
    return ffi


xen_ffi = _make_xen_ffi()


if __name__ == "__main__":
    cpuid_ffi.compile(verbose=True)
    linux_ffi.compile(verbose=True)
    ring_ffi.compile(verbose=True)
    xen_ffi.compile(verbose=True)
