"""pyxen.guest: build and run guest domains in-process, without libxl.

PV and HVM guests are built through libxenguest the way libxl's PV path does it in Xen 4.17
(``libxl__build_pre`` → ``libxl__build_pv``/``libxl__build_dom`` → ``libxl__build_post``):

    create domain → max vcpus → max mem / memmap limit → event channels → xc_dom_allocate →
    kernel file → ramdisk module → xc_dom_boot_xen_init → parse image → mem init →
    boot mem init → build image → boot image → gnttab init → release → xenstore entries
    (one transaction) → introduce to xenstored → unpause

HVM guests follow libxl's HVM path: an HVM container (``XEN_DOMCTL_CDF_hvm|hap``, all
emulation but vPCI) → max vcpus → max mem → event channels → HVM params (hpet, vpt_align,
timer_mode) → paging pool → xc_dom_allocate with hvmloader as the kernel and
SeaBIOS as its system firmware module, the lowmem/highmem/MMIO-hole layout and the e820
map → the same boot steps (libxenguest sets the store/console HVM params) → xenstore
entries (plus ``platform/*`` and ``hvmloader/bios=seabios``) → introduce → the qemu-xen
device model (``-xen-domid N -machine xenfv``, QMP socket, VNC/SDL/serial, direct kernel
boot) until xenstore's ``device-model/<domid>/state`` says running → unpause. Starting
qemu is the one subprocess in pyxen's library code: Xen's HVM design needs it.

PVH guests follow libxl's PVH path (``libxl__build_hvm`` without a device model): an HVM
container whose only emulated device is the local APIC (``XEN_X86_EMU_LAPIC``) → max vcpus
→ max mem → event channels → timer mode → paging pool → xc_dom_allocate with the kernel
itself (its ``XEN_ELFNOTE_PHYS32_ENTRY`` is the entry point) and the ramdisk as a module,
the MMIO hole below 4 GiB holding the LAPIC, ACPI and special pages → parse → mem init →
boot mem init → the ACPI tables and the e820 map of ``libxl__arch_domain_finalise_hw_description``
→ build → boot (libxenguest writes the start_info page with the command line, modules,
memory map and RSDP, and sets the store/console HVM params) → gnttab → the PV-style
xenstore entries and PV console → introduce → unpause. No device model runs.

Any failure rolls back: the half-built domain is destroyed, its xenstore entries removed
and its device model killed; :class:`BuildError` says which ``step`` failed and why.

Also here: reading a guest's console through xenconsoled's pty (:func:`console_output`,
:func:`open_console`) and a :class:`Supervisor` that applies on_poweroff / on_reboot /
on_crash when xenstored fires ``@releaseDomain``.
"""

from __future__ import annotations

import contextlib
import errno as _errno
import lzma
import os
import re
import stat
import struct
import threading
import zlib
import json
import select
import signal
import socket
import subprocess
import termios
import time
import uuid as _uuid
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from . import _interrupt
from . import cpuid as _cpuid
from . import ctrl as _ctrl
from . import xenstore as _xenstore
from . import xspath
from ._native import xen
from ._text import printable
from .types import LifecycleAction
if TYPE_CHECKING:
    from .config import DomainConfig
from .errors import (BuildError, ConsoleTimeoutError, ConsoleTtyError,  # noqa: F401
                     DomainNotFoundError, GuestWaitTimeout, HandleClosedError,
                     InsufficientMemoryError, KernelNotFoundError,
                     NoSerialError, PyxenError, QmpError, SpecError, SpecTypeError,
                     UnsupportedGuestError)

#: what libxl adds to a domain's max memory on x86 (LIBXL_MAXMEM_CONSTANT, kB)
MAXMEM_CONSTANT_KB = 1024
#: xenconsoled's buffer limit libxl writes in console/limit (LIBXL_XENCONSOLE_LIMIT)
XENCONSOLE_LIMIT = 1048576
#: headroom pyxen wants above the guest's memory before it builds: page tables, p2m,
#: grant and event-channel frames, and Xen's own per-domain structures (kB)
BUILD_OVERHEAD_KB = 4096


#: what to do when a guest powers off, reboots or crashes: pyxen.types.LifecycleAction
#: (``Action("rename-restart")`` takes xl's spellings); the Supervisor applies these four
Action = LifecycleAction
SUPERVISED_ACTIONS = (Action.DESTROY, Action.RESTART, Action.PRESERVE, Action.RESTART_RENAME)


# the exception classes live in pyxen.errors (imported above)


#: guest types build() knows (xl's ``type=``)
GUEST_TYPES = ("pv", "hvm", "pvh")
#: give PVH guests ACPI tables (a hardware-reduced platform with one local APIC per vCPU)
PVH_ACPI = True
#: emulated graphics cards for HVM guests (xl's ``vga=``) and their default videoram (MiB)
VGA_KINDS = {"none": 0, "stdvga": 16, "cirrus": 8}


@dataclass(frozen=True)
class EmulatedDisk:
    """An IDE drive of an HVM guest's qemu, as libxl passes it: ``index`` 0..3 (hda..hdd),
    ``path`` (None: an empty cdrom drive), ``cdrom``, ``devid`` (the vdev's number)."""

    index: int
    devid: int
    path: str | None
    cdrom: bool = False
    readonly: bool = False


@dataclass(frozen=True)
class EmulatedNic:
    """An emulated NIC of an HVM guest's qemu (``model`` e1000, rtl8139, ...) on the tap
    ``vif<domid>.<devid>-emu``, as libxl names it."""

    devid: int
    mac: str
    model: str = "rtl8139"
    bridge: str | None = None


#: the NIC model libxl gives an HVM guest's emulated NIC when the config names none
DEFAULT_NIC_MODEL = "rtl8139"


def tap_name(domid: int, devid: int) -> str:
    """The tap interface qemu makes for an emulated NIC (libxl's ``vif<d>.<n>-emu``)."""
    return f"vif{domid}.{devid}-emu"


@dataclass(frozen=True)
class BuildSpec:
    """A guest, in xl's terms: ``memory``/``maxmem`` in MiB, ``cmdline`` is xl's
    ``extra`` (``root`` is prepended as ``root=...`` the way xl does).

    ``type="hvm"`` builds an HVM guest: hvmloader (``firmware``) as the kernel, SeaBIOS
    (``system_firmware``) as its system firmware module, then the qemu-xen device model.
    ``kernel``/``ramdisk``/``cmdline`` are then optional and mean direct kernel boot
    (qemu's ``-kernel``/``-initrd``/``-append``, as libxl does). ``serial``: ``"file"``
    (default: a log file pyxen reads, :func:`serial_output`), ``"pty"``, ``"none"`` or
    any qemu ``-serial`` value. ``vnc``/``vnclisten``/``vncdisplay``/``vncunused``,
    ``sdl``, ``vga``/``videoram``, ``boot`` (qemu boot order, xl's ``boot=``) and
    ``device_model_args`` are passed to qemu the way libxl passes them.

    ``type="pvh"`` builds a PVH guest: an HVM container with no device model, ``kernel``
    (a Linux with ``CONFIG_PVH``) booted directly at its PVH entry point, ``ramdisk`` and
    ``cmdline`` as for PV, the PV console. ``hap`` applies; the qemu and firmware options
    do not and are refused.
    """

    name: str
    kernel: str | None = None
    ramdisk: str | None = None
    memory: int = 64
    maxmem: int | None = None
    vcpus: int = 1
    cmdline: str = ""
    root: str | None = None
    uuid: str | None = None
    on_poweroff: Action = Action.DESTROY
    on_reboot: Action = Action.RESTART
    on_crash: Action = Action.DESTROY
    paused: bool = False
    features: str | None = None
    # HVM
    type: str = "pv"
    firmware: str | None = None
    system_firmware: str | None = None
    bios: str = "seabios"
    hap: bool | None = None
    boot: str | None = None
    serial: str | None = "file"
    vnc: bool = False
    vnclisten: str = "127.0.0.1"
    vncdisplay: int = 0
    vncunused: bool = True
    sdl: bool = False
    vga: str = "none"
    videoram: int | None = None
    device_model: str | None = None
    device_model_args: tuple = ()
    dm_timeout: float = 120.0
    #: HVM: qemu's IDE drives and emulated NICs (the direct toolstack fills them from a
    #: config's disk= and vif=; their PV backends are the toolstack's)
    disks: tuple = ()
    nics: tuple = ()

    @property
    def hvm(self) -> bool:
        """True for an HVM guest."""
        return self.type == "hvm"

    @property
    def pvh(self) -> bool:
        """True for a PVH guest (an HVM container without a device model)."""
        return self.type == "pvh"

    @property
    def video_mb(self) -> int:
        """MiB of video memory the device model allocates (0 without a graphics card)."""
        if not self.hvm or self.vga == "none":
            return 0
        return self.videoram if self.videoram is not None else VGA_KINDS[self.vga]

    @property
    def full_cmdline(self) -> str:
        """The kernel command line: ``root=`` (if given) then ``cmdline``."""
        parts = []
        if self.root:
            parts.append(f"root={self.root}")
        if self.cmdline:
            parts.append(self.cmdline)
        return " ".join(parts)

    @property
    def maxmem_mb(self) -> int:
        """The memory ceiling in MiB (``maxmem``, else ``memory``)."""
        return self.maxmem if self.maxmem is not None else self.memory

    def _check_pvh(self, bad: Callable[[str], SpecError]) -> None:
        """The PVH-only checks: memory as for HVM, no device model or firmware options."""
        if self.maxmem is not None and self.maxmem != self.memory:
            raise bad("a PVH guest with maxmem > memory needs populate-on-demand, "
                      "which pyxen does not build")
        if self.hap is not None and not isinstance(self.hap, bool):
            raise bad(f"hap must be a bool or None, not {self.hap!r}")
        if self.features is not None:
            raise bad("features is a PV kernel option (xc_dom_allocate's features); "
                      "a PVH guest takes none")
        hvm_only = [f for f in ("firmware", "system_firmware", "boot", "videoram",
                                "device_model") if getattr(self, f) is not None]
        hvm_only += [f for f in ("vnc", "sdl", "device_model_args") if getattr(self, f)]
        hvm_only += ["vga"] * (self.vga != "none") + ["bios"] * (self.bios != "seabios")
        if hvm_only:
            raise bad(f"{', '.join(hvm_only)}: HVM device-model options; a PVH guest has "
                      "no device model")
        if self.serial not in (None, "file", "none"):
            raise bad(f"serial {self.serial!r}: a PVH guest has no emulated serial port "
                      "(its console is the PV console)")

    def validated(self) -> "BuildSpec":
        """A copy with a uuid and the on_* values as Actions; SpecError if invalid."""
        def bad(reason: str) -> SpecError:
            return SpecError("spec", reason)

        if not isinstance(self.name, str) or not self.name or "/" in self.name \
                or len(self.name) > 64 or not self.name.isprintable():
            raise bad(f"invalid domain name {self.name!r}")
        for f in ("memory", "vcpus"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise bad(f"{f} must be a positive int, not {v!r}")
        if self.vcpus > 128:
            raise bad(f"vcpus {self.vcpus} > 128")
        if self.maxmem is not None and (isinstance(self.maxmem, bool)
                                        or not isinstance(self.maxmem, int)
                                        or self.maxmem < self.memory):
            raise bad(f"maxmem {self.maxmem!r} must be an int >= memory ({self.memory})")
        if self.memory > (1 << 22):
            raise bad(f"memory {self.memory} MiB is beyond any host")
        try:
            uid = str(_uuid.UUID(str(self.uuid))) if self.uuid else str(_uuid.uuid4())
        except ValueError:
            raise bad(f"invalid uuid {self.uuid!r}") from None
        try:
            acts: dict[str, Any] = {k: Action(getattr(self, k))
                                    for k in ("on_poweroff", "on_reboot", "on_crash")}
        except ValueError as e:
            raise bad(str(e)) from None
        for k, a in acts.items():
            if a not in SUPERVISED_ACTIONS:
                raise bad(f"{k}={a.xl} is not one the direct builder's Supervisor applies "
                          f"({', '.join(x.xl for x in SUPERVISED_ACTIONS)})")
        if "\0" in self.full_cmdline:
            raise bad("cmdline contains NUL")
        if self.type not in GUEST_TYPES:
            raise bad(f"type must be one of {', '.join(GUEST_TYPES)}, not {self.type!r}")
        if self.pvh:
            self._check_pvh(bad)
        if not self.hvm:
            return replace(self, uuid=uid, **acts)
        if self.maxmem is not None and self.maxmem != self.memory:
            raise bad("an HVM guest with maxmem > memory needs populate-on-demand, "
                      "which pyxen does not build")
        if self.bios != "seabios":
            raise bad(f"bios {self.bios!r}: only seabios is supported with qemu-xen")
        if self.vga not in VGA_KINDS:
            raise bad(f"vga must be one of {', '.join(VGA_KINDS)}, not {self.vga!r}")
        if self.videoram is not None and (isinstance(self.videoram, bool) or
                                          not isinstance(self.videoram, int)
                                          or self.videoram < 1):
            raise bad(f"videoram must be a positive int, not {self.videoram!r}")
        if self.boot is not None and (not self.boot or set(self.boot) - set("acdn")):
            raise bad(f"boot order {self.boot!r}: letters a, c, d, n only")
        if (self.ramdisk or self.full_cmdline) and not self.kernel:
            raise bad("ramdisk and cmdline need a kernel (HVM direct kernel boot)")
        if isinstance(self.vncdisplay, bool) or not isinstance(self.vncdisplay, int) \
                or not 0 <= self.vncdisplay < 100:
            raise bad(f"vncdisplay must be 0..99, not {self.vncdisplay!r}")
        if not all(isinstance(d, EmulatedDisk) for d in self.disks) or not all(
                isinstance(n, EmulatedNic) for n in self.nics):
            raise bad("disks and nics must be EmulatedDisk and EmulatedNic values")
        if len({d.index for d in self.disks}) != len(self.disks) or any(
                not 0 <= d.index <= 3 for d in self.disks):
            raise bad("IDE drives: hda..hdd, each once")
        if len({n.devid for n in self.nics}) != len(self.nics) or any(
                not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", n.mac)
                or not re.fullmatch(r"[a-z0-9_-]{1,32}", n.model)
                or (n.bridge is not None and not re.fullmatch(r"[^\s,=/]{1,15}", n.bridge))
                for n in self.nics):
            raise bad("emulated NICs: one devid each, a mac aa:bb:cc:dd:ee:ff, a model name")
        for d in self.disks:
            if d.path is not None and (not isinstance(d.path, str) or "\0" in d.path
                                       or "," in d.path):
                raise bad(f"disk path {d.path!r} (qemu's -drive cannot take a comma)")
        if isinstance(self.device_model_args, str) or not all(
                isinstance(a, str) and "\0" not in a for a in self.device_model_args):
            raise bad("device_model_args must be a sequence of strings")
        for f in ("serial", "vnclisten", "firmware", "system_firmware", "device_model"):
            v = getattr(self, f)
            if v is not None and (not isinstance(v, str) or "\0" in v or (
                    f == "vnclisten" and "," in v)):
                raise bad(f"invalid {f} {v!r}")
        return replace(self, uuid=uid, device_model_args=tuple(self.device_model_args),
                       disks=tuple(self.disks), nics=tuple(self.nics), **acts)


@dataclass(frozen=True)
class Guest:
    """A built domain: what the build handed to xenstored and xenconsoled."""

    domid: int
    spec: BuildSpec
    store_port: int
    store_mfn: int
    console_port: int
    console_mfn: int
    store_domid: int = 0
    console_domid: int = 0
    timings: dict = field(default_factory=dict, compare=False, repr=False)
    #: HVM: the qemu-xen device model's pid, VNC port (None without VNC), the serial as
    #: qemu was given it (``file:PATH``, ``pty:/dev/pts/N``, ...), its QMP socket
    device_model_pid: int | None = None
    vnc_port: int | None = None
    serial: str | None = None
    qmp_path: str | None = None

    @property
    def name(self) -> str:
        """The domain's name."""
        return self.spec.name

    @property
    def uuid(self) -> str:
        """The domain's uuid."""
        return self.spec.uuid  # type: ignore[return-value]

    @property
    def dompath(self) -> str:
        """The domain's xenstore home, ``/local/domain/<domid>``."""
        return f"/local/domain/{self.domid}"


# -- helpers -----------------------------------------------------------------------------


def _readable(path: str | None, what: str) -> str:
    if not path:
        raise KernelNotFoundError("check_files", f"no {what} given")
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise KernelNotFoundError("check_files", f"{what} {p}: no such file")
    if not os.access(p, os.R_OK):
        raise KernelNotFoundError("check_files", f"{what} {p}: not readable")
    return p


def _tool_domid(xs: _xenstore.XenStore, path: str) -> int:
    raw = xs.get(path)
    try:
        return int(raw) if raw else 0
    except ValueError:
        return 0


def domain_names(xs: _xenstore.XenStore) -> dict[str, int]:
    """name → domid of every domain xenstore knows a name of."""
    return {name: domid for domid, name in xspath.names(xs).items()}


def resolve(domain: str | int, xs: _xenstore.XenStore | None = None) -> int:
    """A domid from a domid or a domain name (as ``xl`` accepts either): xspath.resolve,
    the one lookup every layer shares (two domains claiming one name are refused)."""
    own = xs is None and not isinstance(domain, int) and not str(domain).isdigit()
    xs = _xenstore.open() if own else xs
    try:
        return xspath.resolve(xs, domain)  # type: ignore[arg-type]
    finally:
        if own and xs is not None:
            xs.close()


def _rm_quiet(xs: _xenstore.XenStore, path: str) -> None:
    try:
        xs.rm(path)
    except _xenstore.XenStoreNotFound:
        pass


def remove_xenstore_entries(xs: _xenstore.XenStore, domid: int, uuid: str | None = None) -> None:
    """Remove what a build (or libxl) wrote for ``domid``: its home, vm and libxl paths;
    for an HVM guest also its device model (killed) and device-model directory. Each path
    is removed even if an earlier one fails; the first failure is raised at the end."""
    first: BaseException | None = None
    try:
        remove_device_model(xs, domid)
    except _xenstore.XenStoreError as e:
        first = e
    paths = [f"/local/domain/{domid}", f"/libxl/{domid}"]
    # the console backend from libxl's (dom0-only) mirror, checked to be this domain's;
    # never from console/backend, which is in the guest's directory
    try:
        raw = xs.get(f"/libxl/{domid}/device/console/0/backend")
        be = raw.decode("utf-8", "replace") if raw else ""
    except _xenstore.XenStoreError:
        be = ""
    if re.fullmatch(rf"/local/domain/(0|[1-9][0-9]{{0,4}})/backend/console/{domid}/0", be):
        paths.append(be.rsplit("/", 1)[0])  # .../backend/console/<domid>
    paths.append(f"/local/domain/0/backend/console/{domid}")
    vm = _own_vm_path(xs, domid, uuid)
    if vm:
        paths.append(vm)
    if uuid:
        paths.append(f"/vm/{uuid}")
    for p in dict.fromkeys(paths):
        try:
            _rm_quiet(xs, p)
        except _xenstore.XenStoreError as e:
            first = first or e
    if first is not None:
        raise first


_VM_PATH = re.compile(r"/vm/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                      r"[0-9a-fA-F]{12}")


def _own_vm_path(xs: _xenstore.XenStore, domid: int, uuid: str | None) -> str | None:
    """The domain's ``/vm/<uuid>`` directory as its ``vm`` node names it, if that can be
    removed with it: the node is in the guest's directory, so only a ``/vm/<uuid>`` path,
    the caller's uuid's if one is given, and one no other domain's ``vm`` node names."""
    try:
        raw = xs.get(f"/local/domain/{domid}/vm")
        vm = raw.decode("utf-8", "replace") if raw else None
        if not vm or not _VM_PATH.fullmatch(vm):
            return None
        if uuid is not None:
            return vm if vm == f"/vm/{uuid}" else None
        for d in xs.ls("/local/domain"):
            if d != str(domid) and xs.get(f"/local/domain/{d}/vm") == raw:
                return None                 # another domain's: not ours to remove
    except _xenstore.XenStoreError:
        return None
    return vm


def wait_gone(xc: _ctrl.Ctrl, domid: int, timeout: float = 10.0) -> bool:
    """Wait until the hypervisor no longer lists ``domid`` (dying domains linger until
    the last mapping of their memory goes); True if it is gone."""
    end = time.monotonic() + timeout
    while True:
        try:
            xc.domain(domid)
        except _ctrl.NoSuchDomainError:
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(0.05)


@contextlib.contextmanager
def handles(xc: _ctrl.Ctrl | None = None, xs: _xenstore.XenStore | None = None
            ) -> Iterator[tuple[_ctrl.Ctrl, _xenstore.XenStore]]:
    """``(xc, xs)``: the handles given, or ones opened here and closed on exit."""
    with contextlib.ExitStack() as stack:
        if xc is None:
            xc = stack.enter_context(_ctrl.open())
        if xs is None:
            xs = stack.enter_context(_xenstore.open())
        yield xc, xs


def destroy(domid: int, *, xc: _ctrl.Ctrl | None = None, xs: _xenstore.XenStore | None = None,
            uuid: str | None = None) -> None:
    """Destroy a domain and remove its xenstore entries (what ``xl destroy`` does for a
    guest without devices); an HVM guest's device model is killed first."""
    reap_device_models()
    with handles(xc, xs) as (xc, xs):
        remove_device_model(xs, domid)  # qemu first, as libxl does
        try:
            xc.destroy(domid)
        except _ctrl.NoSuchDomainError:
            pass
        remove_xenstore_entries(xs, domid, uuid)


# -- decompressed kernels ----------------------------------------------------------------

_KERNELS: dict[tuple, bytes] = {}
_KERNELS_LOCK = threading.Lock()


def _bzimage_payload(data: bytes) -> bytes | None:
    """The compressed ELF inside an x86 bzImage (boot protocol >= 2.08), else None."""
    if len(data) < 0x250 or data[0x202:0x206] != b"HdrS":
        return None
    if struct.unpack_from("<H", data, 0x206)[0] < 0x208:
        return None
    setup_sects = data[0x1F1] or 4
    offset, length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + offset
    return data[start:start + length] if start + length <= len(data) else None


def _decompress(payload: bytes) -> bytes | None:
    try:
        if payload[:6] == b"\xfd7zXZ\x00":
            return lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(payload)
        if payload[:2] == b"\x1f\x8b":
            return zlib.decompressobj(31).decompress(payload)
        if payload[:3] == b"\x5d\x00\x00":
            return lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(payload)
    except (lzma.LZMAError, zlib.error, EOFError):
        return None
    return None  # zstd, lz4, lzo, bzip2: libxenguest decompresses those itself


def kernel_image(path: str) -> bytes | None:
    """The ELF kernel inside the bzImage at ``path``, decompressed once per file version
    and kept in memory; None when libxenguest should read the file itself (an ELF
    already, or a compression this does not handle). libxenguest's bzImage loader does
    the same extraction on every build; handing it the ELF (``xc_dom_kernel_mem``)
    skips that, which under emulation is most of a build's time."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    with _KERNELS_LOCK:
        if key in _KERNELS:
            return _KERNELS[key]
    with open(path, "rb") as f:
        data = f.read()
    payload = _bzimage_payload(data)
    elf = _decompress(payload) if payload else None
    if elf is not None and elf[:4] != b"\x7fELF":
        elf = None
    if elf is not None:
        with _KERNELS_LOCK:
            for k in [k for k in _KERNELS if k[0] == key[0]]:
                del _KERNELS[k]  # an older version of the same file
            _KERNELS[key] = elf
    return elf


def clear_kernel_cache() -> None:
    """Forget the decompressed kernels kept between builds."""
    with _KERNELS_LOCK:
        _KERNELS.clear()


# -- PVH: ACPI tables ---------------------------------------------------------------------

#: the identification libacpi writes in every table (ACPI_OEM_ID, ACPI_OEM_TABLE_ID,
#: ACPI_CREATOR_ID)
_ACPI_OEM = (b"Xen", b"HVM", b"HVML")
_FADT_HW_REDUCED_ACPI = 1 << 20            # FADT flags: no fixed hardware, no SCI, no FACS
_FADT_PWR_BUTTON = 1 << 4                  # power button is a control method (none here)
_FADT_SLP_BUTTON = 1 << 5
_IAPC_NO_VGA = 1 << 2                      # FADT IA-PC boot architecture flags
_IAPC_NO_CMOS_RTC = 1 << 5
#: where the RSDP goes for a Linux that does not say it reads start_info's rsdp_paddr
#: (below 1 MiB, where ACPI's search finds it: libxl__dom_load_acpi)
RSDP_LEGACY_ADDRESS = 0x100000 - 64


def _acpi_table(sig: bytes, revision: int, body: bytes) -> bytes:
    """An ACPI table: the 36-byte description header (ACPI spec 5.2.6), then ``body``,
    with the checksum making all bytes sum to zero."""
    oem, table, creator = _ACPI_OEM
    head = struct.pack("<4sIBB6s8sI4sI", sig, 36 + len(body), revision, 0, oem, table, 0,
                       creator, 0)
    raw = bytearray(head + body)
    raw[9] = -sum(raw) & 0xFF
    return bytes(raw)


def pvh_acpi_tables(vcpus: int, base: int) -> tuple[bytes, bytes]:
    """The ACPI tables of a PVH guest with ``vcpus`` vCPUs: a hardware-reduced ACPI 5
    platform (the local APICs, nothing else), as the tables are laid out at guest
    address ``base``. Returns (RSDP, tables): an RSDP (revision 2) pointing at the XSDT,
    then the XSDT, FADT (revision 5), MADT and an empty DSDT, each 16-byte aligned.

    libxl builds them with libacpi (``libxl__dom_load_acpi``); these carry what a Linux
    PVH guest reads from them: the MADT's local APIC entries (APIC id ``2 * cpu``, as
    libxl numbers them), which is how it finds its vCPUs, and a FADT flagged
    HW_REDUCED_ACPI, which tells it there is no PIC, PIT, CMOS RTC, SCI or PM timer
    (PVH emulates only the local APIC)."""
    def align(n: int) -> int:
        return (n + 15) & ~15

    dsdt = _acpi_table(b"DSDT", 2, b"")
    # MADT (5.2.12): local APIC address, flags (no PCAT_COMPAT: there is no 8259),
    # then one Processor Local APIC structure (type 0, length 8) per vCPU
    madt = _acpi_table(b"APIC", 3, struct.pack("<II", LAPIC_BASE_ADDRESS, 0) + b"".join(
        struct.pack("<BBBBI", 0, 8, cpu, 2 * cpu, 1) for cpu in range(vcpus)))
    off_xsdt = 0
    xsdt_len = 36 + 8 * 2
    off_fadt = align(off_xsdt + xsdt_len)
    fadt_len = 268
    off_madt = align(off_fadt + fadt_len)
    off_dsdt = align(off_madt + len(madt))
    # FADT (5.2.9), ACPI 5.0 layout: only DSDT/X_DSDT, the boot-architecture flags and
    # the feature flags are non-zero
    fbody = bytearray(fadt_len - 36)
    struct.pack_into("<I", fbody, 40 - 36, base + off_dsdt)                  # DSDT
    struct.pack_into("<H", fbody, 109 - 36, _IAPC_NO_VGA | _IAPC_NO_CMOS_RTC)
    struct.pack_into("<I", fbody, 112 - 36, _FADT_HW_REDUCED_ACPI | _FADT_PWR_BUTTON
                     | _FADT_SLP_BUTTON)
    struct.pack_into("<Q", fbody, 140 - 36, base + off_dsdt)                 # X_DSDT
    fadt = _acpi_table(b"FACP", 5, bytes(fbody))
    xsdt = _acpi_table(b"XSDT", 1, struct.pack("<QQ", base + off_fadt, base + off_madt))
    blob = bytearray(off_dsdt + len(dsdt))
    for off, t in ((off_xsdt, xsdt), (off_fadt, fadt), (off_madt, madt), (off_dsdt, dsdt)):
        blob[off:off + len(t)] = t
    # RSDP (5.2.5.3): the first 20 bytes sum to zero, then all 36
    rsdp = bytearray(struct.pack("<8sB6sBIIQB3s", b"RSD PTR ", 0, _ACPI_OEM[0], 2, 0, 36,
                                 base + off_xsdt, 0, b""))
    rsdp[8] = -sum(rsdp[:20]) & 0xFF
    rsdp[32] = -sum(rsdp) & 0xFF
    return bytes(rsdp), bytes(blob)


# -- HVM: firmware, device model ---------------------------------------------------------

#: x86 HVM memory layout constants (xen/hvm/e820.h, libxl_internal.h, libxl_x86.c)
HVM_BELOW_4G_MMIO_START = 0xF0000000
HVM_BELOW_4G_MMIO_LENGTH = (1 << 32) - HVM_BELOW_4G_MMIO_START
VGA_HOLE_PAGES = 0x20                     # LIBXL_VGA_HOLE_SIZE: 0xA0000-0xBFFFF
GUEST_LOW_MEM_START = 0x100000            # GUEST_LOW_MEM_START_DEFAULT
#: PVH: where the guest sees its local APIC and where libxl puts the ACPI tables
#: (LAPIC_BASE_ADDRESS, ACPI_INFO_PHYSICAL_ADDRESS in tools/libacpi/libacpi.h); with the
#: HVM special pages they sit in the MMIO hole below 4 GiB
LAPIC_BASE_ADDRESS = 0xFEE00000
ACPI_INFO_PHYSICAL_ADDRESS = 0xFC000000
#: how long libxl waits for qemu to say "running" (LIBXL_DEVICE_MODEL_START_TIMEOUT)
DEVICE_MODEL_START_TIMEOUT = 60.0
#: where libxl keeps qemu's QMP socket and its logs
RUN_DIR = "/var/run/xen"
LOG_DIR = "/var/log/xen"


def _first_file(candidates: Iterable[str | None]) -> str | None:
    for c in candidates:
        if c and os.path.isfile(c):
            return c
    return None


def _xen_dirs() -> list[str]:
    """Debian's versioned Xen directories, the built release first."""
    try:
        from ._native import built_version
        major, minor = built_version()
        own = [f"/usr/lib/xen-{major}.{minor}"]
    except Exception:  # no extension: any installed one
        own = []
    import glob
    return own + sorted(glob.glob("/usr/lib/xen-*"), reverse=True) + ["/usr/lib/xen",
                                                                      "/usr/libexec/xen"]


def default_hvmloader() -> str | None:
    """hvmloader as libxl finds it (libxl__xenfirmwaredir_path()/hvmloader)."""
    return _first_file(os.path.join(d, "boot", "hvmloader") for d in _xen_dirs())


def default_seabios() -> str | None:
    """The SeaBIOS image libxl loads as hvmloader's system firmware (Debian:
    /usr/share/seabios/bios-256k.bin)."""
    return _first_file(["/usr/share/seabios/bios-256k.bin", "/usr/share/seabios/bios.bin",
                        "/usr/lib/xen/boot/seabios.bin", "/usr/share/qemu/bios-256k.bin"]
                       + [os.path.join(d, "boot", "seabios.bin") for d in _xen_dirs()])


def default_device_model() -> str | None:
    """The qemu-xen binary (Debian: /usr/libexec/xen-qemu-system-i386)."""
    return _first_file(["/usr/libexec/xen-qemu-system-i386"]
                       + [os.path.join(d, "bin", "qemu-system-i386") for d in _xen_dirs()]
                       + ["/usr/bin/qemu-system-i386"])


def qmp_path(domid: int) -> str:
    """qemu's QMP socket for ``domid`` (libxl__qemu_qmp_path: the same file, so xl
    can talk to a device model pyxen started)."""
    return f"{RUN_DIR}/qmp-libxl-{domid}"


def dm_state_path(domid: int) -> str:
    """``/local/domain/0/device-model/<domid>``, where qemu reports its state."""
    return f"/local/domain/0/device-model/{domid}"


def qmp(domid: int, command: str, arguments: dict | None = None, *,
        timeout: float = 10.0, path: str | None = None) -> Any:
    """Run one QMP command on ``domid``'s device model; returns its ``return`` value."""
    path = path or qmp_path(domid)
    end = time.monotonic() + timeout
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except OSError as e:
        raise QmpError(command, str(e)) from e
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError as e:
            raise QmpError(command, f"cannot connect to {path}: {e}") from e
        f = sock.makefile("rwb")

        def reply(what: str) -> Any:
            while True:
                sock.settimeout(max(0.01, end - time.monotonic()))
                try:
                    line = f.readline()
                except (OSError, socket.timeout) as e:
                    raise QmpError(what, f"no answer: {e}") from e
                if not line:
                    raise QmpError(what, "qemu closed the QMP socket")
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if "event" in msg:
                    continue
                return msg

        greeting = reply("greeting")
        if "QMP" not in greeting:
            raise QmpError("greeting", f"unexpected {greeting!r}")
        for cmd, args in (("qmp_capabilities", None), (command, arguments)):
            msg: dict[str, Any] = {"execute": cmd}
            if args:
                msg["arguments"] = args
            f.write(json.dumps(msg).encode() + b"\r\n")
            f.flush()
            r = reply(cmd)
            if "error" in r:
                err = r["error"]
                raise QmpError(cmd, f"{err.get('class')}: {err.get('desc')}")
        return r.get("return")
    finally:
        sock.close()


def vnc_port(domid: int, *, timeout: float = 10.0) -> int | None:
    """The TCP port of ``domid``'s VNC server (QMP ``query-vnc``); None if it has none."""
    r = qmp(domid, "query-vnc", timeout=timeout)
    if not r or not r.get("enabled") or not str(r.get("service", "")).isdigit():
        return None
    return int(r["service"])


#: device-model processes started by this process, with the domid each serves (reaped
#: when they are killed or found dead)
_DM_PROCS: dict[int, tuple[subprocess.Popen, int]] = {}


def _is_device_model(pid: int, domid: int) -> bool:
    """Is ``pid`` (still) the qemu serving ``domid``? (pids are reused, and the pid may
    come from a node the guest can write.) A device model this process started for
    ``domid`` and has not reaped (its pid cannot have been reused: even a freshly spawned
    one still paging its binary in, whose /proc entry says little yet), or a qemu binary
    whose command line says ``-xen-domid <domid>``."""
    if pid <= 1 or pid == os.getpid():
        return False
    own = _DM_PROCS.get(pid)
    if own is not None:
        if own[1] == domid and own[0].returncode is None:
            return True         # ours and unreaped (a zombie is still ours to reap)
        if own[0].returncode is not None:
            _DM_PROCS.pop(pid, None)
    try:
        if "qemu" not in os.path.basename(os.readlink(f"/proc/{pid}/exe")):
            return False
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    for i, a in enumerate(argv[:-1]):
        if a == b"-xen-domid" and argv[i + 1] == str(domid).encode():
            return True
    return False


def reap_device_models() -> None:
    """Reap the device models this process started that have exited by themselves."""
    for pid, (p, _) in list(_DM_PROCS.items()):
        if p.poll() is not None:
            _DM_PROCS.pop(pid, None)


def _gone(pid: int) -> bool:
    own = _DM_PROCS.get(pid)
    if own is not None:
        if own[0].poll() is not None:
            del _DM_PROCS[pid]
            return True
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


#: how long a qemu killed with SIGKILL may take to end (its exit unmaps the guest's memory,
#: one hypercall a page: seconds under nested TCG)
DM_KILL_TIMEOUT = 60.0


def kill_device_model(domid: int, pid: int | None, timeout: float = 5.0) -> bool:
    """Stop ``domid``'s qemu (SIGTERM, then SIGKILL after ``timeout`` s), as libxl's
    kill_device_model does, and wait until it has ended (a qemu still alive could write
    its xenstore nodes again after they are removed); True if a process was stopped."""
    if pid is None or not _is_device_model(pid, domid):
        if pid is not None:
            _gone(pid)  # reap it if it was ours
        return False
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, DM_KILL_TIMEOUT)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        end = time.monotonic() + wait
        while not _gone(pid) and time.monotonic() < end:
            time.sleep(0.02)
        if _gone(pid):
            break
    return True


def device_model_pid(domid: int, xs: _xenstore.XenStore) -> int | None:
    """The pid of ``domid``'s device model: pyxen's record under ``/libxl/<domid>``
    (dom0's), else libxl's ``image/device-model-pid`` (in the guest's directory: callers
    check it with _is_device_model before they signal it). Decimal digits only."""
    for path in (f"/libxl/{domid}/pyxen/dm-pid", f"/local/domain/{domid}/image/device-model-pid"):
        raw = xs.get(path)
        if raw is not None:
            return int(raw) if re.fullmatch(rb"[1-9][0-9]{0,9}", raw) else None
    return None


def remove_device_model(xs: _xenstore.XenStore, domid: int) -> None:
    """Kill ``domid``'s qemu (pid from xenstore) and remove its traces: the
    device-model xenstore directory, the QMP socket and pyxen's serial log."""
    try:
        pid = device_model_pid(domid, xs)
    except _xenstore.XenStoreError:
        pid = None
    kill_device_model(domid, pid)
    _rm_quiet(xs, dm_state_path(domid))
    for path in (qmp_path(domid), _serial_file(domid)):
        try:
            os.unlink(path)
        except OSError:
            pass


def _serial_file(domid: int) -> str:
    return f"{RUN_DIR}/pyxen-serial-{domid}.log"


def serial_spec(domid: int, *, xs: _xenstore.XenStore | None = None) -> str | None:
    """How ``domid``'s first serial port reaches dom0, as pyxen gave it to qemu
    (``file:PATH``, ``pty:/dev/pts/N``, ...), or None (not an HVM guest pyxen built)."""
    own = xs is None
    xs = xs or _xenstore.open()
    try:
        raw = xs.get(f"/libxl/{domid}/pyxen/serial")
    finally:
        if own:
            xs.close()
    return raw.decode() if raw else None


def _read_fd(fd: int, end: float, marker: bytes | None) -> bytearray:
    buf = bytearray()
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([fd], [], [], min(left, 0.5))
        if not r:
            continue
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        except OSError as e:
            if e.errno == _errno.EIO:  # the other side closed the pty
                break
            raise
        if not chunk:
            break
        buf += chunk
        if marker and marker in buf:
            break
    return buf


def serial_output(domid: int, timeout: float = 30.0, until: str | bytes | None = None,
                  *, xs: _xenstore.XenStore | None = None) -> str:
    """Read an HVM guest's first serial port (what qemu's ``-serial`` carries) for up to
    ``timeout`` seconds, or until ``until`` appears. With ``serial="file"`` (the
    default) this is everything the guest wrote since it started; with ``"pty"`` what it
    writes while this reads. NoSerialError (a LookupError) if the guest has no serial pyxen
    can read."""
    end = time.monotonic() + timeout
    spec = serial_spec(domid, xs=xs)
    marker = until.encode() if isinstance(until, str) else until
    if spec and spec.startswith("file:"):
        path = spec[5:]
        buf = bytearray()
        with open(path, "rb") as f:
            while True:
                chunk = f.read(65536)
                if chunk:
                    buf += chunk
                    if marker and marker in buf:
                        break
                    continue
                if time.monotonic() >= end:
                    break
                time.sleep(0.1)
        return buf.decode("utf-8", "replace")
    if spec and spec.startswith("pty:"):
        fd = _open_pty(spec[4:])
        try:
            return _read_fd(fd, end, marker).decode("utf-8", "replace")
        finally:
            os.close(fd)
    raise NoSerialError(f"domain {domid}: no serial port pyxen can read ({spec or 'none'})")


def device_model_argv(spec: "BuildSpec", domid: int, dm: str) -> list[str]:
    """qemu-xen's command line for an HVM guest, as libxl__build_device_model_args_new
    (4.17) builds it for the same options."""
    argv = [dm, "-xen-domid", str(domid), "-no-shutdown",
            "-chardev", f"socket,id=libxl-cmd,path={qmp_path(domid)},server=on,wait=off",
            "-mon", "chardev=libxl-cmd,mode=control",
            "-nodefaults", "-no-user-config", "-name", spec.name]
    if spec.vnc:
        listen = spec.vnclisten or "127.0.0.1"
        arg = listen if ":" in listen else f"{listen}:{spec.vncdisplay}"
        if spec.vncunused:
            arg += ",to=99"
        argv += ["-vnc", arg]
    else:
        argv += ["-vnc", "none"]
    argv += ["-display", "none"]
    if spec.sdl:
        argv += ["-display", "sdl"]
    if spec.kernel:
        argv += ["-kernel", spec.kernel]
    if spec.ramdisk:
        argv += ["-initrd", spec.ramdisk]
    if spec.full_cmdline:
        argv += ["-append", spec.full_cmdline]
    serial = spec.serial
    if serial == "file":
        argv += ["-serial", f"file:{_serial_file(domid)}"]
    elif serial and serial != "none":
        argv += ["-serial", serial]
    if spec.vga == "stdvga":
        argv += ["-device", f"VGA,vgamem_mb={spec.video_mb}"]
    elif spec.vga == "cirrus":
        argv += ["-device", f"cirrus-vga,vgamem_mb={spec.video_mb}"]
    if spec.boot:
        argv += ["-boot", f"order={spec.boot}"]
    for d in spec.disks:
        if d.cdrom:   # libxl since 4.16: -drive if=none plus an ide-cd device, same id
            drive_id = f"ide-{d.devid}"
            drive = f"if=none,readonly=on,id={drive_id}"
            if d.path:
                drive += f",file={d.path},format=raw"
            argv += ["-drive", drive, "-device",
                     f"ide-cd,id={drive_id},drive={drive_id},bus=ide.{d.index // 2},"
                     f"unit={d.index % 2}"]
        else:
            argv += ["-drive", f"file={d.path},if=ide,index={d.index},media=disk,"
                               f"format=raw,cache=writeback"
                               + (",readonly=on" if d.readonly else "")]
    for n in spec.nics:
        argv += ["-device", f"{n.model},id=nic{n.devid},netdev=net{n.devid},mac={n.mac}",
                 "-netdev", f"type=tap,id=net{n.devid},ifname={tap_name(domid, n.devid)},"
                            + (f"br={n.bridge}," if n.bridge else "")
                            + "script=no,downscript=no"]

    if spec.vcpus > 1:
        argv += ["-smp", str(spec.vcpus)]
    argv += list(spec.device_model_args)
    argv += ["-machine", "xenfv,suppress-vmdesc=on", "-m", str(spec.memory)]
    return argv


# -- the builder -------------------------------------------------------------------------


class _Build:
    """One build attempt; ``run()`` returns a Guest or raises BuildError after rollback."""

    def __init__(self, spec: BuildSpec, xc: _ctrl.Ctrl, xs: _xenstore.XenStore,
                 check_memory: bool = True, kernel_cache: bool = True):
        self.spec, self.xc, self.xs = spec, xc, xs
        self.check_memory, self.kernel_cache = check_memory, kernel_cache
        self.domid: int | None = None
        self.step = "spec"
        self.wrote_xenstore = False
        self.dm_pid: int | None = None
        self.timings: dict[str, float] = {}
        self._last: float | None = None

    def _fail(self, reason: str, cause: BaseException | None = None,
              cls: type[BuildError] = BuildError) -> BuildError:
        return cls(self.step, reason, domid=self.domid, cause=cause)

    def _xc_check(self, rc: int, call: str) -> int:
        return _ctrl._check(self.xc, rc, call, self.domid)

    def run(self) -> "Guest":
        try:
            return self._run()
        except BaseException as e:
            with _interrupt.deferred_sigint():  # a second Ctrl-C waits for the rollback
                self._rollback()
            if isinstance(e, BuildError):
                e.domid = self.domid if e.domid is None else e.domid
                raise
            if isinstance(e, (_ctrl.XenOutOfMemoryError, MemoryError)) and \
                    not isinstance(e, KeyboardInterrupt):
                raise self._fail(f"not enough memory: {e}", e, InsufficientMemoryError) from e
            if isinstance(e, PyxenError) or isinstance(e, OSError):
                raise self._fail(str(e), e) from e
            raise

    def _rollback(self) -> None:
        _interrupt.point("guest.rollback")
        if self.domid is None:
            return
        if self.dm_pid is not None:  # libxl kills the device model before the domain
            kill_device_model(self.domid, self.dm_pid)
        if self.spec.hvm:
            try:
                remove_device_model(self.xs, self.domid)
            except _xenstore.XenStoreError:
                pass
        try:
            self.xc.destroy(self.domid)
        except _ctrl.XenCtrlError:
            pass
        try:
            remove_xenstore_entries(self.xs, self.domid, self.spec.uuid)
        except _xenstore.XenStoreError:
            pass
        wait_gone(self.xc, self.domid, 5.0)

    def _mark(self, step: str) -> None:
        """Enter ``step``; ``timings`` collects each step's duration (seconds)."""
        now = time.monotonic()
        if self._last is not None:
            self.timings[self.step] = self.timings.get(self.step, 0.0) + now - self._last
        self.step, self._last = step, now
        _interrupt.point(f"guest.{step}")

    def _create_domain(self, **kw: Any) -> int:
        """xc_domain_create, with the domid recorded before a Ctrl-C can land."""
        self._mark("create_domain")
        with _interrupt.deferred_sigint():
            self.domid = self.xc.create_domain(uuid=self.spec.uuid, **kw)
        return self.domid

    def _run(self) -> "Guest":
        if self.spec.hvm:
            return self._run_hvm()
        if self.spec.pvh:
            return self._run_pvh()
        spec = self.spec
        t0 = time.monotonic()
        self._mark("check_files")
        kernel = _readable(spec.kernel, "kernel")
        ramdisk = _readable(spec.ramdisk, "ramdisk") if spec.ramdisk else None

        self._mark("check_host")
        info = self.xc.physinfo()
        if _ctrl.VirtCaps.PV not in info.virt_caps:
            raise self._fail(f"this host cannot run PV guests (virt_caps: "
                             f"{' '.join(info.virt_caps.xl_names()) or 'none'})",
                             cls=UnsupportedGuestError)
        need_kb = spec.memory * 1024 + BUILD_OVERHEAD_KB
        if self.check_memory and info.free_memory_kb < need_kb:
            raise self._fail(f"guest needs {spec.memory} MiB (+{BUILD_OVERHEAD_KB // 1024} "
                             f"MiB overhead) but the hypervisor has only "
                             f"{info.free_memory_kb // 1024} MiB free",
                             cls=InsufficientMemoryError)
        if spec.name in domain_names(self.xs):
            raise self._fail(f"a domain named {spec.name!r} already exists",
                             cls=SpecError)

        # libxl__domain_make
        domid = self._create_domain(hvm=False, max_vcpus=spec.vcpus)
        # libxl__build_pre
        self._mark("max_vcpus")
        self.xc.max_vcpus(domid, spec.vcpus)
        self._mark("set_max_memory")
        self.xc.set_max_memory(domid, spec.memory * 1024 + MAXMEM_CONSTANT_KB)
        ffi, lib = xen()
        self._mark("set_memmap_limit")
        self._xc_check(lib.xc_domain_set_memmap_limit(self.xc._p(), domid,
                                                      spec.maxmem_mb * 1024),
                       "xc_domain_set_memmap_limit")
        store_domid = _tool_domid(self.xs, "/tool/xenstored/domid")
        console_domid = _tool_domid(self.xs, "/tool/xenconsoled/domid")
        self._mark("evtchn_alloc_unbound")
        store_port = self.xc.evtchn_alloc_unbound(domid, store_domid)
        console_port = self.xc.evtchn_alloc_unbound(domid, console_domid)

        # libxl__build_pv / libxl__build_dom
        store_mfn, console_mfn = self._libxenguest(kernel, ramdisk, store_port, store_domid,
                                                   console_port, console_domid)

        # libxl__domain_make's skeleton + libxl__build_post + the primary console
        self._mark("xenstore_write")
        guest = Guest(domid=domid, spec=spec, store_port=store_port, store_mfn=store_mfn,
                      console_port=console_port, console_mfn=console_mfn,
                      store_domid=store_domid, console_domid=console_domid,
                      timings=self.timings)
        self.xs.batch_transact(lambda t: _write_entries(t, guest))
        self._mark("introduce_domain")
        self.xs.introduce_domain(domid, store_mfn, store_port)
        return self._finish(guest, t0)

    def _finish(self, guest: "Guest", t0: float) -> "Guest":
        """Unpause unless asked for a paused guest; record the step timings."""
        if not self.spec.paused:
            self._mark("unpause")
            self.xc.unpause(guest.domid)
        self._mark("done")
        guest.timings.update(self.timings)
        guest.timings["total"] = time.monotonic() - t0
        return guest

    def _dom_step(self, step: str, call: Callable[[], int]) -> None:
        """One libxenguest build step; out-of-memory failures become
        InsufficientMemoryError, others BuildError naming the step."""
        self._mark(step)
        try:
            self._xc_check(call(), step)
        except _ctrl.XenCtrlError as e:
            if e.errno == _errno.ENOMEM or step == "xc_dom_boot_mem_init" or \
                    "out of memory" in (e.detail or "").lower():
                raise self._fail(f"not enough memory for {self.spec.memory} MiB: {e}", e,
                                 InsufficientMemoryError) from e
            raise self._fail(str(e), e) from e

    def _libxenguest(self, kernel: str, ramdisk: str | None, store_port: int, store_domid: int,
                     console_port: int, console_domid: int) -> tuple[int, int]:
        spec, domid = self.spec, self.domid
        ffi, lib = xen()
        xch = self.xc._p()
        self._mark("xc_dom_allocate")
        features = spec.features.encode() if spec.features else ffi.NULL
        dom = lib.xc_dom_allocate(xch, spec.full_cmdline.encode(), features)
        if dom == ffi.NULL:
            self._xc_check(-1, "xc_dom_allocate")
        try:
            elf = None
            if self.kernel_cache:
                self._mark("kernel_image")
                elf = kernel_image(kernel)
            if elf is not None:
                self._mark("xc_dom_kernel_mem")
                blob = ffi.from_buffer("char[]", elf)  # must outlive the build: not copied
                self._xc_check(lib.xc_dom_kernel_mem(dom, blob, len(elf)), "xc_dom_kernel_mem")
            else:
                self._mark("xc_dom_kernel_file")
                self._xc_check(lib.xc_dom_kernel_file(dom, kernel.encode()),
                               "xc_dom_kernel_file")
            if ramdisk:
                self._mark("xc_dom_module_file")
                self._xc_check(lib.xc_dom_module_file(dom, ramdisk.encode(), ffi.NULL),
                               "xc_dom_module_file")
            dom.flags = 0
            dom.console_evtchn = console_port
            dom.console_domid = console_domid
            dom.xenstore_evtchn = store_port
            dom.xenstore_domid = store_domid
            dom.claim_enabled = 0
            dom.max_vcpus = spec.vcpus
            for step, call in (
                    ("xc_dom_boot_xen_init", lambda: lib.xc_dom_boot_xen_init(dom, xch, domid)),
                    ("xc_dom_parse_image", lambda: lib.xc_dom_parse_image(dom)),
                    ("xc_dom_mem_init", lambda: lib.xc_dom_mem_init(dom, spec.memory)),
                    ("xc_dom_boot_mem_init", lambda: lib.xc_dom_boot_mem_init(dom)),
                    ("xc_dom_build_image", lambda: lib.xc_dom_build_image(dom)),
                    ("xc_dom_boot_image", lambda: lib.xc_dom_boot_image(dom)),
                    ("xc_dom_gnttab_init", lambda: lib.xc_dom_gnttab_init(dom))):
                self._dom_step(step, call)
            if lib.xc_dom_translated(dom):
                return int(dom.xenstore_pfn), int(dom.console_pfn)
            return (int(lib.xc_dom_p2m(dom, dom.xenstore_pfn)),
                    int(lib.xc_dom_p2m(dom, dom.console_pfn)))
        finally:
            lib.xc_dom_release(dom)

    # -- HVM (libxl__domain_make → libxl__build_pre → libxl__build_hvm → libxl__build_post
    #    → libxl__spawn_local_dm → unpause) ------------------------------------------------

    def _run_hvm(self) -> "Guest":
        spec = self.spec
        t0 = time.monotonic()
        self._mark("check_files")
        if spec.kernel:
            _readable(spec.kernel, "kernel")
        if spec.ramdisk:
            _readable(spec.ramdisk, "ramdisk")
        firmware = _readable(spec.firmware or default_hvmloader(), "hvmloader (firmware)")
        bios = _readable(spec.system_firmware or default_seabios(),
                         "SeaBIOS (system_firmware)")
        dm = spec.device_model or default_device_model()
        if not dm or not os.path.isfile(dm):
            raise KernelNotFoundError("check_files", f"device model {dm or 'qemu-xen'}: "
                                      "no such file (apt-get install qemu-system-xen)")
        if not os.access(dm, os.X_OK):
            raise KernelNotFoundError("check_files", f"device model {dm}: not executable")

        self._mark("check_host")
        info = self.xc.physinfo()
        if _ctrl.VirtCaps.HVM not in info.virt_caps:
            try:
                v = _cpuid.verdict(self.xc)
                why = f"; cpuid verdict: {v.reason}: {v.detail}"
            except Exception:  # the verdict is context only
                why = ""
            raise self._fail(f"this host cannot run HVM guests (virt_caps: "
                             f"{' '.join(info.virt_caps.xl_names()) or 'none'}{why})",
                             cls=UnsupportedGuestError)
        hap = spec.hap if spec.hap is not None else _ctrl.VirtCaps.HAP in info.virt_caps
        if hap and _ctrl.VirtCaps.HAP not in info.virt_caps:
            raise self._fail("hap requested but this host has no HAP (EPT/NPT)",
                             cls=UnsupportedGuestError)
        video_kb = spec.video_mb * 1024
        max_kb = spec.memory * 1024 + video_kb
        # libxl_get_required_shadow_memory: the paging pool (HAP or shadow page tables)
        shadow_kb = 4 * (256 * spec.vcpus + 2 * (max_kb // 1024))
        need_kb = max_kb + shadow_kb + MAXMEM_CONSTANT_KB + BUILD_OVERHEAD_KB
        if self.check_memory and info.free_memory_kb < need_kb:
            raise self._fail(f"guest needs {spec.memory} MiB (+{video_kb // 1024} MiB video, "
                             f"+{(need_kb - max_kb) // 1024} MiB overhead) but the hypervisor "
                             f"has only {info.free_memory_kb // 1024} MiB free",
                             cls=InsufficientMemoryError)
        if spec.name in domain_names(self.xs):
            raise self._fail(f"a domain named {spec.name!r} already exists", cls=SpecError)

        domid = self._create_domain(hvm=True, hap=hap, max_vcpus=spec.vcpus)
        ffi, lib = xen()
        xch = self.xc._p()
        self._mark("max_vcpus")
        self.xc.max_vcpus(domid, spec.vcpus)
        self._mark("set_max_memory")
        self.xc.set_max_memory(domid, max_kb + MAXMEM_CONSTANT_KB)
        store_domid = _tool_domid(self.xs, "/tool/xenstored/domid")
        console_domid = _tool_domid(self.xs, "/tool/xenconsoled/domid")
        self._mark("evtchn_alloc_unbound")
        store_port = self.xc.evtchn_alloc_unbound(domid, store_domid)
        console_port = self.xc.evtchn_alloc_unbound(domid, console_domid)
        # libxl__arch_domain_create → hvm_set_conf_params (xl's defaults: hpet=1,
        # vpt_align=1, timer_mode=no_delay_for_missed_ticks). altp2m stays off, its
        # default: 4.17's libxl writes HVM_PARAM_ALTP2M=0, 4.20 (altp2m chosen at domain
        # creation) refuses that param with EEXIST.
        self._mark("xc_hvm_param_set")
        for param, value in ((lib.HVM_PARAM_HPET_ENABLED, 1), (lib.HVM_PARAM_VPT_ALIGN, 1),
                             (lib.HVM_PARAM_TIMER_MODE, lib.HVMPTM_no_delay_for_missed_ticks)):
            self._xc_check(lib.xc_hvm_param_set(xch, domid, param, value), "xc_hvm_param_set")
        self._mark("xc_set_paging_mempool_size")
        try:
            self._xc_check(lib.xc_set_paging_mempool_size(xch, domid, shadow_kb * 1024),
                           "xc_set_paging_mempool_size")
        except _ctrl.XenCtrlError as e:
            raise self._fail(f"paging pool of {shadow_kb} kB: {e}", e,
                             InsufficientMemoryError if e.errno == _errno.ENOMEM
                             else BuildError) from e

        store_pfn, console_pfn = self._libxenguest_hvm(firmware, bios, store_port, store_domid,
                                                       console_port, console_domid)

        self._mark("xenstore_write")
        guest = Guest(domid=domid, spec=spec, store_port=store_port, store_mfn=store_pfn,
                      console_port=console_port, console_mfn=console_pfn,
                      store_domid=store_domid, console_domid=console_domid,
                      timings=self.timings)
        self.xs.batch_transact(lambda t: _write_entries(t, guest))
        self._mark("introduce_domain")
        self.xs.introduce_domain(domid, store_pfn, store_port)

        guest = self._spawn_device_model(guest, dm)
        return self._finish(guest, t0)

    def _libxenguest_hvm(self, firmware: str, bios: str, store_port: int, store_domid: int,
                         console_port: int, console_domid: int) -> tuple[int, int]:
        """libxl__build_hvm + libxl__domain_firmware + libxl__build_dom (4.17)."""
        spec, domid = self.spec, self.domid
        ffi, lib = xen()
        xch = self.xc._p()
        self._mark("read_system_firmware")
        with open(bios, "rb") as f:
            bios_data = f.read()
        if not bios_data:
            raise self._fail(f"system firmware {bios} is empty")
        self._mark("xc_dom_allocate")
        dom = lib.xc_dom_allocate(xch, ffi.NULL, ffi.NULL)
        if dom == ffi.NULL:
            self._xc_check(-1, "xc_dom_allocate")
        blob = ffi.from_buffer("uint8_t[]", bios_data)  # libxenguest keeps the pointer
        try:
            dom.container_type = lib.XC_DOM_HVM_CONTAINER
            mem_size = spec.memory << 20
            dom.target_pages = spec.memory << 8
            dom.claim_enabled = 0
            self._mark("xc_dom_kernel_file")
            self._xc_check(lib.xc_dom_kernel_file(dom, firmware.encode()),
                           "xc_dom_kernel_file")
            dom.system_firmware_module.data = blob
            dom.system_firmware_module.length = len(bios_data)
            # the memory layout: RAM below the MMIO hole, the rest above 4 GiB
            dom.mmio_size = HVM_BELOW_4G_MMIO_LENGTH
            mmio_start = (1 << 32) - HVM_BELOW_4G_MMIO_LENGTH
            lowmem_end, highmem_end = mem_size, 0
            if lowmem_end > mmio_start:
                highmem_end = (1 << 32) + (lowmem_end - mmio_start)
                lowmem_end = mmio_start
            dom.lowmem_end, dom.highmem_end, dom.mmio_start = lowmem_end, highmem_end, \
                mmio_start
            dom.vga_hole_size = VGA_HOLE_PAGES
            dom.device_model = True
            dom.max_vcpus = spec.vcpus
            dom.console_evtchn = console_port
            dom.console_domid = console_domid
            dom.xenstore_evtchn = store_port
            dom.xenstore_domid = store_domid

            def memmap() -> int:  # libxl_x86.c domain_construct_memmap
                ents = [(GUEST_LOW_MEM_START, lowmem_end - GUEST_LOW_MEM_START)]
                if highmem_end:
                    ents.append((1 << 32, highmem_end - (1 << 32)))
                e820 = ffi.new("struct e820entry[]", len(ents))
                for i, (addr, size) in enumerate(ents):
                    e820[i].addr, e820[i].size, e820[i].type = addr, size, lib.E820_RAM
                return lib.xc_domain_set_memory_map(xch, domid, e820, len(ents))

            for step, call in (
                    ("xc_dom_boot_xen_init", lambda: lib.xc_dom_boot_xen_init(dom, xch, domid)),
                    ("xc_dom_parse_image", lambda: lib.xc_dom_parse_image(dom)),
                    ("xc_dom_mem_init", lambda: lib.xc_dom_mem_init(dom, spec.memory)),
                    ("xc_dom_boot_mem_init", lambda: lib.xc_dom_boot_mem_init(dom)),
                    ("xc_domain_set_memory_map", memmap),
                    ("xc_dom_build_image", lambda: lib.xc_dom_build_image(dom)),
                    ("xc_dom_boot_image", lambda: lib.xc_dom_boot_image(dom)),
                    ("xc_dom_gnttab_init", lambda: lib.xc_dom_gnttab_init(dom))):
                self._dom_step(step, call)
            return int(dom.xenstore_pfn), int(dom.console_pfn)
        finally:
            lib.xc_dom_release(dom)

    # -- PVH (libxl__domain_make → libxl__build_pre → libxl__build_hvm without a device
    #    model → libxl__build_post → unpause) ---------------------------------------------

    def _run_pvh(self) -> "Guest":
        spec = self.spec
        t0 = time.monotonic()
        self._mark("check_files")
        kernel = _readable(spec.kernel, "kernel")
        ramdisk = _readable(spec.ramdisk, "ramdisk") if spec.ramdisk else None

        self._mark("check_host")
        info = self.xc.physinfo()
        if _ctrl.VirtCaps.HVM not in info.virt_caps:
            raise self._fail(f"this host cannot run PVH guests, which need HVM support "
                             f"(virt_caps: {' '.join(info.virt_caps.xl_names()) or 'none'})",
                             cls=UnsupportedGuestError)
        hap = spec.hap if spec.hap is not None else _ctrl.VirtCaps.HAP in info.virt_caps
        if hap and _ctrl.VirtCaps.HAP not in info.virt_caps:
            raise self._fail("hap requested but this host has no HAP (EPT/NPT)",
                             cls=UnsupportedGuestError)
        max_kb = spec.memory * 1024
        shadow_kb = 4 * (256 * spec.vcpus + 2 * (max_kb // 1024))
        need_kb = max_kb + shadow_kb + MAXMEM_CONSTANT_KB + BUILD_OVERHEAD_KB
        if self.check_memory and info.free_memory_kb < need_kb:
            raise self._fail(f"guest needs {spec.memory} MiB (+{(need_kb - max_kb) // 1024} "
                             f"MiB overhead) but the hypervisor has only "
                             f"{info.free_memory_kb // 1024} MiB free",
                             cls=InsufficientMemoryError)
        if spec.name in domain_names(self.xs):
            raise self._fail(f"a domain named {spec.name!r} already exists", cls=SpecError)

        ffi, lib = xen()
        # libxl__arch_domain_prepare_config: PVH emulates only the local APIC
        domid = self._create_domain(hvm=True, hap=hap, max_vcpus=spec.vcpus,
                                    emulation_flags=lib.XEN_X86_EMU_LAPIC)
        xch = self.xc._p()
        self._mark("max_vcpus")
        self.xc.max_vcpus(domid, spec.vcpus)
        self._mark("set_max_memory")
        self.xc.set_max_memory(domid, max_kb + MAXMEM_CONSTANT_KB)
        store_domid = _tool_domid(self.xs, "/tool/xenstored/domid")
        console_domid = _tool_domid(self.xs, "/tool/xenconsoled/domid")
        self._mark("evtchn_alloc_unbound")
        store_port = self.xc.evtchn_alloc_unbound(domid, store_domid)
        console_port = self.xc.evtchn_alloc_unbound(domid, console_domid)
        # hvm_set_conf_params for PVH: the timer mode only (hpet and vpt_align are HVM's)
        self._mark("xc_hvm_param_set")
        self._xc_check(lib.xc_hvm_param_set(xch, domid, lib.HVM_PARAM_TIMER_MODE,
                                            lib.HVMPTM_no_delay_for_missed_ticks),
                       "xc_hvm_param_set")
        self._mark("xc_set_paging_mempool_size")
        try:
            self._xc_check(lib.xc_set_paging_mempool_size(xch, domid, shadow_kb * 1024),
                           "xc_set_paging_mempool_size")
        except _ctrl.XenCtrlError as e:
            raise self._fail(f"paging pool of {shadow_kb} kB: {e}", e,
                             InsufficientMemoryError if e.errno == _errno.ENOMEM
                             else BuildError) from e

        store_pfn, console_pfn = self._libxenguest_pvh(kernel, ramdisk, store_port,
                                                       store_domid, console_port,
                                                       console_domid)

        self._mark("xenstore_write")
        guest = Guest(domid=domid, spec=spec, store_port=store_port, store_mfn=store_pfn,
                      console_port=console_port, console_mfn=console_pfn,
                      store_domid=store_domid, console_domid=console_domid,
                      timings=self.timings)
        self.xs.batch_transact(lambda t: _write_entries(t, guest))
        self._mark("introduce_domain")
        self.xs.introduce_domain(domid, store_pfn, store_port)
        return self._finish(guest, t0)

    def _libxenguest_pvh(self, kernel: str, ramdisk: str | None, store_port: int,
                         store_domid: int, console_port: int,
                         console_domid: int) -> tuple[int, int]:
        """libxl__build_hvm for PVH + libxl__domain_firmware (the kernel and ramdisk) +
        libxl__build_dom with x86's finalise_hw_description (ACPI tables, e820)."""
        spec, domid = self.spec, self.domid
        ffi, lib = xen()
        xch = self.xc._p()
        self._mark("xc_dom_allocate")
        dom = lib.xc_dom_allocate(xch, spec.full_cmdline.encode(), ffi.NULL)
        if dom == ffi.NULL:
            self._xc_check(-1, "xc_dom_allocate")
        keep: list = []  # what libxenguest points into until xc_dom_release
        try:
            dom.container_type = lib.XC_DOM_HVM_CONTAINER
            mem_size = spec.memory << 20
            dom.target_pages = spec.memory << 8
            dom.claim_enabled = 0
            elf = None
            if self.kernel_cache:
                self._mark("kernel_image")
                elf = kernel_image(kernel)
            if elf is not None:
                self._mark("xc_dom_kernel_mem")
                blob = ffi.from_buffer("char[]", elf)
                keep.append(blob)
                self._xc_check(lib.xc_dom_kernel_mem(dom, blob, len(elf)), "xc_dom_kernel_mem")
            else:
                self._mark("xc_dom_kernel_file")
                self._xc_check(lib.xc_dom_kernel_file(dom, kernel.encode()),
                               "xc_dom_kernel_file")
            if ramdisk:
                self._mark("xc_dom_module_file")
                self._xc_check(lib.xc_dom_module_file(dom, ramdisk.encode(), ffi.NULL),
                               "xc_dom_module_file")
            # no device model: the MMIO hole starts at the lowest of the special pages,
            # the LAPIC and the ACPI tables (libxl__build_hvm)
            special = (lib.X86_HVM_END_SPECIAL_REGION - lib.X86_HVM_NR_SPECIAL_PAGES) << 12
            hole = min(special, LAPIC_BASE_ADDRESS, ACPI_INFO_PHYSICAL_ADDRESS)
            dom.mmio_size = (1 << 32) - hole
            mmio_start = hole
            lowmem_end, highmem_end = mem_size, 0
            if lowmem_end > mmio_start:
                highmem_end = (1 << 32) + (lowmem_end - mmio_start)
                lowmem_end = mmio_start
            dom.lowmem_end, dom.highmem_end, dom.mmio_start = lowmem_end, highmem_end, \
                mmio_start
            dom.vga_hole_size = 0
            dom.device_model = False
            dom.max_vcpus = spec.vcpus
            dom.console_evtchn = console_port
            dom.console_domid = console_domid
            dom.xenstore_evtchn = store_port
            dom.xenstore_domid = store_domid

            acpi_ents: list[tuple[int, int, int]] = []

            def acpi() -> int:
                """libxl__dom_load_acpi: the tables as libxenguest's ACPI modules, the
                RSDP below 1 MiB unless the kernel reads start_info's rsdp_paddr."""
                if not PVH_ACPI:
                    return 0
                base = ACPI_INFO_PHYSICAL_ADDRESS + 4096
                rsdp, tables = pvh_acpi_tables(spec.vcpus, base)
                pages = (len(tables) + 4095) >> 12
                linux = ffi.string(lib.xc_dom_guest_os(dom)) == b"linux"
                rsdp_at = RSDP_LEGACY_ADDRESS if linux and not lib.xc_dom_feature_get(
                    dom, lib.XENFEAT_linux_rsdp_unrestricted) else base + (pages << 12)
                for i, (data, addr) in enumerate(((rsdp, rsdp_at), (tables, base))):
                    buf = ffi.from_buffer("uint8_t[]", data)
                    keep.append(buf)
                    m = dom.acpi_modules[i]
                    m.data, m.length, m.guest_addr_out = buf, len(data), addr
                    acpi_ents.append((addr & ~0xFFF, len(data) + (addr & 0xFFF),
                                      lib.E820_ACPI))
                return 0

            def memmap() -> int:  # libxl_x86.c domain_construct_memmap for PVH
                ents = [(0, lowmem_end, lib.E820_RAM),
                        (special, lib.X86_HVM_NR_SPECIAL_PAGES << 12, lib.E820_RESERVED)]
                ents += acpi_ents
                if highmem_end:
                    ents.append((1 << 32, highmem_end - (1 << 32), lib.E820_RAM))
                e820 = ffi.new("struct e820entry[]", len(ents))
                keep.append(e820)
                for i, (addr, size, kind) in enumerate(ents):
                    e820[i].addr, e820[i].size, e820[i].type = addr, size, kind
                dom.e820, dom.e820_entries = e820, len(ents)
                return lib.xc_domain_set_memory_map(xch, domid, e820, len(ents))

            for step, call in (
                    ("xc_dom_boot_xen_init", lambda: lib.xc_dom_boot_xen_init(dom, xch, domid)),
                    ("xc_dom_parse_image", lambda: lib.xc_dom_parse_image(dom)),
                    ("xc_dom_mem_init", lambda: lib.xc_dom_mem_init(dom, spec.memory)),
                    ("xc_dom_boot_mem_init", lambda: lib.xc_dom_boot_mem_init(dom)),
                    ("acpi_tables", acpi),
                    ("xc_domain_set_memory_map", memmap),
                    ("xc_dom_build_image", lambda: lib.xc_dom_build_image(dom)),
                    ("xc_dom_boot_image", lambda: lib.xc_dom_boot_image(dom)),
                    ("xc_dom_gnttab_init", lambda: lib.xc_dom_gnttab_init(dom))):
                self._dom_step(step, call)
            return int(dom.xenstore_pfn), int(dom.console_pfn)
        finally:
            lib.xc_dom_release(dom)  # before ``keep`` goes, with this frame

    def _spawn_device_model(self, guest: "Guest", dm: str) -> "Guest":
        """libxl__spawn_local_dm: the xenstore keys qemu and hvmloader read, then qemu
        itself (the one process Xen's HVM design needs), then wait for xenstore's
        ``device-model/<domid>/state`` to say ``running``."""
        spec, domid, xs = self.spec, self.domid, self.xs
        assert domid is not None  # the domain exists by now
        self._mark("device_model_xenstore")
        xs.mkdir(dm_state_path(domid))
        os.makedirs(RUN_DIR, exist_ok=True)
        os.makedirs(LOG_DIR, exist_ok=True)
        for p in (qmp_path(domid), _serial_file(domid)):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        argv = device_model_argv(spec, domid, dm)
        env = dict(os.environ, XEN_DOMAIN_ID=str(domid),
                   XEN_QEMU_CONSOLE_LIMIT=str(XENCONSOLE_LIMIT))  # XSA-180, as libxl
        self._mark("device_model_spawn")
        log = os.path.join(LOG_DIR, f"qemu-dm-{spec.name}.log")
        with open(log, "wb") as logf, _interrupt.deferred_sigint():
            # Named exception to "no subprocess in library code": Xen's HVM design needs
            # the qemu-xen device model as a process of its own. Its own session keeps a
            # terminal's Ctrl-C from it, so its pid is recorded (for the rollback to kill
            # it) before a Ctrl-C can land here.
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                    stderr=subprocess.STDOUT, env=env, close_fds=True,
                                    start_new_session=True)
            _DM_PROCS[proc.pid] = (proc, domid)
            self.dm_pid = proc.pid
            _interrupt.point("guest.device_model_started")
        xs.write(f"/local/domain/{domid}/image/device-model-pid", str(proc.pid))  # as libxl
        xs.write(f"/libxl/{domid}/pyxen/dm-pid", str(proc.pid))    # what destroy trusts
        self._mark("device_model_wait")
        state_path = f"{dm_state_path(domid)}/state"
        end = time.monotonic() + spec.dm_timeout
        while True:
            state = xs.get(state_path)
            if state == b"running":
                break
            rc = proc.poll()
            if rc is not None:
                raise self._fail(f"{os.path.basename(dm)} exited with status {rc} before "
                                 f"it was running: {_tail(log)}")
            if time.monotonic() >= end:
                raise self._fail(f"{os.path.basename(dm)} not running after "
                                 f"{spec.dm_timeout:g}s (state {state!r}): {_tail(log)}")
            time.sleep(0.05)
        self._mark("device_model_qmp")
        serial = spec.serial
        if serial == "file":
            serial = f"file:{_serial_file(domid)}"
        elif serial == "pty":
            chardevs = qmp(domid, "query-chardev")
            ptys = [c["filename"] for c in chardevs or ()
                    if c.get("label") == "serial0" and c.get("filename", "").startswith("pty:")]
            serial = ptys[0] if ptys else serial
            if ptys:
                xs.write(f"/local/domain/{domid}/serial/0/tty", ptys[0][4:])
        port = vnc_port(domid) if spec.vnc else None
        if port is not None:
            xs.write(f"/local/domain/{domid}/console/vnc-port", str(port))
            xs.write(f"/local/domain/{domid}/console/vnc-listen", spec.vnclisten)
        if serial and serial != "none":
            xs.write(f"/libxl/{domid}/pyxen/serial", serial)
        return replace(guest, device_model_pid=proc.pid, vnc_port=port, serial=serial,
                       qmp_path=qmp_path(domid))


def _tail(path: str, n: int = 600) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - n))
            text = f.read().decode("utf-8", "replace").strip()
    except OSError:
        return f"(no log {path})"
    return f"{path}: {text}" if text else f"{path} is empty"


RO = "n0 r{d}"     # libxl's roperm: dom0 owns, the guest reads
RW = "n{d}"        # libxl's rwperm: the guest owns
NO = "n0"          # libxl's noperm: dom0 only


def _write_entries(t: _xenstore.WireTransaction, g: Guest) -> None:
    """The xenstore entries libxl (4.17) writes for a PV guest with only its primary
    console (libxl__domain_make, libxl__build_post, libxl__device_console_add): same
    paths, values and permissions as ``xl create`` of the same guest.

    xenstored gives a node created by dom0 its parent's permissions, so permissions are
    set only where they differ from the parent's (each xenstore request costs a round
    trip to xenstored, which dominates this step). All of them go as one pipelined batch
    in the transaction; removing a node that is not there is no error."""
    b = t.batch()
    d, spec = g.domid, g.spec
    dom, vm, lx = f"/local/domain/{d}", f"/vm/{spec.uuid}", f"/libxl/{d}"
    cdom = g.console_domid
    be = f"/local/domain/{cdom}/backend/console/{d}/0"

    def node(path: str, value: object = "", perms: str | None = None) -> None:
        b.write(path, str(value))
        if perms is not None:
            b.set_permissions(path, perms.format(d=d, c=cdom))

    rms = [b.rm(p) for p in (dom, vm, lx, f"/local/domain/{cdom}/backend/console/{d}")]
    node(dom, perms=RO)                    # everything below inherits n0 r<domid>
    node(vm, perms=RO)
    node(lx, perms=NO)
    v: object                              # node() takes values of any type
    for k, v in (("vm", vm), ("name", spec.name), ("domid", d),
                 ("control/platform-feature-multiprocessor-suspend", 1),
                 ("control/platform-feature-xs_reset_watches", 1),
                 # libxl__build_post
                 ("memory/static-max", spec.maxmem_mb * 1024),
                 ("memory/target", spec.memory * 1024),
                 ("memory/videoram", spec.video_mb * 1024),
                 ("store/port", g.store_port), ("store/ring-ref", g.store_mfn)):
        node(f"{dom}/{k}", v)
    for i in range(spec.vcpus):
        node(f"{dom}/cpu/{i}/availability", "online")
    for k in ("control/shutdown", "control/feature-poweroff", "control/feature-reboot",
              "control/feature-suspend", "control/sysrq", "device/suspend/event-channel",
              "data", "drivers", "feature", "attr", "error"):
        node(f"{dom}/{k}", perms=RW)       # the guest's own nodes
    if spec.pvh:  # libxl__domain_build (PVH): no image/ entries
        for k, v in (("name", spec.name), ("uuid", spec.uuid),
                     ("start_time", f"{time.time():.2f}")):
            node(f"{vm}/{k}", v)
    elif spec.hvm:  # libxl__domain_build (HVM) and libxl__spawn_local_dm
        for k, v in (("name", spec.name), ("uuid", spec.uuid), ("rtc/timeoffset", ""),
                     ("image/ostype", "hvm"), ("start_time", f"{time.time():.2f}")):
            node(f"{vm}/{k}", v)
        for k, v in (("platform/acpi", 1), ("platform/acpi_s3", 1), ("platform/acpi_s4", 1),
                     ("platform/acpi_laptop_slate", 0), ("platform/device-model", "qemu_xen"),
                     ("hvmloader/bios", spec.bios), ("hvmloader/allow-memory-relocate", 0)):
            node(f"{dom}/{k}", v)
    else:
        for k, v in (("name", spec.name), ("uuid", spec.uuid),
                     ("start_time", f"{time.time():.2f}"), ("image/ostype", "linux"),
                     ("image/kernel", spec.kernel), ("image/cmdline", spec.full_cmdline)):
            node(f"{vm}/{k}", v)
        if spec.ramdisk:
            node(f"{vm}/image/ramdisk", spec.ramdisk)
    for k in ("on_poweroff", "on_reboot", "on_crash"):
        node(f"{lx}/pyxen/{k}", Action(getattr(spec, k)).xl)
    # the primary console: frontend (xenconsoled reads it and writes tty), backend,
    # and libxl's record of the device (so xl destroy cleans it up as its own)
    c = f"{dom}/console"
    node(f"{c}/backend-id", cdom, perms="n{d} r{c}")
    for k, v in (("backend", be), ("limit", XENCONSOLE_LIMIT), ("type", "xenconsoled"),
                 ("output", "pty"), ("tty", ""), ("port", g.console_port),
                 ("ring-ref", g.console_mfn)):
        node(f"{c}/{k}", v)
    dev = (("frontend", c), ("frontend-id", d), ("online", 1), ("protocol", "vt100"),
           ("state", 1))
    node(be, perms="n{c} r{d}")
    for k, v in dev:
        node(f"{be}/{k}", v)
    for k, v in (("type", spec.type), ("dm-version", "qemu_xen"),
                 ("device/console/0/backend", be)) + tuple(
                     (f"device/console/0/{k}", v) for k, v in dev):
        node(f"{lx}/{k}", v)
    try:
        b.run()
    except _xenstore.XenStoreNotFound:
        pass
    for r in b.replies:                    # any error but a missing node's rm counts
        if r.error is not None and not (r in rms and
                                        isinstance(r.error, _xenstore.XenStoreNotFound)):
            raise r.error


def build(spec: "BuildSpec | DomainConfig", *, xc: _ctrl.Ctrl | None = None,
          xs: _xenstore.XenStore | None = None, check_memory: bool = True,
          kernel_cache: bool = True) -> Guest:
    """Build (and unless ``spec.paused`` start) a PV or HVM guest in-process; returns a
    Guest. An HVM guest also gets its qemu-xen device model (started here, the one
    process this library starts) before it is unpaused.

    ``xc``/``xs``: open :mod:`pyxen.ctrl` / :mod:`pyxen.xenstore` handles to use (opened
    and closed here when omitted). ``check_memory=False`` skips the comparison with the
    hypervisor's free memory (the hypervisor's own refusal is then mapped to
    InsufficientMemoryError). ``kernel_cache``: hand libxenguest the bzImage's ELF
    decompressed once per kernel file (:func:`kernel_image`) instead of the file, which
    it would decompress on every build. Raises BuildError (``.step``, ``.reason``) after
    destroying whatever was built.
    """
    if not isinstance(spec, BuildSpec):
        from . import config, toolstack  # the direct toolstack sits above this module
        if isinstance(spec, config.DomainConfig):
            return toolstack.build(spec, xc=xc, xs=xs).guest
        raise SpecTypeError("spec", "build() takes a BuildSpec or a DomainConfig, not "
                                    f"{type(spec).__name__}")
    spec = spec.validated()
    reap_device_models()
    with handles(xc, xs) as (xc, xs):
        return _Build(spec, xc, xs, check_memory, kernel_cache).run()


# -- console -----------------------------------------------------------------------------


def console_tty(domid: int, *, xs: _xenstore.XenStore | None = None, timeout: float = 10.0) -> str:
    """The pty xenconsoled serves ``domid``'s console on (``console/tty`` in xenstore),
    waiting up to ``timeout`` seconds for xenconsoled to publish it."""
    own = xs is None
    xs = xs or _xenstore.open()
    path = f"/local/domain/{domid}/console/tty"
    end = time.monotonic() + timeout
    try:
        while True:
            raw = xs.get(path)
            if raw:
                return check_console_pty(domid, raw, xs=xs)
            if time.monotonic() >= end:
                why = "no console node" if raw is None else "xenconsoled has not opened it"
                raise ConsoleTimeoutError(f"domain {domid}: no console tty after {timeout:g}s "
                                          f"({why})")
            time.sleep(0.05)
    finally:
        if own:
            xs.close()


_PTS = re.compile(r"/dev/pts/(0|[1-9][0-9]{0,6})")
_PTY_SLAVE_MAJORS = range(136, 144)     # UNIX98_PTY_SLAVE_MAJOR .. + 7


def _pty_master_holders(index: int, domid: int) -> list[int]:
    """The xenconsoled processes and ``domid``'s device models that hold the master side
    of ``/dev/pts/<index>`` (a /dev/ptmx fd whose fdinfo says ``tty-index: <index>``)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            with open(f"/proc/{pid}/comm", "rb") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm != b"xenconsoled" and not _is_device_model(pid, domid):
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") not in ("/dev/ptmx", "/dev/pts/ptmx"):
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    if any(line.split() == ["tty-index:", str(index)] for line in f):
                        out.append(pid)
                        break
            except OSError:
                continue
    return out


def check_console_pty(domid: int, tty: str | bytes, *,
                      xs: _xenstore.XenStore | None = None) -> str:
    """``tty`` (what xenstore says ``domid``'s console or serial pty is) if dom0 can open
    it as that: ``/dev/pts/N``, a pty slave character device whose master xenconsoled or
    the domain's device model holds, named by no other domain's ``console/tty``. Else
    ConsoleTtyError (the node is in the guest's directory: a guest could name dom0's own
    terminal or another guest's console)."""
    text = tty.decode("utf-8", "replace") if isinstance(tty, bytes) else tty
    shown = printable(text)
    m = _PTS.fullmatch(text)
    if not m:
        raise ConsoleTtyError(f"domain {domid}: console tty {shown!r} is not a /dev/pts/N pty")
    try:
        st = os.stat(text)
    except OSError as e:
        raise ConsoleTtyError(f"domain {domid}: console tty {text}: {e.strerror}") from None
    if not stat.S_ISCHR(st.st_mode) or os.major(st.st_rdev) not in _PTY_SLAVE_MAJORS:
        raise ConsoleTtyError(f"domain {domid}: console tty {text} is not a pty")
    if not _pty_master_holders(int(m.group(1)), domid):
        raise ConsoleTtyError(f"domain {domid}: console tty {text} is not served by "
                              "xenconsoled or the domain's device model")
    own = xs is None
    xs = xs or _xenstore.open()
    try:
        for d in xs.ls("/local/domain"):
            if d != str(domid) and xs.get(f"/local/domain/{d}/console/tty") == text.encode():
                raise ConsoleTtyError(f"domain {domid}: console tty {text} is domain {d}'s")
    finally:
        if own:
            xs.close()
    return text


def _open_pty(tty: str) -> int:
    fd = os.open(tty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        attrs = termios.tcgetattr(fd)
        # cfmakeraw, as xl console does
        attrs[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
                      | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON)
        attrs[1] &= ~termios.OPOST
        attrs[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG
                      | termios.IEXTEN)
        attrs[2] &= ~(termios.CSIZE | termios.PARENB)
        attrs[2] |= termios.CS8
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except termios.error:
        pass
    return fd


def open_console(domid: int, *, xs: _xenstore.XenStore | None = None, timeout: float = 10.0) -> int:
    """A raw, non-blocking fd on ``domid``'s console pty (read output, write input)."""
    tty = console_tty(domid, xs=xs, timeout=timeout)
    expected = os.stat(tty).st_rdev
    fd = _open_pty(tty)
    if os.fstat(fd).st_rdev != expected:    # replaced between the check and the open
        os.close(fd)
        raise ConsoleTtyError(f"domain {domid}: console tty {tty} changed while opening it")
    return fd


def console_output(domid: int, timeout: float = 30.0, until: str | bytes | None = None,
                   *, xs: _xenstore.XenStore | None = None) -> str:
    """Read ``domid``'s console for up to ``timeout`` seconds, or until ``until`` appears
    (then return at once). Returns what was read; TimeoutError only if the tty never
    appeared. Reading stops early if the console goes away (the domain died)."""
    end = time.monotonic() + timeout
    fd = open_console(domid, xs=xs, timeout=timeout)
    marker = until.encode() if isinstance(until, str) else until
    try:
        buf = _read_fd(fd, end, marker)  # stops at EIO: xenconsoled closed the master
    finally:
        os.close(fd)
    return buf.decode("utf-8", "replace")


# -- asyncio: the build's waits and the console as true awaits ----------------------------


async def _await_node(xs: _xenstore.XenStore, path: str, done: Callable[[bytes | None], bool],
                      timeout: float, also: Callable[[], object] | None = None) -> bytes | None:
    """Await (a xenstore Watch on ``path``, on the running loop) until ``done(value)``;
    ``also()`` is called after each look (it may raise). The last value, or
    GuestWaitTimeout."""
    import asyncio
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    with xs.watch(path) as w:           # before the first look: no change is missed
        while True:
            value = xs.get(path)
            if done(value):
                return value
            if also is not None:
                also()
            left = deadline - loop.time()
            if left <= 0:
                raise GuestWaitTimeout(f"{path}: still {value!r} after {timeout:g}s")
            # a watch event, or a second later at most (also() may look at a process)
            await w.aread(min(left, 1.0) if also is not None else left)
            while w.check() is not None:
                pass


async def await_device_model(domid: int, *, timeout: float = 60.0, pid: int | None = None,
                             xs: _xenstore.XenStore | None = None) -> None:
    """Await an HVM guest's device model: xenstore's ``device-model/<domid>/state``
    says ``running`` (what the build waits for), awaited on a watch. With ``pid``, a
    device model that exits first fails it at once. GuestWaitTimeout after ``timeout``."""
    own = xs is None
    xs = xs or _xenstore.open()

    def alive() -> None:
        if pid is not None and _gone(pid):
            raise GuestWaitTimeout(f"domain {domid}: device model {pid} exited before it "
                                   "was running", domid=domid)
    try:
        await _await_node(xs, f"{dm_state_path(domid)}/state", lambda v: v == b"running",
                          timeout, alive)
    except GuestWaitTimeout as e:
        if e.domid is None:
            raise GuestWaitTimeout(f"domain {domid}: device model not running ({e})",
                                   domid=domid) from None
        raise
    finally:
        if own:
            xs.close()


def _set_done(fut: Any) -> None:
    if not fut.done():
        fut.set_result(None)


class AsyncConsole:
    """A domain's console (the pty xenconsoled serves, raw and non-blocking as
    :func:`open_console` gives it) read on the running asyncio loop with ``add_reader``.

    ``async with await AsyncConsole.open(domid) as con: await con.read_until(b"OK")``.
    ``close()`` from any thread, any number of times; a pending read then raises
    HandleClosedError. Reads return b"" once the console went away (the domain died)."""

    def __init__(self, domid: int, fd: int) -> None:
        self.domid, self._fd = domid, fd
        self.buffer = bytearray()       # everything read and not yet returned
        self.eof = False
        self._lock = threading.Lock()
        self._loop: Any = None
        self._fut: Any = None

    @classmethod
    async def open(cls, domid: int, *, xs: _xenstore.XenStore | None = None,
                   timeout: float = 10.0) -> "AsyncConsole":
        """Await the console tty (xenstore ``console/tty``, on a watch), then open it."""
        own = xs is None
        xs = xs or _xenstore.open()
        try:
            try:
                await _await_node(xs, f"/local/domain/{domid}/console/tty", bool, timeout)
            except GuestWaitTimeout:
                raise ConsoleTimeoutError(f"domain {domid}: no console tty after "
                                          f"{timeout:g}s") from None
            return cls(domid, open_console(domid, xs=xs, timeout=0))
        finally:
            if own:
                xs.close()

    @property
    def closed(self) -> bool:
        """True once close() ran."""
        return self._fd < 0

    def fileno(self) -> int:
        """The pty's descriptor (HandleClosedError once closed)."""
        if self._fd < 0:
            raise HandleClosedError(self)
        return self._fd

    def close(self) -> None:
        """Close the pty; idempotent, from any thread (a pending read raises
        HandleClosedError)."""
        with self._lock:
            fd, self._fd = self._fd, -1
            loop, fut = self._loop, self._fut
        if fd < 0:
            return
        if loop is not None and not loop.is_closed():
            def here() -> None:
                loop.remove_reader(fd)
                os.close(fd)
                if not fut.done():
                    fut.set_result(None)
            try:
                import asyncio
                if asyncio.get_running_loop() is loop:
                    here()
                    return
            except RuntimeError:
                pass
            try:
                loop.call_soon_threadsafe(here)
                return
            except RuntimeError:
                pass
        os.close(fd)

    async def _fill(self, timeout: float | None) -> None:
        import asyncio
        fd = self.fileno()
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            with self._lock:
                if self._fd < 0:
                    raise HandleClosedError(self) from None
                self._loop, self._fut = loop, fut
                loop.add_reader(fd, _set_done, fut)
            try:
                await asyncio.wait([fut], timeout=timeout)
            finally:
                with self._lock:
                    self._loop = self._fut = None
                    if self._fd >= 0:
                        loop.remove_reader(fd)
            if self._fd < 0:
                raise HandleClosedError(self) from None
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno != _errno.EIO:
                    raise
                chunk = b""             # EIO: xenconsoled closed the master
        except OSError as e:
            if e.errno != _errno.EIO:
                raise
            chunk = b""
        if not chunk:
            self.eof = True
        self.buffer += chunk

    async def read(self, n: int = 65536) -> bytes:
        """Up to ``n`` bytes as soon as some are there; b"" once the console went away."""
        while not self.buffer and not self.eof:
            await self._fill(None)
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    async def read_until(self, marker: str | bytes, timeout: float | None = None) -> bytes:
        """Everything up to and including ``marker``. GuestWaitTimeout after ``timeout``
        seconds, or if the console goes away first (what was read stays in ``buffer``)."""
        import asyncio
        m = marker.encode() if isinstance(marker, str) else marker
        loop = asyncio.get_running_loop()
        end = None if timeout is None else loop.time() + timeout
        while True:
            i = self.buffer.find(m)
            if i >= 0:
                out = bytes(self.buffer[:i + len(m)])
                del self.buffer[:i + len(m)]
                return out
            left = None if end is None else end - loop.time()
            if self.eof or (left is not None and left <= 0):
                why = "the console went away" if self.eof else f"{timeout:g}s passed"
                raise GuestWaitTimeout(f"domain {self.domid}: no {m!r} on the console "
                                       f"({why})", domid=self.domid)
            await self._fill(left)

    def write(self, data: bytes) -> int:
        """Write input to the console (non-blocking: how many bytes went)."""
        try:
            return os.write(self.fileno(), data)
        except BlockingIOError:
            return 0

    async def __aenter__(self) -> "AsyncConsole":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


async def await_console_marker(domid: int, marker: str | bytes, *, timeout: float = 60.0,
                               xs: _xenstore.XenStore | None = None) -> str:
    """Await ``marker`` on ``domid``'s console (:class:`AsyncConsole`); the console text
    up to and including it. GuestWaitTimeout if it does not appear in ``timeout`` s."""
    import asyncio
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    con = await AsyncConsole.open(domid, xs=xs, timeout=timeout)
    try:
        out = await con.read_until(marker, max(0.0, end - loop.time()))
    finally:
        con.close()
    return out.decode("utf-8", "replace")


async def abuild(spec: BuildSpec, *, xc: _ctrl.Ctrl | None = None,
                 xs: _xenstore.XenStore | None = None, check_memory: bool = True,
                 kernel_cache: bool = True) -> Guest:
    """:func:`build` for asyncio: the build (libxenguest's CPU-bound work and, for an HVM
    guest, its device-model start) runs in the loop's default executor, so the loop keeps
    running. Cancelled, the build is let finish and the guest destroyed (domain,
    xenstore entries, device model): nothing is left behind."""
    import asyncio
    import functools
    loop = asyncio.get_running_loop()
    job = loop.run_in_executor(None, functools.partial(
        build, spec, xc=xc, xs=xs, check_memory=check_memory, kernel_cache=kernel_cache))
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        while not job.done():           # a second cancellation waits as well
            try:
                await asyncio.wait([job])
            except asyncio.CancelledError:
                continue
        if not job.cancelled() and job.exception() is None:
            g = job.result()
            await loop.run_in_executor(None, functools.partial(destroy, g.domid, xc=xc,
                                                               xs=xs, uuid=g.uuid))
        raise

# -- lifecycle ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LifecycleEvent:
    """The supervisor acted on a guest: ``reason`` (poweroff/reboot/crash/...) led to
    ``action``; ``new_domid`` is set when it restarted the guest."""

    domid: int
    name: str
    reason: str
    action: Action
    new_domid: int | None = None
    error: str | None = None


_REASON_FIELD = {_ctrl.ShutdownReason.POWEROFF: "on_poweroff",
                 _ctrl.ShutdownReason.REBOOT: "on_reboot",
                 _ctrl.ShutdownReason.CRASH: "on_crash",
                 _ctrl.ShutdownReason.WATCHDOG: "on_crash"}


class Supervisor:
    """Watches ``@releaseDomain`` and applies each supervised guest's on_poweroff /
    on_reboot / on_crash: destroy, restart (rebuild from the same spec; at most
    ``max_restarts`` times per guest), preserve (leave it), rename-restart (rename the
    old one ``<name>--incoming``-style and build a fresh one).

    ``with Supervisor() as sup: sup.add(guest); sup.poll(timeout)``.
    """

    def __init__(self, *, xc: _ctrl.Ctrl | None = None, xs: _xenstore.XenStore | None = None,
                 max_restarts: int = 1,
                 destroy: Callable[[int, str | None, _ctrl.Ctrl, _xenstore.XenStore], object]
                 | None = None,
                 rebuild: Callable[[Guest, Action, _ctrl.Ctrl, _xenstore.XenStore], Guest]
                 | None = None) -> None:
        """``destroy(domid, uuid, xc, xs)`` and ``rebuild(old_guest, action, xc, xs)``
        replace the plain guest's destroy and rebuild (the direct toolstack's hooks, for
        guests with devices)."""
        self._destroy = destroy
        self._rebuild = rebuild
        self._own_xc, self._own_xs = xc is None, xs is None
        self.xc = xc or _ctrl.open()
        self.xs = xs or _xenstore.open()
        self.max_restarts = max_restarts
        self.guests: dict[int, Guest] = {}
        self.restarts: dict[str, int] = {}
        self.events: list[LifecycleEvent] = []
        # its own stream: other readers of the handle neither steal nor lose events
        self._watch = self.xs.watch("@releaseDomain")

    def add(self, guest: Guest) -> None:
        """Supervise ``guest``: apply its on_* actions when it shuts down."""
        self.guests[guest.domid] = guest

    def close(self) -> None:
        """Stop supervising (unwatch); idempotent."""
        try:
            self._watch.close()
        except (PyxenError, ValueError):
            pass
        if self._own_xs:
            self.xs.close()
        if self._own_xc:
            self.xc.close()

    def __enter__(self) -> "Supervisor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def poll(self, timeout: float = 0.0) -> list[LifecycleEvent]:
        """Wait up to ``timeout`` s for @releaseDomain; act on every supervised guest that
        has shut down or vanished; return the events of this call."""
        ev = self._watch.read(timeout)
        while ev is not None:  # drain
            ev = self._watch.check()
        return self.check()

    def run(self, until: Callable[[list[LifecycleEvent]], object] | None = None,
            timeout: float = 60.0) -> list[LifecycleEvent]:
        """Poll until ``until(events)`` is true or ``timeout`` passes (or nothing is left
        to supervise); returns the events seen during the call."""
        end = time.monotonic() + timeout
        seen: list[LifecycleEvent] = []
        while self.guests:
            left = end - time.monotonic()
            if left <= 0:
                break
            seen += self.poll(min(left, 1.0))
            if until is not None and until(seen):
                break
        return seen

    def check(self) -> list[LifecycleEvent]:
        """Look at every supervised guest now; the lifecycle events that resulted."""
        out = []
        for domid, g in list(self.guests.items()):
            try:
                info = self.xc.domain(domid)
            except _ctrl.NoSuchDomainError:
                del self.guests[domid]
                if self._destroy is not None:
                    self._destroy(domid, g.uuid, self.xc, self.xs)
                else:
                    remove_xenstore_entries(self.xs, domid, g.uuid)
                out.append(LifecycleEvent(domid, g.name, "gone", Action.DESTROY))
                continue
            if info.dying or not info.shutdown or info.shutdown_reason is None:
                continue
            try:
                reason = _ctrl.ShutdownReason(info.shutdown_reason)
            except ValueError:
                continue
            if reason == _ctrl.ShutdownReason.SUSPEND:
                continue
            action = Action(getattr(g.spec, _REASON_FIELD.get(reason, "on_crash")))
            out.append(self._apply(g, reason.name.lower(), action))
        self.events += out
        return out

    def _apply(self, g: Guest, reason: str, action: Action) -> LifecycleEvent:
        del self.guests[g.domid]
        if action == Action.PRESERVE:
            return LifecycleEvent(g.domid, g.name, reason, action)
        if action == Action.RENAME_RESTART:
            self.xs.write(f"/local/domain/{g.domid}/name", f"{g.name}-{g.domid}")
            self.xs.write(f"/vm/{g.uuid}/name", f"{g.name}-{g.domid}")
        elif self._destroy is not None:
            self._destroy(g.domid, g.uuid, self.xc, self.xs)
        else:
            destroy(g.domid, xc=self.xc, xs=self.xs, uuid=g.uuid)
            wait_gone(self.xc, g.domid, 10.0)
        if action == Action.DESTROY:
            return LifecycleEvent(g.domid, g.name, reason, action)
        n = self.restarts.get(g.name, 0)
        if n >= self.max_restarts:
            if action == Action.RESTART:
                pass
            return LifecycleEvent(g.domid, g.name, reason, action,
                                  error=f"restart limit {self.max_restarts} reached")
        self.restarts[g.name] = n + 1
        spec = g.spec if action == Action.RESTART else replace(g.spec, uuid=None)
        try:
            if self._rebuild is not None:
                new = self._rebuild(g, action, self.xc, self.xs)
            else:
                new = build(replace(spec, paused=False), xc=self.xc, xs=self.xs)
        except BuildError as e:
            return LifecycleEvent(g.domid, g.name, reason, action, error=str(e))
        self.guests[new.domid] = new
        return LifecycleEvent(g.domid, g.name, reason, action, new_domid=new.domid)
