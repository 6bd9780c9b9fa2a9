"""pyxen.light: libxenlight (libxl), the toolstack library behind ``xl``.

``with pyxen.light.open() as ctx:`` gives a :class:`Context` (``libxl_ctx_alloc`` with
libxl's log routed into Python ``logging`` under ``pyxen.light``). Each method maps to one
libxl call; domains are named by id or by name. Every failure raises :class:`LibxlError`
(or a subclass) from libxl's ``ERROR_*`` code.

Domain creation takes a :class:`pyxen.config.DomainConfig` (or a libxl JSON object): it is
converted to libxl's JSON, read into a ``libxl_domain_config`` by
``libxl_domain_config_from_json`` and created with ``libxl_domain_create_new`` (synchronous:
``ao_how`` NULL). On failure libxl destroys what it built.
"""

from __future__ import annotations

import enum
import errno as _errno
import json
import uuid as _uuid
from dataclasses import dataclass

from ._handle import Handle
from ._log import XtlLogger
from ._native import require_dom0, xen
from .config import DiskSpec, DomainConfig, DomainType, disk_from_c, parse_disk
from .errors import XenError

__all__ = ["open", "Context", "DomainInfo", "DiskInfo", "ShutdownReason", "LibxlError",
           "DomainNotFound", "LibxlInvalid", "ConsoleType"]


class LibxlError(XenError):
    """A libxl call failed: ``rc`` is libxl's ERROR_* code, ``code`` its name."""

    def __init__(self, rc: int, code: str, *, call: str, domid: int | None = None,
                 detail: str | None = None):
        err = _ERRNO.get(code, _errno.EIO)
        what = f"libxl error {code} ({rc})"
        if domid is not None:
            what += f" for domain {domid}"
        super().__init__(err, what, call=call, detail=detail)
        self.rc = rc
        self.code = code
        self.domid = domid


class DomainNotFound(LibxlError, LookupError):
    """No such domain (id or name)."""


class LibxlInvalid(LibxlError, ValueError):
    """libxl rejected an argument or configuration (ERROR_INVAL and friends)."""


_ERRNO = {"NOMEM": _errno.ENOMEM, "INVAL": _errno.EINVAL, "NI": _errno.ENOSYS,
          "DOMAIN_NOTFOUND": _errno.ESRCH, "NOTFOUND": _errno.ENOENT,
          "DEVICE_EXISTS": _errno.EEXIST, "TIMEDOUT": _errno.ETIMEDOUT,
          "GUEST_TIMEDOUT": _errno.ETIMEDOUT, "NOPARAVIRT": _errno.EOPNOTSUPP,
          "NOT_READY": _errno.EAGAIN, "LOCK_FAIL": _errno.EBUSY,
          "JSON_CONFIG_EMPTY": _errno.ENODATA, "FEATURE_REMOVED": _errno.ENOSYS,
          "PROTOCOL_ERROR_QMP": _errno.EPROTO, "QMP_DEVICE_NOT_ACTIVE": _errno.ENODEV}
_CLASSES = {"DOMAIN_NOTFOUND": DomainNotFound, "NOTFOUND": DomainNotFound,
            "INVAL": LibxlInvalid, "JSON_CONFIG_EMPTY": LibxlInvalid}


def _check(rc: int, call: str, domid: int | None = None, detail: str | None = None) -> int:
    """The one libxl error mapper: negative ERROR_* rc → LibxlError subclass."""
    if rc >= 0:
        return rc
    ffi, lib = xen()
    s = lib.libxl_error_to_string(rc)
    code = ffi.string(s).decode().upper() if s != ffi.NULL else str(rc)
    cls = _CLASSES.get(code, LibxlError)
    raise cls(rc, code, call=call, domid=domid, detail=detail)


class ShutdownReason(enum.Enum):
    POWEROFF = "poweroff"
    REBOOT = "reboot"
    SUSPEND = "suspend"
    CRASH = "crash"
    WATCHDOG = "watchdog"
    SOFT_RESET = "soft_reset"
    UNKNOWN = "unknown"


class ConsoleType(enum.IntEnum):
    SERIAL = 1
    PV = 2
    VUART = 3


@dataclass(frozen=True)
class DiskInfo:
    """A disk of a running domain: its spec plus ``libxl_device_disk_getinfo``'s view
    (``state`` is the xenbus state, 4 = connected)."""

    disk: DiskSpec
    devid: int
    state: int
    evtch: int
    rref: int
    backend_id: int
    backend: str | None
    frontend: str | None

    @property
    def vdev(self) -> str:
        return self.disk.vdev

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["disk"] = {k: v for k, v in self.disk.__dict__.items() if k != "spec"}
        return d


@dataclass(frozen=True)
class DomainInfo:
    """One domain, from libxl_dominfo (memory in KiB, cpu_time in ns)."""

    domid: int
    name: str | None
    uuid: str
    type: DomainType | None
    running: bool
    blocked: bool
    paused: bool
    shutdown: bool
    dying: bool
    shutdown_reason: ShutdownReason | None
    current_memkb: int
    outstanding_memkb: int
    max_memkb: int
    cpu_time: int
    vcpu_online: int
    vcpu_max_id: int
    cpupool: int

    @property
    def memory_mb(self) -> int:
        """What ``xl list`` shows in Mem: (current + outstanding) / 1024."""
        return (self.current_memkb + self.outstanding_memkb) // 1024

    @property
    def state(self) -> str:
        """``xl list``'s state column (``r-----``)."""
        r = self.shutdown_reason
        return "".join([
            "r" if self.running else "-", "b" if self.blocked else "-",
            "p" if self.paused else "-",
            "s" if self.shutdown else "-",
            "c" if self.shutdown and r == ShutdownReason.CRASH else "-",
            "d" if self.dying else "-"])

    @property
    def cpu_seconds(self) -> float:
        return self.cpu_time / 1e9

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["type"] = self.type.value if self.type else None
        d["shutdown_reason"] = self.shutdown_reason.value if self.shutdown_reason else None
        d["state"] = self.state
        d["memory_mb"] = self.memory_mb
        return d


def open() -> "Context":  # noqa: A001 - module-level constructor like pyxen.ctrl.open
    """A libxl context (needs a Xen dom0)."""
    return Context()


class Context(Handle):
    """A ``libxl_ctx``. Not thread-safe by itself: use one per thread."""

    def __init__(self):
        require_dom0("libxl")
        ffi, lib = xen()
        self._lib = lib
        self._logger = XtlLogger("pyxen.light")
        pp = ffi.new("libxl_ctx **")
        rc = lib.libxl_ctx_alloc(pp, lib.LIBXL_VERSION, 0, self._logger.ptr)
        _check(rc, "libxl_ctx_alloc")
        logger = self._logger

        def free(p, _keep=logger):  # the logger outlives the context
            lib.libxl_ctx_free(p)

        self._adopt(ffi, pp[0], free)

    # -- names and ids -------------------------------------------------------------------
    def domid(self, dom: int | str) -> int:
        """The id of an existing domain, given an id (int or digits; checked with
        ``libxl_domain_info``) or a name (``libxl_name_to_domid``)."""
        if isinstance(dom, int) or (isinstance(dom, str) and dom.isdigit()):
            domid = int(dom)
            if not 0 <= domid < 0x7FF0:
                raise DomainNotFound(-6, "DOMAIN_NOTFOUND", call="domid", domid=domid,
                                     detail="not a valid domain id")
            ffi, lib = self._ffi, self._lib
            i = ffi.new("libxl_dominfo *")
            lib.libxl_dominfo_init(i)
            try:
                _check(lib.libxl_domain_info(self._p(), i, domid), "libxl_domain_info", domid)
            finally:
                lib.libxl_dominfo_dispose(i)
            return domid
        ffi, lib = self._ffi, self._lib
        out = ffi.new("uint32_t *")
        rc = lib.libxl_name_to_domid(self._p(), str(dom).encode(), out)
        if rc:
            raise DomainNotFound(rc if rc < 0 else -6, "DOMAIN_NOTFOUND",
                                 call="libxl_name_to_domid", detail=f"no domain named {dom!r}")
        return int(out[0])

    def name(self, domid: int) -> str | None:
        ffi, lib = self._ffi, self._lib
        p = lib.libxl_domid_to_name(self._p(), domid)
        if p == ffi.NULL:
            return None
        try:
            return ffi.string(p).decode("utf-8", "replace")
        finally:
            lib.free(p)

    # -- listing -------------------------------------------------------------------------
    def _info(self, i) -> DomainInfo:
        ffi, lib = self._ffi, self._lib
        t = lib.libxl_domain_type_to_string(i.domain_type)
        try:
            dtype = DomainType(ffi.string(t).decode()) if t != ffi.NULL else None
        except ValueError:
            dtype = None
        reason = None
        if i.shutdown:
            r = lib.libxl_shutdown_reason_to_string(i.shutdown_reason)
            try:
                reason = ShutdownReason(ffi.string(r).decode()) if r != ffi.NULL else None
            except ValueError:
                reason = ShutdownReason.UNKNOWN
        return DomainInfo(
            domid=int(i.domid), name=self.name(int(i.domid)),
            uuid=str(_uuid.UUID(bytes=bytes(ffi.buffer(i.uuid.uuid, 16)))),
            type=dtype, running=bool(i.running), blocked=bool(i.blocked),
            paused=bool(i.paused), shutdown=bool(i.shutdown), dying=bool(i.dying),
            shutdown_reason=reason, current_memkb=int(i.current_memkb),
            outstanding_memkb=int(i.outstanding_memkb), max_memkb=int(i.max_memkb),
            cpu_time=int(i.cpu_time), vcpu_online=int(i.vcpu_online),
            vcpu_max_id=int(i.vcpu_max_id), cpupool=int(i.cpupool))

    def list(self) -> list[DomainInfo]:
        """All domains (``libxl_list_domain``)."""
        ffi, lib = self._ffi, self._lib
        n = ffi.new("int *")
        arr = lib.libxl_list_domain(self._p(), n)
        if arr == ffi.NULL:
            _check(-3, "libxl_list_domain")
        try:
            return [self._info(arr[k]) for k in range(n[0])]
        finally:
            lib.libxl_dominfo_list_free(arr, n[0])

    def info(self, dom: int | str) -> DomainInfo:
        """One domain (``libxl_domain_info``)."""
        ffi, lib = self._ffi, self._lib
        domid = dom if isinstance(dom, int) and 0 <= dom < 0x7FF0 else self.domid(dom)
        i = ffi.new("libxl_dominfo *")
        lib.libxl_dominfo_init(i)
        try:
            _check(lib.libxl_domain_info(self._p(), i, domid), "libxl_domain_info", domid)
            return self._info(i)
        finally:
            lib.libxl_dominfo_dispose(i)

    def exists(self, dom: int | str) -> bool:
        try:
            self.info(dom)
            return True
        except DomainNotFound:
            return False

    # -- libxl_domain_config <-> JSON ----------------------------------------------------
    def _d_config(self, cfg: DomainConfig | dict | str):
        """A new libxl_domain_config read from cfg's JSON (caller disposes)."""
        ffi, lib = self._ffi, self._lib
        if isinstance(cfg, DomainConfig):
            text = json.dumps(cfg.to_libxl_json())
        elif isinstance(cfg, dict):
            text = json.dumps(cfg)
        else:
            text = str(cfg)
        d = ffi.new("libxl_domain_config *")
        lib.libxl_domain_config_init(d)
        rc = lib.libxl_domain_config_from_json(self._p(), d, text.encode())
        if rc:
            lib.libxl_domain_config_dispose(d)
            _check(rc if rc < 0 else -6, "libxl_domain_config_from_json",
                   detail="libxl rejected the domain config JSON")
        return d

    def _to_json(self, d) -> dict:
        ffi, lib = self._ffi, self._lib
        p = lib.libxl_domain_config_to_json(self._p(), d)
        if p == ffi.NULL:
            _check(-3, "libxl_domain_config_to_json")
        try:
            return json.loads(ffi.string(p).decode("utf-8"))
        finally:
            lib.free(p)

    def config_to_libxl(self, cfg: DomainConfig | dict | str) -> dict:
        """cfg as libxl reads and re-prints it (``libxl_domain_config_from_json`` then
        ``libxl_domain_config_to_json``): validates the conversion."""
        d = self._d_config(cfg)
        try:
            return self._to_json(d)
        finally:
            self._lib.libxl_domain_config_dispose(d)

    def config_from_libxl(self, js: dict, like: DomainConfig | None = None) -> DomainConfig:
        return DomainConfig.from_libxl_json(js, like=like)

    # -- lifecycle -----------------------------------------------------------------------
    def create(self, cfg: DomainConfig | dict | str, *, paused: bool = False) -> int:
        """Create a domain and wait until it is built (``libxl_domain_create_new``, ao_how
        NULL); unpause it unless ``paused``. Returns its domid."""
        ffi, lib = self._ffi, self._lib
        d = self._d_config(cfg)
        try:
            domid = ffi.new("uint32_t *", 0xFFFFFFFF)
            rc = lib.libxl_domain_create_new(self._p(), d, domid, ffi.NULL, ffi.NULL)
            _check(rc, "libxl_domain_create_new",
                   detail="libxl destroyed the partly built domain")
            new = int(domid[0])
        finally:
            lib.libxl_domain_config_dispose(d)
        if not paused:
            try:
                self.unpause(new)
            except LibxlError:
                self.destroy(new)
                raise
        return new

    def destroy(self, dom: int | str) -> None:
        domid = self.domid(dom)
        _check(self._lib.libxl_domain_destroy(self._p(), domid, self._ffi.NULL),
               "libxl_domain_destroy", domid)

    def shutdown(self, dom: int | str) -> None:
        """Ask the guest to shut down (PV control node / ACPI); returns at once."""
        domid = self.domid(dom)
        _check(self._lib.libxl_domain_shutdown(self._p(), domid, self._ffi.NULL),
               "libxl_domain_shutdown", domid)

    def reboot(self, dom: int | str) -> None:
        domid = self.domid(dom)
        _check(self._lib.libxl_domain_reboot(self._p(), domid, self._ffi.NULL),
               "libxl_domain_reboot", domid)

    def pause(self, dom: int | str) -> None:
        domid = self.domid(dom)
        _check(self._lib.libxl_domain_pause(self._p(), domid, self._ffi.NULL),
               "libxl_domain_pause", domid)

    def unpause(self, dom: int | str) -> None:
        domid = self.domid(dom)
        _check(self._lib.libxl_domain_unpause(self._p(), domid, self._ffi.NULL),
               "libxl_domain_unpause", domid)

    def set_memory_target(self, dom: int | str, target_kb: int, *, relative: bool = False,
                          enforce: bool = True) -> None:
        """``libxl_set_memory_target`` (``xl mem-set`` uses enforce=True)."""
        domid = self.domid(dom)
        if not relative and target_kb <= 0:
            raise LibxlInvalid(-6, "INVAL", call="libxl_set_memory_target", domid=domid,
                               detail=f"target {target_kb} KiB must be positive")
        _check(self._lib.libxl_set_memory_target(self._p(), domid, int(target_kb),
                                                 int(relative), int(enforce)),
               "libxl_set_memory_target", domid)

    def mem_set(self, dom: int | str, memory_mb: int) -> None:
        """``xl mem-set DOM <MiB>``."""
        self.set_memory_target(dom, int(memory_mb) * 1024)

    def set_vcpus_online(self, dom: int | str, count: int) -> None:
        """Bring vcpus 0..count-1 online and the rest offline (``libxl_set_vcpuonline``)."""
        ffi, lib = self._ffi, self._lib
        domid = self.domid(dom)
        info = self.info(domid)
        nmax = info.vcpu_max_id + 1
        if not 1 <= count <= nmax:
            raise LibxlInvalid(-6, "INVAL", call="libxl_set_vcpuonline", domid=domid,
                               detail=f"{count} vcpus requested; domain has 1..{nmax}")
        bm = ffi.new("libxl_bitmap *")
        lib.libxl_bitmap_init(bm)
        try:
            _check(lib.libxl_bitmap_alloc(self._p(), bm, nmax), "libxl_bitmap_alloc", domid)
            for i in range(count):
                lib.libxl_bitmap_set(bm, i)
            _check(lib.libxl_set_vcpuonline(self._p(), domid, bm, ffi.NULL),
                   "libxl_set_vcpuonline", domid)
        finally:
            lib.libxl_bitmap_dispose(bm)

    def console_tty(self, dom: int | str, num: int = 0,
                    type: ConsoleType = ConsoleType.PV) -> str:  # noqa: A002
        """The pty of a domain's console (``libxl_console_get_tty``)."""
        ffi, lib = self._ffi, self._lib
        domid = self.domid(dom)
        out = ffi.new("char **")
        _check(lib.libxl_console_get_tty(self._p(), domid, num, int(type), out),
               "libxl_console_get_tty", domid)
        try:
            return ffi.string(out[0]).decode()
        finally:
            lib.free(out[0])

    def retrieve_config_json(self, dom: int | str) -> dict:
        """A running domain's config as libxl JSON (``libxl_retrieve_domain_configuration``)."""
        ffi, lib = self._ffi, self._lib
        domid = self.domid(dom)
        d = ffi.new("libxl_domain_config *")
        lib.libxl_domain_config_init(d)
        try:
            _check(lib.libxl_retrieve_domain_configuration(self._p(), domid, d, ffi.NULL),
                   "libxl_retrieve_domain_configuration", domid)
            return self._to_json(d)
        finally:
            lib.libxl_domain_config_dispose(d)

    def retrieve_config(self, dom: int | str) -> DomainConfig:
        """A running domain's config as a DomainConfig."""
        return DomainConfig.from_libxl_json(self.retrieve_config_json(dom))

    # -- disks ---------------------------------------------------------------------------
    def _disk_struct(self, disk: str | DiskSpec):
        """A new libxl_device_disk (caller disposes) from a spec string (xlu_disk_parse,
        via pyxen.config) or a DiskSpec (libxl_device_disk_from_json)."""
        ffi, lib = self._ffi, self._lib
        if isinstance(disk, str):
            disk = parse_disk(disk)
        d = ffi.new("libxl_device_disk *")
        lib.libxl_device_disk_init(d)
        rc = lib.libxl_device_disk_from_json(self._p(), d,
                                             json.dumps(disk.to_libxl_json()).encode())
        if rc:
            lib.libxl_device_disk_dispose(d)
            _check(rc if rc < 0 else -6, "libxl_device_disk_from_json")
        return d

    def disk_add(self, dom: int | str, disk: str | DiskSpec) -> None:
        """Attach a disk to a running domain (``libxl_device_disk_add``; ``xl block-attach``).
        ``disk`` is an xl disk spec string or a DiskSpec."""
        domid = self.domid(dom)
        d = self._disk_struct(disk)
        try:
            rc = self._lib.libxl_device_disk_add(self._p(), domid, d, self._ffi.NULL)
            if rc:
                # libxl can leave a half-added vbd behind (e.g. a hotplug script timeout):
                # force it away so a failed attach leaves nothing
                self._lib.libxl_device_disk_destroy(self._p(), domid, d, self._ffi.NULL)
                _check(rc, "libxl_device_disk_add", domid)
        finally:
            self._lib.libxl_device_disk_dispose(d)

    def disk_list(self, dom: int | str) -> list[DiskInfo]:
        """The domain's disks (``libxl_device_disk_list`` + ``libxl_device_disk_getinfo``)."""
        ffi, lib = self._ffi, self._lib
        domid = self.domid(dom)
        n = ffi.new("int *")
        arr = lib.libxl_device_disk_list(self._p(), domid, n)
        if arr == ffi.NULL:
            return []
        out = []
        try:
            for k in range(n[0]):
                info = ffi.new("libxl_diskinfo *")
                lib.libxl_diskinfo_init(info)
                try:
                    _check(lib.libxl_device_disk_getinfo(self._p(), domid, arr + k, info),
                           "libxl_device_disk_getinfo", domid)

                    def s_(p):
                        return None if p == ffi.NULL else ffi.string(p).decode()

                    out.append(DiskInfo(disk=disk_from_c(arr[k]), devid=int(info.devid),
                                        state=int(info.state), evtch=int(info.evtch),
                                        rref=int(info.rref), backend_id=int(info.backend_id),
                                        backend=s_(info.backend), frontend=s_(info.frontend)))
                finally:
                    lib.libxl_diskinfo_dispose(info)
        finally:
            lib.libxl_device_disk_list_free(arr, n[0])
        return out

    def disk_remove(self, dom: int | str, vdev: str) -> None:
        """Detach a disk by its vdev (``libxl_vdev_to_device_disk`` +
        ``libxl_device_disk_remove``; ``xl block-detach``)."""
        ffi, lib = self._ffi, self._lib
        domid = self.domid(dom)
        d = ffi.new("libxl_device_disk *")
        lib.libxl_device_disk_init(d)
        try:
            rc = lib.libxl_vdev_to_device_disk(self._p(), domid, vdev.encode(), d)
            if rc:
                raise LibxlError(rc if rc < 0 else -3, "NOTFOUND" if rc else "FAIL",
                                 call="libxl_vdev_to_device_disk", domid=domid,
                                 detail=f"no disk {vdev!r}")
            _check(lib.libxl_device_disk_remove(self._p(), domid, d, ffi.NULL),
                   "libxl_device_disk_remove", domid)
        finally:
            lib.libxl_device_disk_dispose(d)
