"""pyxen.devices: hot-plug disks (vbd) and network interfaces (vif) into running domains by
writing the xenstore backend/frontend layout libxl uses (Xen 4.17), without hotplug scripts.

``attach_disk(dom, "format=raw, vdev=xvde, access=rw, target=/var/tmp/d.img")`` parses the
spec with libxlutil's own ``xlu_disk_parse`` (pyxen.config.parse_disk), checks everything
that can be checked before writing anything (typed :class:`DeviceSpecError`,
:class:`DeviceBusyError`, :class:`BackendDomainError`), then in one xenstore transaction
writes the backend ``/local/domain/<bdom>/backend/vbd/<domid>/<devid>``, the frontend
``/local/domain/<domid>/device/vbd/<devid>`` and the ``/libxl/<domid>/device/vbd/<devid>``
mirror, with libxl's permissions. What the ``block``/``vif-bridge`` hotplug scripts would do
is done in-process: a regular file gets a loop device through the loop ioctls
(LOOP_CTL_GET_FREE + LOOP_CONFIGURE, autoclear), ``physical-device`` (hex major:minor),
``physical-device-path``, ``node`` and ``hotplug-status`` are written once the backend is in
InitWait; a vif's backend interface is enslaved to its bridge (SIOCBRADDIF) and brought up
(SIOCSIFFLAGS) before ``hotplug-status=connected`` lets netback connect. Waiting is done with
xenstore watches, never sleeps, and a timeout names the state the device is stuck in.

``detach(dom, kind, devid)`` writes online=0 and state=Closing in one transaction, waits
for Closed (forcing after ``timeout``), removes frontend, backend and mirror, and releases
the loop device. ``list_disks`` / ``list_nics`` read xenstore like ``xl block-list`` /
``xl network-list``. Devices added by ``xl`` are listed and detachable here and the other
way round, because both sides use the same xenstore layout.

Guests are not trusted (XSA-175): everything under ``/local/domain/<domid>`` is treated as
the guest's, frontend directories included. Which devices a domain has, where their
backends are, and what detach writes to, removes, releases (loop device) or unbridges all
come from dom0-owned nodes only: the ``/libxl/<domid>/device`` mirror, whose ``backend``
must be exactly ``/local/domain/<bdom>/backend/<kind>/<domid>/<devid>``, or, for a device
without a mirror, dom0's own backend directory ``/local/domain/0/backend/<kind>/<domid>/
<devid>``. Loop devices and bridges are released only for backends in dom0. A device with
neither is refused with :class:`DeviceNotFoundError`; the frontend's own ``backend`` and
``backend-id`` nodes are never read. Listings still show the frontend's state, event
channel and ring reference (what the guest reports about itself, as ``xl`` shows them),
parsed as bounded numbers; ``row()`` escapes anything not printable.
"""

from __future__ import annotations

import enum
import functools
import inspect
import threading
import errno as _errno
import os
import re
import select
import socket
import stat
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, TypeVar

from . import _interrupt, _native, xspath
from ._text import printable
from .config import ConfigError, DiskSpec, NicSpec, parse_disk, parse_nic
from .errors import (BackendDomainError, DeviceBusyError, DeviceError,  # noqa: F401
                     DeviceNotFoundError, DeviceSpecError, DeviceSpecTypeError, DeviceTimeout,
                     DomainNotFoundError, HandleClosedError, HotplugError, check_kernel)

if TYPE_CHECKING:
    from .ctrl import Ctrl
    from .xenstore import Transaction, Watch, WireTransaction, XenStore

_R = TypeVar("_R")

__all__ = ["DeviceError", "DeviceSpecError", "DeviceSpecTypeError", "DeviceBusyError",
           "BackendDomainError", "DomainNotFoundError", "DeviceNotFoundError", "DeviceTimeout",
           "HotplugError",
           "XenbusState", "DiskInfo", "NicInfo", "vdev_to_devid", "devid_to_vdev",
           "attach_disk", "attach_nic", "detach", "detach_disk", "detach_nic", "list_disks",
           "list_nics", "list_consoles", "ConsoleInfo", "LoopDevice"]

SCRIPT_DIR = "/etc/xen/scripts"
DEFAULT_BRIDGE = "xenbr0"
DEFAULT_TIMEOUT = 60.0     # libxl: LIBXL_INIT_TIMEOUT (10 s); emulated, loaded labs are slow
DESTROY_TIMEOUT = 10.0     # libxl: LIBXL_DESTROY_TIMEOUT
LOOP_RECORD = "pyxen-loop"  # mirror node: "<loop device> <st_dev>:<st_ino>" of a file disk


# ---------------------------------------------------------------------------------------
# errors and types
# ---------------------------------------------------------------------------------------

# The exception classes live in pyxen.errors. ``DomainNotFoundError`` is
# errors.DomainNotFoundError itself (one class for "no such domain", not a shadow).

class XenbusState(enum.IntEnum):
    UNKNOWN = 0
    INITIALISING = 1
    INIT_WAIT = 2
    INITIALISED = 3
    CONNECTED = 4
    CLOSING = 5
    CLOSED = 6
    RECONFIGURING = 7
    RECONFIGURED = 8

    @classmethod
    def parse(cls, value: str | bytes | int | None) -> "XenbusState | None":
        """The state a xenstore value names, or None (missing or not a state)."""
        if value is None:
            return None
        try:
            return cls(int(value))
        except (ValueError, TypeError):
            return None


# ---------------------------------------------------------------------------------------
# vdev <-> devid (libxl__device_disk_dev_number and its inverse)
# ---------------------------------------------------------------------------------------

_XVD_MAJOR, _SD_MAJOR, _HD_MAJORS = 202, 8, (3, 22)


def _letters_to_index(s: str) -> int:
    """'a' → 0, 'z' → 25, 'aa' → 26 (libxl's bijective base 26)."""
    idx = -1
    for c in s:
        idx = (idx + 1) * 26 + (ord(c) - ord("a"))
    return idx


def _index_to_letters(i: int) -> str:
    out = ""
    i += 1
    while i > 0:
        i, r = divmod(i - 1, 26)
        out = chr(ord("a") + r) + out
    return out


# libxl__device_disk_dev_number's forms, in ASCII, without the C quirks it also takes
# (sscanf's %i reads d010p1 as disk 8, strtoul skips blanks and signs: "xvda +1"): those
# are refused here rather than read another way
_VDEV = re.compile(r"(xvd|hd|sd)([a-z]+)([1-9][0-9]*)?")
_DP = re.compile(r"d(0|[1-9][0-9]*)p(0|[1-9][0-9]*)")
# strtoul(vdev, &ep, 0) with nothing left over: decimal, 0x hex or 0 octal
_VDEV_NUMBER = re.compile(r"[1-9][0-9]*|0[xX][0-9a-fA-F]+|0[0-7]*")
VDEV_MAX = 32          # libxl's and Linux's vdev name buffer
DEVID_MAX = 2**31 - 1  # a libxl_devid is a C int


def vdev_to_devid(vdev: str) -> int:
    """The xenstore device number of a vdev, as libxl computes it: xvdX (202<<8 | disk<<4 |
    part, or the extended (1<<28 | disk<<8 | part) past 15 disks or 15 partitions), dNpM,
    hdX (majors 3/22), sdX (major 8), or a plain number (decimal, 0x hex or 0 octal, as
    strtoul reads it). DeviceSpecError otherwise (DeviceSpecTypeError for a non-str)."""
    if not isinstance(vdev, str):
        raise DeviceSpecTypeError(f"a vdev must be a str, not {type(vdev).__name__}")
    if not vdev:
        raise DeviceSpecError("invalid vdev '' (empty)")
    if len(vdev) > VDEV_MAX:
        raise DeviceSpecError(f"invalid vdev {vdev[:VDEV_MAX]!r}... (longer than "
                              f"{VDEV_MAX} characters)")
    disk = part = None
    m = _DP.fullmatch(vdev)
    if m:
        disk, part = int(m.group(1)), int(m.group(2))
        kind = "xvd"
    else:
        m = _VDEV.fullmatch(vdev)
        if m:
            kind = m.group(1)
            disk = _letters_to_index(m.group(2))
            part = int(m.group(3)) if m.group(3) else 0
        elif _VDEV_NUMBER.fullmatch(vdev):
            n = int(vdev, 16) if vdev[1:2] in ("x", "X") else int(vdev, 8 if vdev[0] == "0"
                                                                   else 10)
            if n > DEVID_MAX:
                raise DeviceSpecError(f"invalid vdev {vdev!r} (number larger than "
                                      f"{DEVID_MAX})")
            return n
        else:
            raise DeviceSpecError(f"invalid vdev {vdev!r} (want xvdX, hdX, sdX or dNpM)")
    if kind == "xvd":
        if disk >= 1 << 20 or part > 255:
            raise DeviceSpecError(f"invalid vdev {vdev!r} (disk or partition out of range)")
        if disk <= 15 and part <= 15:
            return (_XVD_MAJOR << 8) | (disk << 4) | part
        return (1 << 28) | (disk << 8) | part
    if kind == "hd":
        if disk > 3 or part > 63:
            raise DeviceSpecError(f"invalid vdev {vdev!r} (hda-hdd, partitions up to 63)")
        return (_HD_MAJORS[disk >> 1] << 8) | ((disk & 1) << 6) | part
    if disk > 15 or part > 15:
        raise DeviceSpecError(f"invalid vdev {vdev!r} (sda-sdp, partitions up to 15)")
    return (_SD_MAJOR << 8) | (disk << 4) | part


def devid_to_vdev(devid: int) -> str:
    """The inverse of vdev_to_devid (xvd, hd and sd numbers; others come back as digits).
    DeviceSpecError for a devid outside 0..2^31-1 (DeviceSpecTypeError for a non-int)."""
    def name(prefix: str, disk: int, part: int) -> str:
        return prefix + _index_to_letters(disk) + (str(part) if part else "")
    if isinstance(devid, bool) or not isinstance(devid, int):
        raise DeviceSpecTypeError(f"a devid must be an int, not {type(devid).__name__}")
    if not 0 <= devid <= DEVID_MAX:
        raise DeviceSpecError(f"invalid devid {devid} (0..{DEVID_MAX})")
    # a name only where vdev_to_devid gives this very devid back; digits otherwise (an
    # extended number of a small disk, an hd minor past hdb's, bits above 28)
    if devid >> 28 == 1:
        disk, part = (devid >> 8) & 0xFFFFF, devid & 0xFF
        if disk > 15 or part > 15:
            return name("xvd", disk, part)
        return str(devid)
    major, minor = devid >> 8, devid & 0xFF
    if major == _XVD_MAJOR:
        return name("xvd", minor >> 4, minor & 15)
    if major == _SD_MAJOR:
        return name("sd", minor >> 4, minor & 15)
    if major in _HD_MAJORS and minor >> 6 <= 1:
        return name("hd", _HD_MAJORS.index(major) * 2 + (minor >> 6), minor & 63)
    return str(devid)


def _check_target(path: object) -> str:
    """A disk target path that os calls take as it is: a str, no NUL, encodable."""
    if not isinstance(path, str):
        raise DeviceSpecTypeError(f"a disk target must be a str, not {type(path).__name__}")
    if "\0" in path:
        raise DeviceSpecError(f"disk target {path!r} contains a NUL character")
    try:
        os.fsencode(path)
    except UnicodeEncodeError:
        raise DeviceSpecError(f"disk target {path!r} cannot be encoded") from None
    return path


# ---------------------------------------------------------------------------------------
# loop devices (ioctls from <linux/loop.h>)
# ---------------------------------------------------------------------------------------

# Constants and struct layouts are the compiler's (csrc/linux.h, module pyxen._linux).
_LX: Any = None


def _lx() -> tuple[Any, Any]:
    global _LX
    if _LX is None:
        _LX = _native.linux()
    return _LX


def _ioctl(fd: int, request: int, arg: Any = 0) -> int:
    """One ioctl through pyxen._linux: ``arg`` an int or a cdata pointer; KernelCallError
    (an OSError) on -1."""
    ffi, lib = _lx()
    if isinstance(arg, int):
        rc = lib.pyxen_ioctl_arg(fd, request, arg)
    else:
        rc = lib.pyxen_ioctl_ptr(fd, request, arg)
    return int(check_kernel(rc, ffi.errno, f"ioctl {request:#x}"))


def _loop_info(filename: str, flags: int) -> Any:
    """A ``struct loop_info64`` naming ``filename`` with ``flags``."""
    ffi, lib = _lx()
    info = ffi.new("struct loop_info64 *")
    info.lo_flags = flags
    name = os.fsencode(os.path.abspath(filename))[:lib.LO_NAME_SIZE - 1]
    ffi.memmove(info.lo_file_name, name, len(name))
    return info


@dataclass(frozen=True)
class LoopDevice:
    """A loop device bound to a file: ``path`` (/dev/loopN), ``number``, ``rdev``."""

    path: str
    number: int
    rdev: int
    backing_file: str
    backing_id: str = ""     # "st_dev:st_ino" of the bound file (survives renames, deletes)

    @classmethod
    def attach(cls, filename: str, *, readonly: bool, autoclear: bool = True,
               attempts: int = 8) -> "tuple[LoopDevice, int]":
        """Bind ``filename`` to a free loop device (LOOP_CTL_GET_FREE, then LOOP_CONFIGURE
        or LOOP_SET_FD + LOOP_SET_STATUS64). Returns the device and an open fd on it, which
        the caller closes once someone else (blkback) holds the device: with autoclear
        the kernel then releases the loop device when the last user closes it.

        An exception after the bind (a KeyboardInterrupt included) unbinds the device and
        closes the fd before it goes on; a caller that must not lose the pair to a Ctrl-C
        between this return and its own assignment calls it under
        ``_interrupt.deferred_sigint()``, as :meth:`Devices.attach_disk` does."""
        ffi, lib = _lx()
        flags = (lib.LO_FLAGS_READ_ONLY if readonly else 0) | \
            (lib.LO_FLAGS_AUTOCLEAR if autoclear else 0)
        _check_target(filename)
        try:
            ffd = os.open(filename, os.O_RDONLY if readonly else os.O_RDWR)
        except OSError as e:
            raise HotplugError(e.errno, f"cannot open {filename}: {e.strerror}") from None
        try:
            info = _loop_info(filename, flags)
            config = ffi.new("struct loop_config *")
            config.fd = ffd
            config.info = info[0]
            last = None
            for _ in range(attempts):   # another process may grab the free one first
                try:
                    ctl = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
                except OSError as e:
                    raise HotplugError(e.errno, "cannot open /dev/loop-control (is the loop "
                                       f"module loaded?): {e.strerror}") from None
                try:
                    num = _ioctl(ctl, lib.LOOP_CTL_GET_FREE)
                except OSError as e:
                    raise HotplugError(e.errno, "LOOP_CTL_GET_FREE: no free loop device: "
                                       f"{e.strerror}") from None
                finally:
                    os.close(ctl)
                path = f"/dev/loop{num}"
                lfd = os.open(path, (os.O_RDONLY if readonly else os.O_RDWR) | os.O_CLOEXEC)
                try:
                    try:
                        _ioctl(lfd, lib.LOOP_CONFIGURE, config)
                    except OSError as e:
                        if e.errno not in (_errno.EINVAL, _errno.ENOTTY):
                            raise
                        _ioctl(lfd, lib.LOOP_SET_FD, ffd)       # kernels before 5.8
                        try:
                            _ioctl(lfd, lib.LOOP_SET_STATUS64, info)
                        except OSError:
                            _ioctl(lfd, lib.LOOP_CLR_FD)
                            raise
                except OSError as e:
                    os.close(lfd)
                    last = e
                    if e.errno == _errno.EBUSY:
                        continue
                    raise HotplugError(e.errno, f"cannot bind {filename} to {path}: "
                                       f"{e.strerror}") from None
                except BaseException:
                    os.close(lfd)
                    raise
                try:
                    _interrupt.point("devices.loop_bound")
                    fst = os.fstat(ffd)
                    return cls(path, num, os.fstat(lfd).st_rdev, filename,
                               f"{fst.st_dev}:{fst.st_ino}"), lfd
                except BaseException:
                    with _interrupt.deferred_sigint():
                        try:
                            _ioctl(lfd, lib.LOOP_CLR_FD)
                        except OSError:
                            pass
                        os.close(lfd)
                    raise
            raise HotplugError(last.errno if last else _errno.EBUSY,
                               f"no loop device could be bound to {filename}")
        finally:
            os.close(ffd)

    @staticmethod
    def backing_id_of(path: str) -> str | None:
        """``"st_dev:st_ino"`` of the file a /dev/loopN is bound to (LOOP_GET_STATUS64:
        lo_device, lo_inode), or None when it is free or not a loop device. Unlike the
        sysfs name it names the same file after a rename or an unlink."""
        if not re.fullmatch(r"/dev/loop[0-9]+", path or ""):
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        ffi, lib = _lx()
        info = ffi.new("struct loop_info64 *")
        try:
            _ioctl(fd, lib.LOOP_GET_STATUS64, info)
        except OSError:
            return None             # ENXIO: not bound
        finally:
            os.close(fd)
        return f"{info.lo_device}:{info.lo_inode}"

    @staticmethod
    def backing_file_of(path: str) -> str | None:
        """The file a /dev/loopN is bound to (sysfs), or None when it is free."""
        m = re.fullmatch(r"/dev/loop([0-9]+)", path) if isinstance(path, str) else None
        if not m:
            return None
        try:
            with open(f"/sys/block/loop{m.group(1)}/loop/backing_file") as f:
                return f.read().strip()
        except OSError:
            return None

    @staticmethod
    def release(path: str) -> bool:
        """LOOP_CLR_FD (if the device is still in use the kernel detaches it when the
        last user closes it, like ``losetup -d``). False if it was already free."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            if e.errno in (_errno.ENOENT, _errno.ENXIO):
                return False
            raise HotplugError(e.errno, f"cannot open {path}: {e.strerror}") from None
        try:
            _ioctl(fd, _lx()[1].LOOP_CLR_FD)
            return True
        except OSError as e:
            if e.errno == _errno.ENXIO:
                return False
            raise HotplugError(e.errno, f"LOOP_CLR_FD {path}: {e.strerror}") from None
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------------------
# network interfaces and bridges (ioctls from <linux/sockios.h>, <linux/if_bridge.h>)
# ---------------------------------------------------------------------------------------

IFNAMSIZ = 16     # <net/if.h>; _check_ifname refuses longer names before any ioctl


def _check_ifname(name: str) -> bytes:
    b = name.encode()
    if len(b) >= IFNAMSIZ:
        raise DeviceSpecError(f"interface name {name!r} is longer than {IFNAMSIZ - 1}")
    return b


def _if_call(rc: int, call: str = "interface ioctl") -> None:
    check_kernel(rc, _lx()[0].errno, call)


def _sock() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def if_exists(name: str) -> bool:
    """Is there a network interface of that name?"""
    return os.path.exists(f"/sys/class/net/{name}")


def is_bridge(name: str) -> bool:
    """Is that interface a Linux bridge?"""
    return os.path.isdir(f"/sys/class/net/{name}/bridge")


def bridge_of(ifname: str) -> str | None:
    """The bridge an interface is enslaved to, or None."""
    try:
        return os.path.basename(os.readlink(f"/sys/class/net/{ifname}/master"))
    except OSError:
        return None


def _flags(s: socket.socket, ifname: str) -> int:
    ffi, lib = _lx()
    out = ffi.new("unsigned int *")
    _if_call(lib.pyxen_if_get_flags(s.fileno(), _check_ifname(ifname), out))
    return int(out[0])


def if_is_up(ifname: str) -> bool:
    """Is the interface up (IFF_UP)?"""
    with _sock() as s:
        return bool(_flags(s, ifname) & _lx()[1].IFF_UP)


def _set_up(s: socket.socket, ifname: str, up: bool) -> None:
    lib = _lx()[1]
    flags = _flags(s, ifname)
    flags = (flags | lib.IFF_UP) if up else (flags & ~lib.IFF_UP)
    _if_call(lib.pyxen_if_set_flags(s.fileno(), _check_ifname(ifname), flags))


def _ifindex(s: socket.socket, ifname: str) -> int:
    ffi, lib = _lx()
    n = lib.if_nametoindex(_check_ifname(ifname))
    return check_kernel(int(n) or -1, ffi.errno, "if_nametoindex", ifname)


def _bridge_port(s: socket.socket, request: int, bridge: str, ifname: str) -> None:
    lib = _lx()[1]
    _if_call(lib.pyxen_br_port(s.fileno(), request, _check_ifname(bridge), _ifindex(s, ifname)))


def enslave(ifname: str, bridge: str, *, rename: str | None = None) -> str:
    """What vif-bridge does for ``online``: (rename,) add to the bridge, bring up.
    Returns the interface's final name."""
    try:
        with _sock() as s:
            if rename and rename != ifname:
                _set_up(s, ifname, False)
                _if_call(_lx()[1].pyxen_if_rename(s.fileno(), _check_ifname(ifname),
                                                  _check_ifname(rename)))
                ifname = rename
            if bridge_of(ifname) != bridge:
                _bridge_port(s, _lx()[1].SIOCBRADDIF, bridge, ifname)
            _set_up(s, ifname, True)
    except OSError as e:
        raise HotplugError(e.errno, f"cannot add {ifname} to bridge {bridge}: "
                           f"{e.strerror}") from None
    return ifname


def unslave(ifname: str, bridge: str) -> None:
    """What vif-bridge does for ``offline`` (best effort: the interface may be gone)."""
    try:
        with _sock() as s:
            if bridge_of(ifname) == bridge:
                _bridge_port(s, _lx()[1].SIOCBRDELIF, bridge, ifname)
    except OSError:
        pass


# ---------------------------------------------------------------------------------------
# listing
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DiskInfo:
    """One vbd, with xl block-list's columns (``devid`` = Vdev, ``backend_id`` = BE,
    ``frontend_id`` = handle, ``state``, ``evtch``, ``rref``, ``backend`` = BE-path) plus
    what the backend says about it."""

    domid: int
    devid: int
    vdev: str
    backend_id: int
    frontend_id: int
    state: XenbusState | None          # the frontend's state (what xl prints)
    backend_state: XenbusState | None
    evtch: int
    rref: int
    backend: str | None
    frontend: str
    disk: DiskSpec
    physical_device: str | None = None
    physical_device_path: str | None = None

    def row(self) -> str:
        """The line ``xl block-list`` prints for this disk."""
        return "%-5d %-3d %-6d %-5d %-6d %-8d %-30s" % (
            self.devid, self.backend_id, self.frontend_id,
            int(self.state) if self.state is not None else -1, self.evtch, self.rref,
            printable(self.backend))

    def to_json(self) -> dict:
        """This disk as a JSON-ready dict."""
        d = {k: getattr(self, k) for k in ("domid", "devid", "vdev", "backend_id",
                                           "frontend_id", "evtch", "rref", "backend",
                                           "frontend", "physical_device",
                                           "physical_device_path")}
        d["state"] = None if self.state is None else int(self.state)
        d["backend_state"] = None if self.backend_state is None else int(self.backend_state)
        d["disk"] = {k: v for k, v in self.disk.__dict__.items() if k != "spec"}
        return d


@dataclass(frozen=True)
class NicInfo:
    """One vif, with xl network-list's columns."""

    domid: int
    devid: int
    backend_id: int
    mac: str
    state: XenbusState | None
    backend_state: XenbusState | None
    evtch: int
    rref_tx: int
    rref_rx: int
    backend: str | None
    frontend: str
    bridge: str | None
    ifname: str
    nic: NicSpec

    def row(self) -> str:
        """The line ``xl network-list`` prints for this vif."""
        return "%-3d %-2d %-17s%6d %5d %6d %5d/%-11d %-30s" % (
            self.devid, self.backend_id, printable(self.mac), self.devid,
            int(self.state) if self.state is not None else -1, self.evtch, self.rref_tx,
            self.rref_rx, printable(self.backend))

    def to_json(self) -> dict:
        """This NIC as a JSON-ready dict."""
        d = {k: getattr(self, k) for k in ("domid", "devid", "backend_id", "mac", "evtch",
                                           "rref_tx", "rref_rx", "backend", "frontend",
                                           "bridge", "ifname")}
        d["state"] = None if self.state is None else int(self.state)
        d["backend_state"] = None if self.backend_state is None else int(self.backend_state)
        d["nic"] = {k: v for k, v in self.nic.__dict__.items() if k != "spec"}
        return d


@dataclass(frozen=True)
class ConsoleInfo:
    """One PV console: devid 0 is the primary (``/local/domain/<domid>/console``, served
    by xenconsoled), others live under ``device/console/<devid>``."""

    domid: int
    devid: int
    frontend: str
    backend: str | None
    backend_id: int
    type: str | None            # xenconsoled, ioemu
    output: str | None
    tty: str | None
    port: int
    ring_ref: int

    def to_json(self) -> dict:
        """This console as a JSON-ready dict."""
        return dict(self.__dict__)


DISK_HEADER = "%-5s %-3s %-6s %-5s %-6s %-8s %-30s" % (
    "Vdev", "BE", "handle", "state", "evt-ch", "ring-ref", "BE-path")
NIC_HEADER = "%-3s %-2s %-17s %-6s %-5s %-6s %5s/%-5s %-30s" % (
    "Idx", "BE", "Mac Addr.", "handle", "state", "evt-ch", "tx-", "rx-ring-ref", "BE-path")


# ---------------------------------------------------------------------------------------
# the manager
# ---------------------------------------------------------------------------------------

def _s(v: bytes | None) -> str | None:
    return None if v is None else v.decode("utf-8", "surrogateescape")


def _int(v: Any, default: int = -1) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


_UINT = re.compile(r"[0-9]{1,10}")
_DEVID = re.compile(r"0|[1-9][0-9]{0,9}")
#: the backend kinds a frontend kind can have (libxl: qdisk is a vbd served by qemu)
_BACKEND_KINDS = {"vbd": ("vbd", "qdisk", "vbd3"), "vif": ("vif",), "console": ("console",)}
_BACKEND_PATH = re.compile(
    r"/local/domain/(0|[1-9][0-9]{0,4})/backend/([a-z0-9]+)/(0|[1-9][0-9]{0,4})/"
    r"(0|[1-9][0-9]{0,9})")


def _uint(v: bytes | str | None, default: int = -1) -> int:
    """A number a guest wrote (event channel, grant reference): decimal digits only, at
    most 32 bits, else ``default`` (int() would also take " 7", "+7" or "7_0")."""
    text = _s(v) if isinstance(v, bytes) else v
    if text is None or not _UINT.fullmatch(text) or int(text) > 0xFFFFFFFF:
        return default
    return int(text)


def _backend_domid(path: str | None, kind: str, domid: int, devid: int) -> int | None:
    """The backend domain of ``path`` if it is exactly the backend directory of ``kind``
    ``devid`` of ``domid`` (``/local/domain/<bdom>/backend/<kind>/<domid>/<devid>``,
    libxl__backendpath_parse_domid made strict); None for anything else."""
    m = _BACKEND_PATH.fullmatch(path) if path else None
    if m is None or m.group(2) not in _BACKEND_KINDS.get(kind, (kind,)) \
            or int(m.group(3)) != domid or int(m.group(4)) != devid:
        return None
    bdom = int(m.group(1))
    return bdom if bdom < 0x7FF0 else None


class Devices:
    """Device operations over one xenstore handle (and a ctrl handle for domain checks).
    Module-level functions open both on demand.

    A handle like the others (pyxen._handle's rule): share it between threads, close it
    from any thread; once closed, new calls (``xs``/``xc`` included) raise
    HandleClosedError, while calls already running finish with the handles they use. The
    handles Devices opened itself are closed by close(), or by the last call still running
    then; handles passed in stay open (they are the caller's)."""

    def __init__(self, xs: XenStore | None = None, xc: Ctrl | None = None) -> None:
        from . import ctrl, xenstore
        self._own: list[XenStore | Ctrl] = []
        if xs is None:
            xs = xenstore.open()
            self._own.append(xs)
        if xc is None:
            xc = ctrl.open()
            self._own.append(xc)
        self._xs, self._xc = xs, xc
        self._X = xenstore
        self._calls_lock = threading.Lock()
        self._calls = 0                     # public calls running, all threads
        self._inside = threading.local()    # .depth: this thread's nesting of them
        self._closed = False

    @property
    def xs(self) -> XenStore:
        """The xenstore handle (HandleClosedError once closed)."""
        if self._closed and not getattr(self._inside, "depth", 0):
            raise HandleClosedError(self)
        return self._xs

    @property
    def xc(self) -> Ctrl:
        """The ctrl handle (HandleClosedError once closed)."""
        if self._closed and not getattr(self._inside, "depth", 0):
            raise HandleClosedError(self)
        return self._xc

    @property
    def closed(self) -> bool:
        """True once ``close()`` has started."""
        return self._closed

    def close(self) -> None:
        """Idempotent, from any thread: later calls raise HandleClosedError. Closes the
        handles this object opened, now or when the last running call returns."""
        with self._calls_lock:
            self._closed = True
            if self._calls:
                return
            own, self._own = self._own, []
        for h in own:
            h.close()

    def _enter(self) -> None:
        depth = getattr(self._inside, "depth", 0)
        with self._calls_lock:
            if self._closed and not depth:   # (a nested call of a running one goes on)
                raise HandleClosedError(self)
            self._calls += 1
        self._inside.depth = depth + 1

    def _leave(self) -> None:
        self._inside.depth -= 1
        with self._calls_lock:
            self._calls -= 1
            if not self._closed or self._calls:
                return
            own, self._own = self._own, []
        for h in own:
            h.close()

    def __enter__(self) -> "Devices":
        if self._closed:
            raise HandleClosedError(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- domains ------------------------------------------------------------------------
    def _alive(self, domid: int) -> bool:
        from .ctrl import NoSuchDomainError
        try:
            d = self.xc.domain(domid)
        except NoSuchDomainError:
            return False
        return getattr(d, "domid", domid) == domid and not getattr(d, "dying", False)

    def domid(self, dom: int | str, *, backend: bool = False) -> int:
        """A domain id from an id or a name (xenstore ``/local/domain/*/name``), checked to
        exist with the hypervisor."""
        err = BackendDomainError if backend else DomainNotFoundError
        return xspath.resolve(self.xs, dom, alive=self._alive, error=err,
                              what="backend domain" if backend else "domain")

    # -- paths --------------------------------------------------------------------------
    @staticmethod
    def paths(domid: int, kind: str, devid: int, bdom: int = 0) -> tuple[str, str, str]:
        """(frontend, backend, libxl mirror) paths of a device."""
        return (f"/local/domain/{domid}/device/{kind}/{devid}",
                f"/local/domain/{bdom}/backend/{kind}/{domid}/{devid}",
                f"/libxl/{domid}/device/{kind}/{devid}")

    def _devids(self, domid: int, kind: str, *, frontends: bool = False) -> set[int]:
        """The domain's ``kind`` devices dom0 knows of: the ``/libxl`` mirror's and dom0's
        own backend directories (both dom0's). ``frontends``: also the guest's frontend
        directories (only to refuse attaching over one, never to act on)."""
        bases = [f"/libxl/{domid}/device/{kind}"]
        bases += [f"/local/domain/0/backend/{b}/{domid}" for b in _BACKEND_KINDS.get(kind, (kind,))]
        if frontends:
            bases.append(f"/local/domain/{domid}/device/{kind}")
        ids: set[int] = set()
        for base in bases:
            try:
                ids.update(int(x) for x in self.xs.ls(base)
                           if _DEVID.fullmatch(x) and int(x) <= 0x7FFFFFFF)
            except self._X.XenStoreNotFound:
                pass
        return ids

    # -- common add/remove --------------------------------------------------------------
    def _write_device(self, domid: int, bdom: int, kind: str, devid: int, back: dict,
                      front: dict, ro_front: dict | None = None) -> None:
        """libxl__device_generic_add, in one transaction (retried on conflict)."""
        X = self._X
        fe, be, lx = self.paths(domid, kind, devid, bdom)
        fe_perms = X.Permissions(domid, X.Perm.NONE, (X.DomainPerm(bdom, X.Perm.READ),))
        be_perms = X.Permissions(bdom, X.Perm.NONE, (X.DomainPerm(domid, X.Perm.READ),))

        def body(t: WireTransaction) -> None:
            # two pipelined batches in one transaction on pyxen's own connection: what
            # is there, then every node (libxenstore would take a round trip for each)
            probe = t.batch()
            there = [probe.read(p) for p in (fe, lx, be)]
            try:
                probe.run()
            except X.XenStoreNotFound:
                pass
            for r in there:
                if r.error is not None and not isinstance(r.error, X.XenStoreNotFound):
                    raise r.error
            if there[0].ok or there[1].ok:
                raise DeviceBusyError(f"{kind} {devid} is already attached to domain {domid}")
            b = t.batch()
            b.write(f"{lx}/frontend", fe)
            b.write(f"{lx}/backend", be)
            b.mkdir(fe)
            b.set_permissions(fe, fe_perms)
            b.write(f"{fe}/backend", be)
            for k, v in front.items():
                b.write(f"{fe}/{k}", v)
                b.set_permissions(f"{fe}/{k}", fe_perms)
            for k, v in (ro_front or {}).items():
                b.write(f"{fe}/{k}", v)
                b.set_permissions(f"{fe}/{k}", be_perms)
            if there[2].ok:
                b.rm(be)
            b.mkdir(be)
            b.set_permissions(be, be_perms)
            b.write(f"{be}/frontend", fe)
            for k, v in back.items():
                b.write(f"{be}/{k}", v)
            for k, v in back.items():
                b.write(f"{lx}/{k}", v)
            b.run()

        self.xs.batch_transact(body)

    def _state(self, path: str) -> XenbusState | None:
        return XenbusState.parse(self.xs.get(f"{path}/state"))

    def wait_state(self, path: str, wanted: XenbusState | Iterable[XenbusState],
                   timeout: float, *, what: str = "device", also: "str | None" = None,
                   also_wanted: XenbusState | Iterable[XenbusState] | None = None) -> None:
        """Wait (with a xenstore watch on ``path/state``) until it is in ``wanted`` (a
        state or a set); with ``also``, until that path's state is in ``also_wanted`` too.
        DeviceTimeout names the state it is stuck in; a vanished node fails at once."""
        wanted = {wanted} if isinstance(wanted, int) else set(wanted)
        targets = [(path, wanted)]
        if also is not None:
            if also_wanted is None:
                raise TypeError("wait_state: also= needs also_wanted=")
            aw = {also_wanted} if isinstance(also_wanted, int) else set(also_wanted)
            targets.append((also, aw))
        watches: list[Watch] = []      # our own streams: other readers of xs keep theirs
        try:
            for p, _ in targets:
                watches.append(self.xs.watch(f"{p}/state"))
            poller = select.poll()
            for wt in watches:
                poller.register(wt.fileno(), select.POLLIN)
            deadline = time.monotonic() + timeout
            while True:
                pending = None
                for p, w in targets:
                    st = self._state(p)
                    if st is None and not self.xs.exists(p):
                        raise DeviceError(f"{what}: {p} vanished while waiting for state "
                                          f"{'/'.join(s.name for s in sorted(w))}")
                    if st not in w:
                        pending = (p, st, w)
                        break
                if pending is None:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    p, st, w = pending
                    stuck = []
                    for q, qw in targets:
                        qs = self._state(q)
                        if qs not in qw:
                            name = f"{qs.name} ({int(qs)})" if qs is not None else "missing"
                            stuck.append(f"{q} stuck in state {name}")
                    raise DeviceTimeout(
                        f"{what}: {', '.join(stuck)} after {timeout:g}s, waiting for "
                        f"{'/'.join(s.name for s in sorted(w))}",
                        path=p, state=st, wanted=min(w))
                poller.poll(left * 1000)
                for wt in watches:            # the states are read again above
                    while wt.check() is not None:
                        pass
        finally:
            for wt in watches:
                try:
                    wt.close()
                except Exception:
                    pass

    def _path_cleanup(self, t: Transaction, path: str) -> None:
        """libxl__xs_path_cleanup: remove ``path`` and then its parents while empty."""
        if t.exists(path):
            t.rm(path)
        parent = path.rsplit("/", 1)[0]
        while parent.count("/") > 2:
            try:
                if t.ls(parent):
                    break
            except self._X.XenStoreNotFound:
                pass
            else:
                t.rm(parent)
            parent = parent.rsplit("/", 1)[0]

    def _remove_entries(self, fe: str, be: str, lx: str) -> None:
        def body(t: Transaction) -> None:
            self._path_cleanup(t, fe)
            self._path_cleanup(t, be)
            self._path_cleanup(t, lx)
        self.xs.transact(body)

    def _backend_of(self, domid: int, kind: str, devid: int) -> str | None:
        """The device's backend directory from dom0-owned nodes only (XSA-175): the
        ``/libxl`` mirror's ``backend``, which must be exactly ``/local/domain/<bdom>/
        backend/<kind>/<domid>/<devid>`` (DeviceError otherwise), or for a device without
        a mirror dom0's own backend directory, if dom0 owns it. Never the frontend's
        ``backend`` node: the guest writes that one. None if there is neither."""
        lx = self.paths(domid, kind, devid)[2]
        raw = self.xs.get(f"{lx}/backend")
        if raw is not None:
            be = _s(raw)
            if _backend_domid(be, kind, domid, devid) is None:
                raise DeviceError(f"{lx}/backend is {printable(be)!r}, not the backend "
                                  f"directory of {kind} {devid} of domain {domid}; refusing "
                                  "to act on it")
            return be
        for bkind in _BACKEND_KINDS.get(kind, (kind,)):
            be = f"/local/domain/0/backend/{bkind}/{domid}/{devid}"
            try:
                if self.xs.get_permissions(be).owner == 0:
                    return be
            except self._X.XenStoreNotFound:
                pass
        return None

    def _not_found(self, domid: int, kind: str, devid: int, message: str) -> DeviceNotFoundError:
        """DeviceNotFoundError(message), saying why when the guest has a frontend for
        ``devid`` that dom0 has no record of (a guest can write its frontend directories:
        what they say is not acted on)."""
        fe, _, lx = self.paths(domid, kind, devid)
        if devid >= 0 and self.xs.exists(fe):
            message += (f": there is a frontend {fe}, but no {lx} mirror and no backend "
                        f"/local/domain/0/backend/{kind}/{domid}/{devid} dom0 can trust "
                        "(the frontend's own backend node is the guest's and is not used)")
        return DeviceNotFoundError(message)

    def _trusted_backend(self, domid: int, kind: str, devid: int) -> tuple[str, int]:
        """(backend path, backend domid) of a device, from dom0-owned nodes only;
        DeviceNotFoundError naming what is missing when there are none."""
        be = self._backend_of(domid, kind, devid)
        if be is None:
            raise self._not_found(domid, kind, devid, f"domain {domid} has no {kind} {devid}")
        bdom = _backend_domid(be, kind, domid, devid)
        assert bdom is not None, "_backend_of returns checked paths"
        return be, bdom

    # -- disks --------------------------------------------------------------------------
    def check_disk(self, dom: int | str, disk: str | DiskSpec) -> tuple[int, int, DiskSpec, int]:
        """Everything attach_disk checks before it writes: (domid, bdom, DiskSpec, devid,
        st_mode info). Raises the typed errors."""
        if isinstance(disk, (str, bytes)):
            try:
                disk = parse_disk(disk)
            except ConfigError as e:
                raise DeviceSpecError(f"bad disk specification: {e.message}") from None
        elif not isinstance(disk, DiskSpec):
            raise DeviceSpecTypeError(f"a disk must be a spec string or a DiskSpec, not "
                                      f"{type(disk).__name__}")
        if disk.pdev_path is not None:
            _check_target(disk.pdev_path)
        domid = self.domid(dom)
        bdom = self.domid(disk.backend_domname, backend=True) if disk.backend_domname else 0
        devid = vdev_to_devid(disk.vdev)
        if disk.backend not in ("unknown", "phy"):
            raise DeviceSpecError(
                f"disk backend {disk.backend!r} is not supported: pyxen.devices wires the "
                "kernel's blkback (backendtype=phy); qdisk/tap need a device model")
        if disk.format not in ("raw", "unknown"):
            raise DeviceSpecError(f"disk format {disk.format!r} is not supported by blkback "
                                  "(raw only)")
        if disk.script:
            raise DeviceSpecError(f"disk script={disk.script!r}: pyxen.devices runs no "
                                  "hotplug scripts (use --libxl / xl block-attach)")
        if not disk.pdev_path:
            raise DeviceSpecError(f"disk {disk.vdev}: no target given")
        if bdom == 0:
            try:
                st = os.stat(disk.pdev_path)
            except OSError as e:
                raise DeviceSpecError(f"disk {disk.vdev}: target {disk.pdev_path}: "
                                      f"{e.strerror}") from None
            if not (stat.S_ISBLK(st.st_mode) or stat.S_ISREG(st.st_mode)):
                raise DeviceSpecError(f"disk {disk.vdev}: target {disk.pdev_path} is neither "
                                      "a block device nor a regular file")
            if disk.readwrite and self._read_only(disk.pdev_path, st):
                raise DeviceSpecError(f"disk {disk.vdev}: target {disk.pdev_path} is "
                                      "read-only but access is rw (mode w)")
        else:
            raise DeviceSpecError("disks backed by a driver domain need that domain's own "
                                  "hotplug handling; pyxen.devices serves backend domain 0")
        if devid in self._devids(domid, "vbd", frontends=True):
            raise DeviceBusyError(f"vdev {disk.vdev} (devid {devid}) is already in use in "
                                  f"domain {domid}")
        return domid, bdom, disk, devid

    @staticmethod
    def _read_only(path: str, st: os.stat_result) -> bool:
        if stat.S_ISBLK(st.st_mode):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return True
            try:
                ffi, lib = _lx()
                ro = ffi.new("int *")
                _ioctl(fd, lib.BLKROGET, ro)
                return bool(ro[0])
            finally:
                os.close(fd)
        if not st.st_mode & 0o222:        # the block script's `stat -c %A | grep -q w`
            return True
        return not os.access(path, os.W_OK)

    def attach_disk(self, dom: int | str, disk: str | DiskSpec, *,
                    timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> DiskInfo:
        """``xl block-attach`` without libxl or the block script. Returns the DiskInfo."""
        domid, bdom, disk, devid = self.check_disk(dom, disk)
        assert disk.pdev_path, "check_disk refuses a disk without a target"
        fe, be, lx = self.paths(domid, "vbd", devid, bdom)
        st = os.stat(disk.pdev_path)
        back = {
            "params": disk.pdev_path,
            "script": f"{SCRIPT_DIR}/block",
            "frontend-id": str(domid),
            "online": "1",
            "removable": "1" if disk.removable else "0",
            "bootable": "1",
            "state": str(int(XenbusState.INITIALISING)),
            "dev": disk.vdev,
            "type": "phy",
            "mode": "w" if disk.readwrite else "r",
            "device-type": "cdrom" if disk.is_cdrom else "disk",
        }
        if disk.direct_io_safe:
            back["direct-io-safe"] = "1"
        back["discard-enable"] = "0" if disk.discard_enable is False else "1"
        back["specification"] = "xen"
        front = {
            "backend-id": str(bdom),
            "state": str(int(XenbusState.INITIALISING)),
            "virtual-device": str(devid),
            "device-type": "cdrom" if disk.is_cdrom else "disk",
            "trusted": "1",
        }
        loop: LoopDevice | None = None
        lfd: int | None = None
        written = False
        try:
            if stat.S_ISREG(st.st_mode):
                # autoclear only when we wait for Connected: blkback holds the device by
                # then, so closing our fd cannot free it; without waiting, detach (through
                # `node`, as xl's block script does) releases it
                with _interrupt.deferred_sigint():   # never lose the bound device to a Ctrl-C
                    loop, lfd = LoopDevice.attach(disk.pdev_path,
                                                  readonly=not disk.readwrite, autoclear=wait)
                rdev, devpath = loop.rdev, loop.path
            else:
                rdev, devpath = st.st_rdev, os.path.realpath(disk.pdev_path)
            written = True              # (set first: the transaction may commit, then be cut)
            self._write_device(domid, bdom, "vbd", devid, back, front)
            _interrupt.point("devices.vbd_written")
            # blkback probes the new backend and goes to InitWait; then the block
            # script's work: physical-device (hex major:minor) and hotplug-status
            self.wait_state(be, XenbusState.INIT_WAIT, timeout, what=f"vbd {disk.vdev}")
            _interrupt.point("devices.vbd_initwait")
            hp = {"physical-device": "%x:%x" % (os.major(rdev), os.minor(rdev)),
                  "physical-device-path": devpath, "hotplug-status": "connected"}
            if loop is not None:
                hp["node"] = loop.path

            def body(t: Transaction) -> None:
                if not t.exists(be):
                    raise DeviceError(f"vbd {disk.vdev}: {be} vanished during attach")
                for k, v in hp.items():
                    t.write(f"{be}/{k}", v)
                if loop is not None:    # what detach releases: this file's loop, nothing else
                    t.write(f"{lx}/{LOOP_RECORD}", f"{loop.path} {loop.backing_id}")
            self.xs.transact(body)
            _interrupt.point("devices.vbd_hotplug")
            if wait:
                self.wait_state(be, XenbusState.CONNECTED, timeout, what=f"vbd {disk.vdev}",
                                also=fe, also_wanted=XenbusState.CONNECTED)
                _interrupt.point("devices.vbd_connected")
            return self.disk_info(domid, devid)
        except BaseException:
            with _interrupt.deferred_sigint():  # a second Ctrl-C waits for the rollback
                if written:
                    self._undo_write(domid, "vbd", devid, bdom, timeout)
                if loop is not None:
                    LoopDevice.release(loop.path)
            raise
        finally:
            if lfd is not None:
                os.close(lfd)

    def disk_info(self, domid: int, devid: int) -> DiskInfo:
        """One vbd as dom0 knows it: backend path and id from the mirror (or dom0's own
        backend directory), the disk from the mirror or that backend; from the guest's
        frontend only its state, event channel and ring reference, as bounded numbers.
        DeviceNotFoundError for a device with no trusted backend."""
        fe, _, lx = self.paths(domid, "vbd", devid)
        be, bdom = self._trusted_backend(domid, "vbd", devid)
        src = lx if self.xs.exists(f"{lx}/params") or self.xs.exists(f"{lx}/dev") else be
        g = lambda k: _s(self.xs.get(f"{src}/{k}"))  # noqa: E731
        gb = lambda k: _s(self.xs.get(f"{be}/{k}"))  # noqa: E731
        gf = lambda k: self.xs.get(f"{fe}/{k}")  # noqa: E731
        params = g("params")
        if params and ":" in params:
            params = params.split(":", 1)[1]
        vdev = g("dev") or devid_to_vdev(devid)
        spec = DiskSpec(vdev=vdev, pdev_path=params, backend=g("type") or "unknown",
                        format="raw", readwrite=(g("mode") == "w"),
                        is_cdrom=(g("device-type") == "cdrom"),
                        removable=(g("removable") == "1"))
        return DiskInfo(
            domid=domid, devid=devid, vdev=vdev, backend_id=bdom, frontend_id=domid,
            state=XenbusState.parse(gf("state")),
            backend_state=XenbusState.parse(gb("state")),
            evtch=_uint(gf("event-channel")), rref=_uint(gf("ring-ref")),
            backend=be, frontend=fe, disk=spec,
            physical_device=gb("physical-device"),
            physical_device_path=gb("physical-device-path"))

    def list_disks(self, dom: int | str) -> list[DiskInfo]:
        """The domain's vbds, from xenstore (mirror and frontend), like ``xl block-list``."""
        domid = self.domid(dom)
        return [self.disk_info(domid, d) for d in sorted(self._devids(domid, "vbd"))]

    def find_disk(self, domid: int, vdev: str | int) -> int:
        """A vbd's devid from its vdev or devid."""
        ids = self._devids(domid, "vbd")
        if isinstance(vdev, bool) or not isinstance(vdev, (int, str)):
            raise DeviceSpecTypeError(f"a disk is named by a vdev or a devid, not a "
                                      f"{type(vdev).__name__}")
        if isinstance(vdev, int) or re.fullmatch(r"[0-9]{1,10}", vdev):
            n = int(vdev)
            if n in ids:
                return n
        for d in ids:
            lx = self.paths(domid, "vbd", d)[2]
            name = _s(self.xs.get(f"{lx}/dev"))
            if name is None:            # no mirror: the name dom0's own backend has
                be = self._backend_of(domid, "vbd", d)
                if be and _backend_domid(be, "vbd", domid, d) == 0:
                    name = _s(self.xs.get(f"{be}/dev"))
            if name == vdev:
                return d
        try:
            n = vdev_to_devid(str(vdev))
        except DeviceSpecError:
            n = -1                      # (no devid)
        if n in ids:
            return n
        raise self._not_found(domid, "vbd", n, f"domain {domid} has no disk {vdev}")

    # -- nics ---------------------------------------------------------------------------
    def check_nic(self, dom: int | str, nic: str | NicSpec) -> tuple[int, int, NicSpec, int, str]:
        """Check a NIC spec without attaching it (the bridge exists, the devid and MAC are free)."""
        if isinstance(nic, (str, bytes)):
            try:
                nic = parse_nic(nic)
            except ConfigError as e:
                raise DeviceSpecError(f"bad vif specification: {e.message}") from None
        elif not isinstance(nic, NicSpec):
            raise DeviceSpecTypeError(f"a vif must be a spec string or a NicSpec, not "
                                      f"{type(nic).__name__}")
        if nic.devid is not None and (isinstance(nic.devid, bool) or
                                      not isinstance(nic.devid, int) or
                                      not 0 <= nic.devid <= DEVID_MAX):
            # -1 is libxl's "pick one", and a negative directory would be invisible to
            # list_nics and detach
            raise DeviceSpecError(f"vif devid {nic.devid!r} out of range 0..{DEVID_MAX}")
        domid = self.domid(dom)
        bdom = self.domid(nic.backend, backend=True) if nic.backend else 0
        if bdom != 0:
            raise DeviceSpecError("vifs served by a driver domain need that domain's own "
                                  "hotplug handling; pyxen.devices serves backend domain 0")
        if nic.type == "vif_ioemu":
            raise DeviceSpecError("vif type=ioemu needs a device model (qemu); "
                                  "pyxen.devices wires netback vifs only")
        script = os.path.basename(nic.script) if nic.script else "vif-bridge"
        if script in ("vif-route", "vif-nat", "network-route", "network-nat"):
            raise DeviceSpecError(
                f"vif script {script}: routed/NAT networking is not supported by "
                "pyxen.devices (it would need the script's addresses, routes and iptables "
                "rules); use a bridge, or --libxl / xl network-attach with that script")
        if script != "vif-bridge":
            raise DeviceSpecError(f"vif script {nic.script!r} is not supported: pyxen.devices "
                                  "runs no hotplug scripts and only does what vif-bridge does")
        bridge = nic.bridge or DEFAULT_BRIDGE
        if not is_bridge(bridge):
            raise DeviceSpecError(f"bridge {bridge!r} does not exist (or is not a bridge)")
        if nic.vifname:
            if len(nic.vifname.encode()) >= IFNAMSIZ:
                raise DeviceSpecError(f"vifname {nic.vifname!r} is longer than "
                                      f"{IFNAMSIZ - 1} characters")
            if if_exists(nic.vifname):
                raise DeviceBusyError(f"interface {nic.vifname} already exists")
        ids = self._devids(domid, "vif", frontends=True)
        if nic.devid is not None:
            devid = nic.devid
            if devid in ids:
                raise DeviceBusyError(f"vif {devid} is already in use in domain {domid}")
        else:
            devid = max(ids) + 1 if ids else 0
        mac = nic.mac.lower()
        for d in self._devids(domid, "vif"):
            if self._nic_mac(domid, d) == mac:
                raise DeviceBusyError(f"mac {mac} is already used by vif {d} of domain "
                                      f"{domid}")
        return domid, bdom, nic, devid, bridge

    def attach_nic(self, dom: int | str, nic: str | NicSpec, *,
                   timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> NicInfo:
        """``xl network-attach`` without libxl or vif-bridge."""
        domid, bdom, nic, devid, bridge = self.check_nic(dom, nic)
        fe, be, lx = self.paths(domid, "vif", devid, bdom)
        back = {"frontend-id": str(domid), "online": "1",
                "state": str(int(XenbusState.INITIALISING)),
                "script": f"{SCRIPT_DIR}/vif-bridge"}
        if nic.vifname:
            back["vifname"] = nic.vifname
        back["mac"] = nic.mac
        if nic.ip:
            back["ip"] = nic.ip
        if nic.gatewaydev:
            back["gatewaydev"] = nic.gatewaydev
        if nic.rate_interval_usecs > 0:
            back["rate"] = f"{nic.rate_bytes_per_interval},{nic.rate_interval_usecs}"
        if nic.mtu:
            back["mtu"] = str(nic.mtu)
        back.update({"bridge": bridge, "handle": str(devid), "type": "vif",
                     "hotplug-status": ""})   # netback waits for "connected"
        front = {"backend-id": str(bdom), "state": str(int(XenbusState.INITIALISING)),
                 "handle": str(devid), "mac": nic.mac, "trusted": "1"}
        ro_front = {"mtu": str(nic.mtu or 1500)}
        written = False
        port: str | None = None         # the vif's name once it is a port of the bridge
        try:
            written = True              # (set first: the transaction may commit, then be cut)
            self._write_device(domid, bdom, "vif", devid, back, front, ro_front)
            _interrupt.point("devices.vif_written")
            self.wait_state(be, XenbusState.INIT_WAIT, timeout, what=f"vif {devid}")
            _interrupt.point("devices.vif_initwait")
            ifname = f"vif{domid}.{devid}"
            port = nic.vifname or ifname
            enslave(ifname, bridge, rename=nic.vifname)
            _interrupt.point("devices.vif_bridged")
            self.xs.write(f"{be}/hotplug-status", "connected")
            if wait:
                self.wait_state(be, XenbusState.CONNECTED, timeout, what=f"vif {devid}",
                                also=fe, also_wanted=XenbusState.CONNECTED)
                _interrupt.point("devices.vif_connected")
            return self.nic_info(domid, devid)
        except BaseException:
            with _interrupt.deferred_sigint():  # a second Ctrl-C waits for the rollback
                if port is not None and bridge_of(port) == bridge:
                    try:
                        unslave(port, bridge)
                    except DeviceError:
                        pass            # netback removes the vif with its backend anyway
                if written:
                    self._undo_write(domid, "vif", devid, bdom, timeout)
            raise

    def _nic_mac(self, domid: int, devid: int) -> str | None:
        """A vif's mac from the mirror or its trusted backend (not the frontend's)."""
        lx = self.paths(domid, "vif", devid)[2]
        mac = _s(self.xs.get(f"{lx}/mac"))
        if mac is None:
            be = self._backend_of(domid, "vif", devid)
            mac = _s(self.xs.get(f"{be}/mac")) if be else None
        return mac.lower() if mac else mac

    def nic_info(self, domid: int, devid: int) -> NicInfo:
        """One vif as dom0 knows it (see disk_info)."""
        fe, _, lx = self.paths(domid, "vif", devid)
        be, bdom = self._trusted_backend(domid, "vif", devid)
        src = lx if self.xs.exists(f"{lx}/mac") else be
        g = lambda k: _s(self.xs.get(f"{src}/{k}"))  # noqa: E731
        gb = lambda k: _s(self.xs.get(f"{be}/{k}"))  # noqa: E731
        gf = lambda k: self.xs.get(f"{fe}/{k}")  # noqa: E731
        mac = g("mac") or gb("mac") or ""
        script = g("script")
        spec = NicSpec(mac=mac, bridge=g("bridge"), ip=g("ip"), script=script,
                       vifname=g("vifname"), type=g("type"), devid=devid)
        return NicInfo(
            domid=domid, devid=devid, backend_id=bdom, mac=mac,
            state=XenbusState.parse(gf("state")),
            backend_state=XenbusState.parse(gb("state")),
            evtch=_uint(gf("event-channel")), rref_tx=_uint(gf("tx-ring-ref")),
            rref_rx=_uint(gf("rx-ring-ref")), backend=be, frontend=fe,
            bridge=g("bridge"), ifname=g("vifname") or f"vif{domid}.{devid}", nic=spec)

    def list_nics(self, dom: int | str) -> list[NicInfo]:
        """The domain's NICs, as ``xl network-list`` shows them."""
        domid = self.domid(dom)
        return [self.nic_info(domid, d) for d in sorted(self._devids(domid, "vif"))]

    def find_nic(self, domid: int, which: str | int) -> int:
        """The domain's NIC with that devid or MAC, or None."""
        ids = self._devids(domid, "vif")
        if isinstance(which, bool) or not isinstance(which, (int, str)):
            raise DeviceSpecTypeError(f"a vif is named by a devid or a mac, not a "
                                      f"{type(which).__name__}")
        if isinstance(which, int) or re.fullmatch(r"[0-9]{1,10}", which):
            if int(which) in ids:
                return int(which)
        else:
            for d in ids:
                if self._nic_mac(domid, d) == str(which).lower():
                    return d
        n = int(which) if isinstance(which, int) or str(which).isdigit() else -1
        raise self._not_found(domid, "vif", n, f"domain {domid} has no vif {which}")

    # -- consoles -----------------------------------------------------------------------
    def list_consoles(self, dom: int | str) -> list[ConsoleInfo]:
        """The domain's PV consoles from xenstore (primary first). Attaching secondary
        consoles is not offered: in Xen 4.17 only a device model (qemu) serves them.
        ``tty`` is None unless it passes pyxen.guest.check_console_pty (the node is in
        the guest's directory)."""
        from .guest import ConsoleTtyError, check_console_pty
        domid = self.domid(dom)
        out = []
        # the secondary consoles dom0 knows of (mirror, dom0's backends), not the guest's
        # device/console directory
        fronts = [(0, f"/local/domain/{domid}/console")]
        fronts += [(d, f"/local/domain/{domid}/device/console/{d}")
                   for d in sorted(self._devids(domid, "console")) if d != 0]
        for devid, fe in fronts:
            if not self.xs.exists(fe):
                continue
            gf = lambda k, fe=fe: _s(self.xs.get(f"{fe}/{k}"))  # noqa: E731
            try:
                be = self._backend_of(domid, "console", devid)
            except DeviceError:
                be = None
            bid = _backend_domid(be, "console", domid, devid)
            tty = gf("tty")             # xenconsoled's, but in the guest's directory
            if tty:
                try:
                    tty = check_console_pty(domid, tty, xs=self.xs)
                except ConsoleTtyError:
                    tty = None
            out.append(ConsoleInfo(domid=domid, devid=devid, frontend=fe, backend=be,
                                   backend_id=-1 if bid is None else bid, type=gf("type"),
                                   output=gf("output"), tty=tty or None,
                                   port=_uint(gf("port")), ring_ref=_uint(gf("ring-ref"))))
        return out

    def _undo_write(self, domid: int, kind: str, devid: int, bdom: int,
                    timeout: float) -> None:
        """Roll back a device whose entries were (perhaps) written: remove them, then keep
        removing until the backend driver has let go. A driver still probing the new
        backend writes into its directory once more after the removal (xenstored
        recreates the path), so the entries are gone only once dom0's kernel has dropped
        its xen-backend device too."""
        self._force_remove(domid, kind, devid, bdom)
        _, be, _ = self.paths(domid, kind, devid, bdom)
        if bdom != 0:
            return                      # another domain's kernel: nothing to watch here
        sysdev = f"/sys/bus/xen-backend/devices/{kind}-{domid}-{devid}"
        end = time.monotonic() + max(timeout, 1.0)
        while True:
            if self.xs.exists(be):
                self._force_remove(domid, kind, devid, bdom)
            elif not os.path.exists(sysdev):
                return
            if time.monotonic() >= end:
                return
            time.sleep(0.05)

    # -- detach -------------------------------------------------------------------------
    def _force_remove(self, domid: int, kind: str, devid: int, bdom: int | None = None) -> None:
        fe, be, lx = self.paths(domid, kind, devid, bdom or 0)
        try:
            be = self._backend_of(domid, kind, devid) or be
        except DeviceError:
            pass                        # a mirror with a bad backend: only the computed one
        self._remove_entries(fe, be, lx)

    def _begin_close(self, be: str) -> bool:
        """online=0 and state Closing (unless already Closed) in one transaction, as libxl
        starts a removal; False if the backend directory is gone."""
        def body(t: Transaction) -> bool:
            if not t.exists(be):
                return False
            t.write(f"{be}/online", "0")
            st = XenbusState.parse(t.get(f"{be}/state"))
            if st not in (XenbusState.CLOSED, None):
                t.write(f"{be}/state", str(int(XenbusState.CLOSING)))
            return True
        return bool(self.xs.transact(body))

    def detach(self, dom: int | str, kind: str, which: str | int, *,
               timeout: float = DESTROY_TIMEOUT, force: bool = True) -> bool:
        """Detach a vbd (by vdev or devid) or vif (by devid or mac): online=0 and state
        Closing in one transaction, wait for Closed, remove frontend, backend and mirror,
        release the loop device / leave the bridge. If the backend does not close within
        ``timeout``: with ``force`` the entries are removed anyway (returns False), without
        it DeviceTimeout. Returns True after a clean close."""
        if kind not in ("vbd", "vif"):
            raise DeviceSpecError(f"unsupported device kind {kind!r} (vbd or vif)")
        domid = self.domid(dom) if not (isinstance(dom, int) or str(dom).isdigit()) \
            else int(dom)
        devid = self.find_disk(domid, which) if kind == "vbd" else self.find_nic(domid, which)
        fe, _, lx = self.paths(domid, kind, devid)
        # where to write online=0, what to remove, which loop device and bridge port to
        # release: dom0-owned nodes only (mirror, trusted backend), never the frontend's
        be, bdom = self._trusted_backend(domid, kind, devid)
        gl = lambda k: _s(self.xs.get(f"{lx}/{k}"))  # noqa: E731
        gb = lambda k: _s(self.xs.get(f"{be}/{k}"))  # noqa: E731
        params = node = bridge = None
        if bdom == 0:   # a driver domain's loop devices and bridges are its own, not dom0's
            params, node = gb("params") or gl("params"), gb("node")
            bridge = gl("bridge") or gb("bridge")
        ifname = gl("vifname") or gb("vifname") or f"vif{domid}.{devid}"
        loop_record = gl(LOOP_RECORD) if bdom == 0 else None   # the mirror is dom0's

        def teardown() -> None:
            if kind == "vif" and bridge:
                unslave(ifname, bridge)
            self._remove_entries(fe, be, lx)
            if kind == "vbd" and node and self._loop_is_the_disks(node, params, loop_record):
                self._release_loop(node)

        clean = True
        try:
            if self.xs.exists(be):
                if self._begin_close(be):
                    _interrupt.point("devices.detach_closing")
                    try:
                        self.wait_state(be, XenbusState.CLOSED, timeout,
                                        what=f"{kind} {which} of domain {domid}")
                    except DeviceTimeout:
                        if not force:
                            raise
                        clean = False
                    except DeviceError:
                        pass            # the backend went away by itself
                    _interrupt.point("devices.detach_closed")
        except DeviceTimeout:
            raise                       # without force: left as it is, as documented
        except BaseException:
            # past online=0 there is no way back: a Ctrl-C (or an error) finishes the
            # removal as a forced detach would, then goes on
            with _interrupt.deferred_sigint():
                teardown()
            raise
        with _interrupt.deferred_sigint():  # a Ctrl-C now waits for the teardown
            teardown()
        return clean

    @staticmethod
    def _loop_is_the_disks(node: str, params: str | None, record: str | None) -> bool:
        """Is the loop device ``node`` (the backend's, dom0-owned) the one bound for this
        disk? pyxen's attach recorded the device and its file's identity in the mirror
        (``pyxen-loop``): that holds however the file was renamed, deleted or named
        (relative paths). A loop device xl's block script made is matched by the file
        its ``params`` names, by identity where the file still exists."""
        current = LoopDevice.backing_id_of(node)
        if current is None:
            return False
        if record:
            dev, _, ident = record.partition(" ")
            return dev == node and ident == current
        if not params:
            return False
        try:
            st = os.stat(params)
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and f"{st.st_dev}:{st.st_ino}" == current

    @staticmethod
    def _release_loop(node: str, timeout: float = 10.0) -> None:
        """Release the loop device once blkback has let go of it (it does so
        asynchronously after the backend node is removed)."""
        LoopDevice.release(node)     # detaches now, or when blkback closes it (autoclear)
        deadline = time.monotonic() + timeout
        while LoopDevice.backing_file_of(node) is not None and time.monotonic() < deadline:
            time.sleep(0.02)


    # -- asyncio: the waits as true awaits on xenstore watches (pyxen.xenstore.Watch) ----
    async def await_state(self, path: str, wanted: XenbusState | Iterable[XenbusState],
                          timeout: float, *, what: str = "device", also: "str | None" = None,
                          also_wanted: XenbusState | Iterable[XenbusState] | None = None
                          ) -> None:
        """:meth:`wait_state` for asyncio: awaits the watches on ``path/state`` (and
        ``also``'s) on the running loop; the same DeviceTimeout / DeviceError."""
        import asyncio
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        watches: list[Watch] = []
        try:
            watches.append(self.xs.watch(f"{path}/state"))   # before the first look
            if also is not None:
                watches.append(self.xs.watch(f"{also}/state"))
            while True:
                try:    # one look at the states (timeout 0: the blocking form's check)
                    self.wait_state(path, wanted, 0, what=what, also=also,
                                    also_wanted=also_wanted)
                    return
                except DeviceTimeout as e:
                    left = deadline - loop.time()
                    if left <= 0:
                        raise DeviceTimeout(str(e).replace(" after 0s,", f" after {timeout:g}s,"),
                                            path=e.path, state=e.state, wanted=e.wanted
                                            ) from None
                tasks = [asyncio.ensure_future(w.aread(left)) for w in watches]
                try:
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for t in tasks:
                        t.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                for w in watches:               # the states are read again above
                    while w.check() is not None:
                        pass
        finally:
            for w in watches:
                try:
                    w.close()
                except Exception:  # noqa: BLE001 - closing
                    pass

    async def aattach_disk(self, dom: int | str, disk: str | DiskSpec, *,
                           timeout: float = DEFAULT_TIMEOUT) -> DiskInfo:
        """:meth:`attach_disk` for asyncio: the entries and the hotplug work as there (the
        backend's InitWait, a blkback probe, is waited for there), then Connected of
        backend and frontend awaited. A failure or a cancellation removes the disk again
        (entries, loop device), as the blocking form's rollback does."""
        info = self.attach_disk(dom, disk, timeout=timeout, wait=False)
        try:
            assert info.backend is not None
            await self.await_state(info.backend, XenbusState.CONNECTED, timeout,
                                   what=f"vbd {info.vdev}", also=info.frontend,
                                   also_wanted=XenbusState.CONNECTED)
            return self.disk_info(info.domid, info.devid)
        except BaseException:
            await _to_the_end(self.adetach(info.domid, "vbd", info.devid, timeout=timeout))
            raise

    async def adetach(self, dom: int | str, kind: str, which: str | int, *,
                      timeout: float = DESTROY_TIMEOUT, force: bool = True) -> bool:
        """:meth:`detach` for asyncio: online=0 and Closing, Closed awaited, then the
        removal. Cancelled after online=0, the removal still completes (as a Ctrl-C in the
        blocking form), then CancelledError goes on."""
        import asyncio
        if kind not in ("vbd", "vif"):
            raise DeviceSpecError(f"unsupported device kind {kind!r} (vbd or vif)")
        domid = self.domid(dom) if not (isinstance(dom, int) or str(dom).isdigit()) \
            else int(dom)
        devid = self.find_disk(domid, which) if kind == "vbd" else self.find_nic(domid, which)
        be, _ = self._trusted_backend(domid, kind, devid)
        left = timeout
        cancelled: BaseException | None = None

        if self.xs.exists(be) and self._begin_close(be):
            try:
                await self.await_state(be, XenbusState.CLOSED, timeout,
                                       what=f"{kind} {which} of domain {domid}")
            except DeviceTimeout:
                if not force:
                    raise
                left = 0
            except DeviceError:
                pass                        # the backend went away by itself
            except asyncio.CancelledError as e:
                cancelled, left = e, 0      # finish the removal as a forced detach would
        clean = self.detach(domid, kind, devid, timeout=left, force=True if cancelled
                            else force)
        if cancelled is not None:
            raise cancelled
        return clean

    async def adetach_disk(self, dom: int | str, vdev: str | int, **kw: Any) -> bool:
        """:meth:`detach_disk` for asyncio (:meth:`adetach` of a vbd)."""
        return await self.adetach(dom, "vbd", vdev, **kw)

def _tracked(fn: Callable[..., _R]) -> Callable[..., _R]:
    @functools.wraps(fn)
    def call(self: Devices, *a: Any, **kw: Any) -> _R:
        self._enter()
        try:
            return fn(self, *a, **kw)
        finally:
            self._leave()
    return call


# every public method is a call on the handle: refused once closed, counted while running
for _name, _fn in list(vars(Devices).items()):
    if not _name.startswith("_") and _name != "close" and inspect.isfunction(_fn):
        setattr(Devices, _name, _tracked(_fn))
del _name, _fn


async def _to_the_end(coro: Any) -> Any:
    """Await ``coro`` to its end even if the awaiting task is cancelled meanwhile (a
    rollback); its result."""
    import asyncio
    task = asyncio.ensure_future(coro)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                return task.result()


# ---------------------------------------------------------------------------------------
# module-level convenience (each opens and closes its own handles)
# ---------------------------------------------------------------------------------------

def _with(fn: Callable[..., _R]) -> Callable[..., _R]:
    def call(*a: Any, xs: XenStore | None = None, xc: Ctrl | None = None, **kw: Any) -> _R:
        with Devices(xs, xc) as d:
            return fn(d, *a, **kw)
    call.__name__ = fn.__name__
    call.__doc__ = fn.__doc__
    return call


attach_disk = _with(Devices.attach_disk)
attach_nic = _with(Devices.attach_nic)
list_disks = _with(Devices.list_disks)
list_nics = _with(Devices.list_nics)
list_consoles = _with(Devices.list_consoles)
detach = _with(Devices.detach)


def detach_disk(dom: int | str, vdev: str | int, **kw: Any) -> bool:
    """Unplug a disk (module form of :meth:`Devices.detach_disk`)."""
    return detach(dom, "vbd", vdev, **kw)


def detach_nic(dom: int | str, which: str | int, **kw: Any) -> bool:
    """Unplug a NIC (module form of :meth:`Devices.detach_nic`)."""
    return detach(dom, "vif", which, **kw)
