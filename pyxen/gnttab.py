"""pyxen.gnttab: grant tables through libxengnttab: mapping and copying other domains'
grants (:class:`GrantTable`, ``/dev/xen/gntdev``) and granting our own pages to them
(:class:`GrantShare`, ``/dev/xen/gntalloc``).

``GrantTable.map(domid, refs)`` maps one grant reference or a batch into a
:class:`~pyxen._mapped.Mapping` whose :attr:`buffer` is a memoryview of the pages (no copy);
it is unmapped by ``unmap()``, by leaving its ``with`` block, by closing the handle, or by the
garbage collector. After the unmap the mapping's reads and writes raise HandleClosedError and
its buffer is released (ValueError on use, never a stale pointer); ``unmap()`` refuses with
MappingBusyError while something holds an export of the buffer. ``GrantTable.copy`` moves
bytes between grants and Python buffers without mapping (``GNTTABOP_copy``).

``GrantShare.share(domid, count)`` allocates pages granted to ``domid``: a
:class:`SharedPages` mapping with the grant references (``refs``) to hand over.

Both map calls can ask for an unmap notification: when the mapping goes (even if the
process dies), the byte at ``notify_offset`` is cleared and/or ``notify_port`` (a local
event-channel port bound through pyxen.evtchn) is signalled.
"""

from __future__ import annotations

import errno as _errno
import os
from dataclasses import dataclass
from typing import Any, Sequence, Union

from ._log import XtlLogger
from ._mapped import PAGE_SIZE, Mapping, MappingBusyError, StableHandle
from ._native import xen
from .errors import (ArgumentError, ArgumentTypeError, DomainNotFoundError, XenError,
                    XenUnavailableError)

__all__ = ["open", "open_share", "GrantTable", "GrantShare", "GrantMapping", "SharedPages",
           "FromGrant", "ToGrant", "GnttabError", "GrantRefError", "GrantCopyError",
           "MappingBusyError", "PAGE_SIZE"]

_NONE = 0xFFFFFFFF  # "no notification" for notify_offset / notify_port (-1 as uint32_t)


class GnttabError(XenError):
    """A libxengnttab call failed (``domid``/``refs`` say what it was about, when known)."""

    def __init__(self, err: int, *, call: str, domid: int | None = None,
                 refs: Sequence[int] | None = None, message: str | None = None):
        about = [f"domain {domid}"] if domid is not None else []
        about += [f"refs {list(refs)}"] if refs else []
        super().__init__(err, message, call=call, detail=", ".join(about) or None)
        self.domid = domid
        self.refs = list(refs) if refs else []


class GrantRefError(GnttabError, ValueError):
    """A grant reference the granting domain has not granted (or not writable, or the
    domain does not exist): the map or copy was refused."""


class GrantDomainError(GrantRefError, DomainNotFoundError):
    """No such granting domain (GNTST_bad_domain)."""


class GrantCopyError(GnttabError):
    """Some segments of a grant copy failed: ``statuses`` holds each segment's GNTST_*
    status (0 is success), ``failed`` the indexes of those that failed."""

    def __init__(self, statuses: list[int]):
        self.statuses = statuses
        self.failed = [i for i, s in enumerate(statuses) if s != 0]
        what = ", ".join(f"segment {i}: {_status_name(statuses[i])}" for i in self.failed)
        super().__init__(_errno.EIO, call="xengnttab_grant_copy", message=what)


# GNTST_* (xen/grant_table.h)
_STATUS = {0: "okay", -1: "general_error", -2: "bad_domain", -3: "bad_gntref",
           -4: "bad_handle", -5: "bad_virt_addr", -6: "bad_dev_addr", -7: "no_device_space",
           -8: "permission_denied", -9: "bad_page", -10: "bad_copy_arg",
           -11: "address_too_big", -12: "eagain", -13: "no_space"}


def _status_name(status: int) -> str:
    return "GNTST_" + _STATUS.get(status, str(status))


_ABSENT = (_errno.ENOENT, _errno.ENODEV, _errno.ENXIO)
_DEVICES = {"xengnttab_open": ("/dev/xen/gntdev", "xen-gntdev"),
            "xengntshr_open": ("/dev/xen/gntalloc", "xen-gntalloc")}


def _check(ok: bool, call: str, *, domid: int | None = None,
           refs: Sequence[int] | None = None) -> None:
    """The one libxengnttab error mapper: a failed call (``ok`` false; errno set) →
    GnttabError typed by errno, or XenUnavailableError for a missing device."""
    if ok:
        return
    err = xen()[0].errno
    if call in _DEVICES and err in _ABSENT:
        dev, mod = _DEVICES[call]
        raise XenUnavailableError(f"cannot open {dev} ({os.strerror(err)}): not a Xen domain, "
                                  f"or the driver is not loaded (modprobe {mod})")
    cls: type[GnttabError] = GnttabError
    if err == _errno.ESRCH:
        cls = GrantDomainError
    elif err in (_errno.EINVAL, _errno.EFAULT, _errno.ENOENT, _errno.EPERM, _errno.EACCES):
        cls = GrantRefError if refs or domid is not None else GnttabError
    raise cls(err, call=call, domid=domid, refs=refs)


def open() -> GrantTable:  # noqa: A001 - the module's verb, as pyxen.ctrl.open
    """Open ``/dev/xen/gntdev``: map and copy other domains' grants."""
    return GrantTable()


def open_share() -> GrantShare:
    """Open ``/dev/xen/gntalloc``: grant our pages to other domains."""
    return GrantShare()


def _u32(name: str, value: int | None) -> int:
    if value is None:
        return _NONE
    if not 0 <= value < _NONE:
        raise ArgumentError(f"{name} {value} out of range")
    return value


def _notify(notify_offset: int | None, notify_port: int | None, size: int) -> tuple[int, int]:
    if notify_offset is not None and not 0 <= notify_offset < size:
        raise ArgumentError(f"notify_offset {notify_offset} outside the {size}-byte mapping")
    return _u32("notify_offset", notify_offset), _u32("notify_port", notify_port)


class GrantMapping(Mapping):
    """Grant references of ``domids`` mapped here; ``refs[i]`` is page ``i``."""

    domids: list[int]
    refs: list[int]


class SharedPages(Mapping):
    """Pages of ours granted to ``domid``; ``refs[i]`` is page ``i``'s grant reference."""

    domid: int
    refs: list[int]


@dataclass(frozen=True)
class FromGrant:
    """A grant-copy segment: ``len(dest)`` bytes from ``domid``'s grant ``ref`` (at
    ``offset`` in its page) into the writable buffer ``dest``."""

    domid: int
    ref: int
    offset: int
    dest: Any  # a writable buffer

    def __post_init__(self) -> None:
        _check_segment(self.offset, memoryview(self.dest).nbytes)


@dataclass(frozen=True)
class ToGrant:
    """A grant-copy segment: the bytes of ``src`` into ``domid``'s grant ``ref`` (at
    ``offset`` in its page)."""

    src: Any  # a buffer
    domid: int
    ref: int
    offset: int

    def __post_init__(self) -> None:
        _check_segment(self.offset, memoryview(self.src).nbytes)


Segment = Union[FromGrant, ToGrant]


def _check_segment(offset: int, length: int) -> None:
    """A segment stays within one granted page (the hypervisor's rule)."""
    if not 0 <= offset < PAGE_SIZE:
        raise ArgumentError(f"offset {offset} outside a {PAGE_SIZE}-byte page")
    if not 0 < length <= PAGE_SIZE - offset:
        raise ArgumentError(f"a {length}-byte segment at offset {offset} does not fit in a "
                         f"{PAGE_SIZE}-byte page")


class GrantTable(StableHandle):
    """A libxengnttab handle (gntdev): maps and copies grants of other domains."""

    def __init__(self) -> None:
        ffi, lib = self._ffi_lib = xen()
        log = XtlLogger("pyxen.gnttab")
        raw = lib.xengnttab_open(log.ptr, 0)
        _check(raw != ffi.NULL, "xengnttab_open")
        self._open_core(ffi, raw, lib.xengnttab_close, keep=log)

    def map(self, domid: int | Sequence[int], refs: int | Sequence[int], *,
            writable: bool = False, notify_offset: int | None = None,
            notify_port: int | None = None) -> GrantMapping:
        """Map grant ``refs`` (one or a batch) of ``domid`` (one, or one per ref) into
        consecutive pages. ``notify_offset``/``notify_port`` (a single ref only): on unmap,
        clear that byte of the page and/or signal that local event-channel port."""
        ffi, lib = self._ffi_lib
        ref_list = [refs] if isinstance(refs, int) else list(refs)
        if not ref_list:
            raise ArgumentError("no grant references to map")
        dom_list = [domid] * len(ref_list) if isinstance(domid, int) else list(domid)
        if len(dom_list) != len(ref_list):
            raise ArgumentError(f"{len(dom_list)} domids for {len(ref_list)} refs")
        notify = notify_offset is not None or notify_port is not None
        if notify and len(ref_list) != 1:
            raise ArgumentError("unmap notification needs a single grant reference")
        if notify_offset is not None and not writable:
            raise ArgumentError("clearing a byte on unmap needs a writable mapping")
        prot = lib.PROT_READ | (lib.PROT_WRITE if writable else 0)
        n = len(ref_list)
        size = n * PAGE_SIZE
        self._p()
        raw = self._core.acquire()  # released by the mapping's unmap
        try:
            if notify:
                off, port = _notify(notify_offset, notify_port, size)
                addr = lib.xengnttab_map_grant_ref_notify(raw, dom_list[0], ref_list[0],
                                                          prot, off, port)
            elif n == 1:
                addr = lib.xengnttab_map_grant_ref(raw, dom_list[0], ref_list[0], prot)
            else:
                addr = lib.xengnttab_map_grant_refs(
                    raw, n, ffi.new("uint32_t[]", dom_list),
                    ffi.new("uint32_t[]", ref_list), prot)
            if addr == ffi.NULL:
                one = dom_list[0] if len(set(dom_list)) == 1 else None
                _check(False, "xengnttab_map_grant_refs", domid=one, refs=ref_list)
        except BaseException:
            self._core.release()
            raise
        m = GrantMapping(ffi, self._core, addr, size, writable,
                         lambda raw, a: lib.xengnttab_unmap(raw, a, n))
        m.domids, m.refs = dom_list, ref_list
        self._track(m)
        return m

    def set_max_grants(self, count: int) -> None:
        """How many grants this handle may map at once (before any map call)."""
        _, lib = self._ffi_lib
        with self._use() as raw:
            _check(lib.xengnttab_set_max_grants(raw, count) == 0, "xengnttab_set_max_grants")

    def copy(self, segments: Sequence[Segment]) -> None:
        """Copy each segment (:class:`FromGrant`, :class:`ToGrant`) in one batch; raises
        GrantCopyError naming the segments that failed (the others are done)."""
        ffi, lib = self._ffi_lib
        segs = segments if isinstance(segments, list) else list(segments)
        if not segs:
            return
        init = []
        keep = []
        for i, s in enumerate(segs):
            if isinstance(s, FromGrant):
                buf = ffi.from_buffer(s.dest, require_writable=True)
                init.append({"flags": lib.GNTCOPY_source_gref, "len": len(buf),
                             "source": {"foreign": {"domid": s.domid, "ref": s.ref,
                                                    "offset": s.offset}},
                             "dest": {"virt": buf}})
            elif isinstance(s, ToGrant):
                buf = ffi.from_buffer(s.src)
                init.append({"flags": lib.GNTCOPY_dest_gref, "len": len(buf),
                             "dest": {"foreign": {"domid": s.domid, "ref": s.ref,
                                                  "offset": s.offset}},
                             "source": {"virt": buf}})
            else:
                raise ArgumentTypeError(f"segment {i}: expected FromGrant or ToGrant, got {s!r}")
            keep.append(buf)  # the buffers stay alive (and exported) during the copy
        c = ffi.new("xengnttab_grant_copy_segment_t[]", init)
        n = len(init)
        rc = lib.xengnttab_grant_copy(self._p(), n, c)  # the call holds the handle open
        if rc != 0:
            _check(False, "xengnttab_grant_copy")
        if n == 1:
            if c[0].status:
                raise GrantCopyError([c[0].status])
            return
        statuses = [c[i].status for i in range(n)]
        if any(statuses):
            raise GrantCopyError(statuses)


class GrantShare(StableHandle):
    """A libxengnttab gntshr handle (gntalloc): grants our pages to other domains."""

    def __init__(self) -> None:
        ffi, lib = self._ffi_lib = xen()
        log = XtlLogger("pyxen.gnttab")
        raw = lib.xengntshr_open(log.ptr, 0)
        _check(raw != ffi.NULL, "xengntshr_open")
        self._open_core(ffi, raw, lib.xengntshr_close, keep=log)

    def share(self, domid: int, count: int = 1, *, writable: bool = True,
              notify_offset: int | None = None,
              notify_port: int | None = None) -> SharedPages:
        """Allocate ``count`` zeroed pages granted to ``domid`` (writable by it unless
        ``writable=False``; always writable here). ``notify_offset``/``notify_port``
        (one page only): when we unshare, clear that byte / signal that local port.
        Unshared by ``unmap()``, by leaving its ``with`` block or by closing the handle."""
        ffi, lib = self._ffi_lib
        if count < 1:
            raise ArgumentError("share at least one page")
        notify = notify_offset is not None or notify_port is not None
        if notify and count != 1:
            raise ArgumentError("unmap notification needs a single page")
        refs = ffi.new("uint32_t[]", count)
        with self._use():
            raw = self._core.acquire()  # released by the mapping's unshare
            try:
                if notify:
                    off, port = _notify(notify_offset, notify_port, PAGE_SIZE)
                    addr = lib.xengntshr_share_page_notify(raw, domid, refs, int(writable),
                                                           off, port)
                else:
                    addr = lib.xengntshr_share_pages(raw, domid, count, refs, int(writable))
                _check(addr != ffi.NULL, "xengntshr_share_pages", domid=domid)
            except BaseException:
                self._core.release()
                raise
        m = SharedPages(ffi, self._core, addr, count * PAGE_SIZE, True,
                        lambda raw, a: lib.xengntshr_unshare(raw, a, count))
        m.domid, m.refs = domid, list(refs)
        self._track(m)
        return m

    def unshare(self, pages: SharedPages) -> None:
        """End a share (as ``pages.unmap()``)."""
        pages.unmap()
