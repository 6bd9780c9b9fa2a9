"""pyxen.foreignmemory: another domain's memory through libxenforeignmemory (privcmd).

``with pyxen.foreignmemory.open() as fm:`` gives a :class:`ForeignMemory`;
``fm.map(domid, gfns)`` maps those guest frames (read-only unless ``writable=True``) into a
:class:`ForeignMapping`, a :class:`~pyxen._mapped.Mapping` whose :attr:`buffer` is a
memoryview of them (no copy). Frames the hypervisor refuses are reported per frame
(``errors``, negative errno, 0 for mapped): by default any refused frame fails the whole call
with :class:`ForeignFrameError`; with ``partial=True`` the mapping is kept and only its mapped
frames are readable (:meth:`ForeignMapping.frame`), since touching a refused frame would be a
SIGBUS. ``fm.map_resource`` maps a domain's resource (its grant-table frames, an ioreq
server's pages, a vmtrace buffer: :class:`Resource`).

Unmapping, use after unmap and the handle's lifetime are as for pyxen.gnttab: see
:mod:`pyxen._mapped`.
"""

from __future__ import annotations

import enum
import errno as _errno
import os
from typing import Any, Sequence

from ._log import XtlLogger
from ._mapped import PAGE_SIZE, Mapping, MappingBusyError, StableHandle
from ._native import require_dom0, xen
from .errors import (ArgumentError, ArgumentIndexError, DomainNotFoundError, XenError,
                    XenFeatureUnavailable, XenUnavailableError)

__all__ = ["open", "ForeignMemory", "ForeignMapping", "ForeignMemoryError",
           "ForeignDomainError", "ForeignFrameError", "MappingBusyError", "Resource",
           "GRANT_TABLE_SHARED", "GRANT_TABLE_STATUS", "PAGE_SIZE"]


class Resource(enum.IntEnum):
    """``XENMEM_resource_*``: what :meth:`ForeignMemory.map_resource` maps."""

    IOREQ_SERVER = 0
    GRANT_TABLE = 1
    VMTRACE_BUF = 2


# resource ids of Resource.GRANT_TABLE
GRANT_TABLE_SHARED = 0
GRANT_TABLE_STATUS = 1


class ForeignMemoryError(XenError):
    """A libxenforeignmemory call failed; ``domid`` is the domain it was about."""

    def __init__(self, err: int, *, call: str, domid: int | None = None,
                 message: str | None = None):
        super().__init__(err, message, call=call,
                         detail=f"domain {domid}" if domid is not None else None)
        self.domid = domid


class ForeignDomainError(ForeignMemoryError, DomainNotFoundError):
    """ESRCH: no such domain."""


class ForeignFrameError(ForeignMemoryError, ValueError):
    """Frames the hypervisor refused to map: ``errors[i]`` is frame ``i``'s negative errno
    (0 if it mapped), ``gfns`` the frames asked for."""

    def __init__(self, domid: int, gfns: Sequence[int], errors: Sequence[int]):
        self.gfns = list(gfns)
        self.errors = list(errors)
        bad = [(g, -e) for g, e in zip(self.gfns, self.errors) if e]
        first = bad[0][1] if bad else _errno.EINVAL
        what = ", ".join(f"gfn {g:#x}: {_errno.errorcode.get(e, str(e))}" for g, e in bad[:8])
        more = f" (+{len(bad) - 8} more)" if len(bad) > 8 else ""
        super().__init__(first, call="xenforeignmemory_map", domid=domid,
                         message=f"{len(bad)} of {len(self.gfns)} frames refused: {what}{more}")


_ABSENT = (_errno.ENOENT, _errno.ENODEV, _errno.ENXIO)


def _check(ok: bool, call: str, domid: int | None = None) -> None:
    """The one libxenforeignmemory error mapper: a failed call (errno set) →
    ForeignMemoryError typed by errno, or XenUnavailableError for a missing privcmd."""
    if ok:
        return
    err = xen()[0].errno
    if call == "xenforeignmemory_open" and err in _ABSENT:
        raise XenUnavailableError(f"cannot open /dev/xen/privcmd ({os.strerror(err)})")
    if "resource" in call and err in (_errno.EOPNOTSUPP, _errno.ENOSYS):
        raise XenFeatureUnavailable(f"{call}: resource mapping is not supported here "
                                    f"({os.strerror(err)})")
    cls = ForeignDomainError if err == _errno.ESRCH else ForeignMemoryError
    raise cls(err, call=call, domid=domid)


def open() -> ForeignMemory:  # noqa: A001 - the module's verb, as pyxen.ctrl.open
    """Open the privcmd driver for foreign mappings (a dom0, or a domain allowed to)."""
    require_dom0("libxenforeignmemory")
    return ForeignMemory()


class ForeignMapping(Mapping):
    """Frames of domain ``domid`` mapped here: ``gfns[i]`` is page ``i``; ``errors[i]`` its
    negative errno, or 0 (only a ``partial=True`` mapping has refused frames)."""

    domid: int
    gfns: list[int]
    errors: list[int]

    @property
    def buffer(self) -> memoryview:
        """The mapped frames as one writable (or read-only) memoryview."""
        if any(self.errors):
            raise ForeignFrameError(self.domid, self.gfns, self.errors)
        return super().buffer

    def frame(self, index: int) -> memoryview:
        """Page ``index`` of the mapping as a memoryview; ForeignFrameError if the
        hypervisor refused that frame."""
        if not 0 <= index < len(self.gfns):
            raise ArgumentIndexError(f"frame {index} of {len(self.gfns)}")
        if self.errors[index]:
            errs = [0] * len(self.gfns)
            errs[index] = self.errors[index]
            raise ForeignFrameError(self.domid, self.gfns, errs)
        return self._live()[index * PAGE_SIZE:(index + 1) * PAGE_SIZE]

    def read(self, offset: int = 0, size: int | None = None) -> bytes:
        """A copy of ``size`` bytes from ``offset``."""
        end = self.size if size is None else offset + size
        for i in range(offset // PAGE_SIZE, min(len(self.gfns), -(-end // PAGE_SIZE))):
            if self.errors[i]:
                errs = [e if j == i else 0 for j, e in enumerate(self.errors)]
                raise ForeignFrameError(self.domid, self.gfns, errs)
        return super().read(offset, size)

    def write(self, data: bytes | bytearray | memoryview, offset: int = 0) -> None:
        """Copy ``data`` into the mapped frames at ``offset``."""
        end = offset + memoryview(data).nbytes
        for i in range(offset // PAGE_SIZE, min(len(self.gfns), -(-end // PAGE_SIZE))):
            if self.errors[i]:
                errs = [e if j == i else 0 for j, e in enumerate(self.errors)]
                raise ForeignFrameError(self.domid, self.gfns, errs)
        super().write(data, offset)


class ForeignMemory(StableHandle):
    """A libxenforeignmemory handle."""

    def __init__(self) -> None:
        ffi, lib = self._ffi_lib = xen()
        log = XtlLogger("pyxen.foreignmemory")
        raw = lib.xenforeignmemory_open(log.ptr, 0)
        _check(raw != ffi.NULL, "xenforeignmemory_open")
        self._open_core(ffi, raw, lib.xenforeignmemory_close, keep=log)

    def map(self, domid: int, gfns: Sequence[int], *, writable: bool = False,
            partial: bool = False) -> ForeignMapping:
        """Map guest frames ``gfns`` of ``domid`` into consecutive pages."""
        ffi, lib = self._ffi_lib
        frames = list(gfns)
        if not frames:
            raise ArgumentError("no frames to map")
        n = len(frames)
        prot = lib.PROT_READ | (lib.PROT_WRITE if writable else 0)
        err = ffi.new("int[]", n)
        self._p()
        raw = self._core.acquire()  # released by the mapping's unmap
        try:
            addr = lib.xenforeignmemory_map(raw, domid, prot, n,
                                            ffi.new("xen_pfn_t[]", frames), err)
            if addr == ffi.NULL:
                _check(False, "xenforeignmemory_map", domid)
        except BaseException:
            self._core.release()
            raise
        m = ForeignMapping(ffi, self._core, addr, n * PAGE_SIZE, writable,
                           lambda raw, a: lib.xenforeignmemory_unmap(raw, a, n))
        m.domid, m.gfns, m.errors = domid, frames, list(err)
        if any(m.errors) and not partial:
            m.unmap()
            raise ForeignFrameError(domid, frames, m.errors)
        self._track(m)
        return m

    def resource_size(self, domid: int, type: int, id: int) -> int:  # noqa: A002
        """The size in bytes of domain ``domid``'s resource (``type``, ``id``)."""
        ffi, lib = self._ffi_lib
        size = ffi.new("size_t *")
        with self._use() as raw:
            rc = lib.xenforeignmemory_resource_size(raw, domid, int(type), id, size)
        _check(rc == 0, "xenforeignmemory_resource_size", domid)
        return int(size[0])

    def map_resource(self, domid: int, type: int, id: int, frame: int,  # noqa: A002
                     nr_frames: int, *, writable: bool = False) -> Mapping:
        """Map ``nr_frames`` frames from ``frame`` of domain ``domid``'s resource
        (``type``, ``id``): e.g. ``Resource.GRANT_TABLE, GRANT_TABLE_SHARED, 0, n``."""
        ffi, lib = self._ffi_lib
        if nr_frames < 1:
            raise ArgumentError("map at least one frame")
        prot = lib.PROT_READ | (lib.PROT_WRITE if writable else 0)
        paddr = ffi.new("void **")
        with self._use():
            raw = self._core.acquire()
            try:
                fres = lib.xenforeignmemory_map_resource(raw, domid, int(type), id, frame,
                                                         nr_frames, paddr, prot, 0)
                _check(fres != ffi.NULL, "xenforeignmemory_map_resource", domid)
            except BaseException:
                self._core.release()
                raise
        keep: Any = fres

        def unmap(raw: Any, _addr: Any) -> None:
            lib.xenforeignmemory_unmap_resource(raw, keep)

        m = Mapping(ffi, self._core, paddr[0], nr_frames * PAGE_SIZE, writable, unmap)
        self._track(m)
        return m
