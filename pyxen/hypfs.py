"""The hypervisor file system (libxenhypfs): Xen's own tree of build info, parameters and
cpupools, read and listed through the ``hypfs_op`` hypercall.

    with pyxen.hypfs.open() as fs:
        for e in fs.ls("/"):                       # Entry(name, type, size, writable, ...)
            print(e.type.name, e.name)
        fs.read("/buildinfo/version/major")        # "4": as ``xenhypfs cat`` prints it
        fs.value("/buildinfo/version/major")       # 4: typed (int, bool, str or bytes)
        fs.value("/buildinfo/config")              # the .config, gunzipped

Paths are absolute, ASCII, without NULs; a missing path raises HypfsNotFound, a read-only
node written raises HypfsPermissionError, a hypervisor built without hypfs raises
XenFeatureUnavailable.
"""

from __future__ import annotations

import enum
import errno as _errno
import zlib
from dataclasses import dataclass
from typing import Any

from ._handle import Handle
from ._native import require_dom0, xen
from .errors import (HypfsError, HypfsNotFound, HypfsPathError,  # noqa: F401
                     HypfsPermissionError, check_hypfs)

__all__ = ["HypFS", "Entry", "EntryType", "HypfsError", "HypfsNotFound",
           "HypfsPermissionError", "HypfsPathError", "open"]

PATH_MAX = 1024          # XEN_HYPFS_MAX_PATHLEN


def _check(ok: bool, call: str, path: str | None = None) -> None:
    """pyxen.errors.check_hypfs with the errno cffi saved after this thread's call."""
    if not ok:
        check_hypfs(xen()[0].errno, call, path)


class EntryType(enum.IntEnum):
    """``enum xenhypfs_type``."""

    DIR = 0
    BLOB = 1
    STRING = 2
    UINT = 3
    INT = 4
    BOOL = 5

    @property
    def label(self) -> str:
        """How ``xenhypfs ls`` names the type (``<dir>``, ``<uint>``, ...)."""
        return f"<{self.name.lower()}>"


class Encoding(enum.IntEnum):
    """``enum xenhypfs_encoding``."""

    PLAIN = 0
    GZIP = 1


@dataclass(frozen=True)
class Entry:
    """One node as libxenhypfs describes it (``struct xenhypfs_dirent``)."""

    name: str
    type: EntryType | int
    size: int
    encoding: Encoding | int
    writable: bool

    def xenhypfs_line(self) -> str:
        """The line ``xenhypfs ls`` prints for this entry."""
        label = self.type.label if isinstance(self.type, EntryType) else "<???>"
        return f"{label:<8} r{'w' if self.writable else '-'} {self.name}"


def _enum(cls: type[enum.IntEnum], v: int) -> Any:
    try:
        return cls(v)
    except ValueError:
        return v


def _path(path: str) -> bytes:
    if not isinstance(path, str):
        raise HypfsPathError(f"a hypfs path is text, not {type(path).__name__}")
    if not path.startswith("/") or "\0" in path or not path.isascii() \
            or len(path) >= PATH_MAX:
        raise HypfsPathError(f"not a hypfs path: {path[:80]!r} (absolute, ASCII, no NUL, "
                             f"under {PATH_MAX} bytes)")
    return path.encode("ascii")


class HypFS(Handle):
    """A libxenhypfs handle (``xenhypfs_open``); safe to share between threads."""

    def __init__(self) -> None:
        require_dom0("hypfs")
        ffi, lib = xen()
        self._lib = lib
        h = lib.xenhypfs_open(ffi.NULL, 0)
        _check(h != ffi.NULL, "xenhypfs_open")
        self._adopt(ffi, h, lib.xenhypfs_close)

    def _entry(self, d: Any) -> Entry:
        ffi, lib = self._ffi, self._lib
        return Entry(name=ffi.string(d.name).decode("ascii", "replace") if d.name else "",
                     type=_enum(EntryType, int(d.type)), size=int(d.size),
                     encoding=_enum(Encoding, int(d.encoding)),
                     writable=bool(d.flags & lib.XENHYPFS_FLAG_WRITABLE))

    def read(self, path: str) -> str:
        """``xenhypfs_read``: the node as text, as ``xenhypfs cat`` prints it (a number in
        decimal, a bool as 0/1, a directory's entry names)."""
        ffi, lib = self._ffi, self._lib
        b = _path(path)
        raw = lib.xenhypfs_read(self._p(), b)
        _check(raw != ffi.NULL, "xenhypfs_read", path)
        try:
            return ffi.string(raw).decode("utf-8", "replace")
        finally:
            lib.free(raw)

    def read_raw(self, path: str) -> tuple[bytes, Entry]:
        """``xenhypfs_read_raw``: the node's bytes as the hypervisor holds them (gzip'd if
        its encoding says so) and its Entry."""
        ffi, lib = self._ffi, self._lib
        b = _path(path)
        dp = ffi.new("struct xenhypfs_dirent **")
        raw = lib.xenhypfs_read_raw(self._p(), b, dp)
        _check(raw != ffi.NULL, "xenhypfs_read_raw", path)
        try:
            ent = self._entry(dp[0])
            data = ffi.buffer(ffi.cast("char *", raw), ent.size)[:]
        finally:
            lib.free(raw)
            if dp[0] != ffi.NULL:
                lib.free(dp[0])
        return data, ent

    def stat(self, path: str) -> Entry:
        """The node's Entry (its name is the path's last part)."""
        return self.read_raw(path)[1]

    def value(self, path: str) -> int | bool | str | bytes | list[str]:
        """The node's value, typed: an int (uint/int, little-endian of the node's size), a
        bool, a str (string), bytes (blob, gunzipped when gzip-encoded), or a directory's
        entry names."""
        data, ent = self.read_raw(path)
        if ent.encoding == Encoding.GZIP:
            try:
                data = zlib.decompress(data, 16 + zlib.MAX_WBITS)
            except zlib.error as e:
                raise HypfsError(_errno.EILSEQ, call="xenhypfs_read_raw",
                                 detail=f"{path}: gzip data: {e}") from None
        t = ent.type
        if t == EntryType.DIR:
            return [e.name for e in self.ls(path)]
        if t in (EntryType.UINT, EntryType.INT):
            return int.from_bytes(data, "little", signed=t == EntryType.INT)
        if t == EntryType.BOOL:
            return any(data)
        if t == EntryType.STRING:
            return data.split(b"\0", 1)[0].decode("utf-8", "replace")
        return data

    def ls(self, path: str = "/") -> list[Entry]:
        """``xenhypfs_readdir``: a directory's entries, in the hypervisor's order."""
        ffi, lib = self._ffi, self._lib
        b = _path(path)
        n = ffi.new("unsigned int *")
        ents = lib.xenhypfs_readdir(self._p(), b, n)
        _check(ents != ffi.NULL, "xenhypfs_readdir", path)
        try:
            return [self._entry(ents[i]) for i in range(n[0])]
        finally:
            lib.free(ents)

    def write(self, path: str, value: str | int | bool) -> None:
        """``xenhypfs_write``: set a writable node (libxenhypfs converts the text to the
        node's type). A read-only node raises HypfsPermissionError."""
        if isinstance(value, bool):
            text = "1" if value else "0"
        elif isinstance(value, (int, str)):
            text = str(value)
        else:
            raise HypfsPathError(f"a hypfs value is str, int or bool, not "
                                 f"{type(value).__name__}")
        if "\0" in text:
            raise HypfsPathError("a hypfs value cannot hold a NUL")
        b = _path(path)
        rc = self._lib.xenhypfs_write(self._p(), b, text.encode("utf-8"))
        _check(rc == 0, "xenhypfs_write", path)

    def walk(self, path: str = "/") -> list[tuple[str, Entry]]:
        """Every node under ``path`` (depth first, as ``xenhypfs tree``): (path, Entry)."""
        out: list[tuple[str, Entry]] = []
        for e in self.ls(path):
            p = path.rstrip("/") + "/" + e.name
            out.append((p, e))
            if e.type == EntryType.DIR:
                out.extend(self.walk(p))
        return out


def open() -> HypFS:  # noqa: A001 - mirrors xenhypfs_open
    """``xenhypfs_open``: a HypFS handle."""
    return HypFS()
