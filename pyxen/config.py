"""pyxen.config: xl domain config files (xl.cfg(5)), parsed by libxlutil's own parser.

``parse_file(path)`` / ``parse_string(text)`` run ``xlu_cfg_readfile``/``xlu_cfg_readdata``,
read every setting through the public ``xlu_cfg_get_*`` calls, parse disks with
``xlu_disk_parse`` and vif rates with ``xlu_vif_parse_rate``, and give a typed
:class:`DomainConfig`. libxlutil's report stream (a ``FILE*``) is captured in memory and
turned into :class:`ConfigError` (file, line, key).

Legacy xm keys are mapped the way ``xl`` maps them (``builder='hvm'`` → ``type='hvm'``,
``root=`` + ``extra=`` → ``cmdline``) or ignored with a :class:`ConfigWarning` (and listed
in ``DomainConfig.ignored``): nothing is dropped silently. Keys that xl does not know are a
``ConfigError`` (``strict=False`` turns them into warnings).

``DomainConfig.to_libxl_json()`` / ``DomainConfig.from_libxl_json()`` convert to and from the
JSON form of libxl's ``libxl_domain_config`` (pure Python, field by field);
``pyxen.light.Context`` validates that JSON with libxl itself.
"""

from __future__ import annotations

import dataclasses
import enum
import errno as _errno
import os
import re
import stat as _stat
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

from ._native import xen
from .types import LifecycleAction
from .errors import (ConfigError, ConfigTypeError, OutOfMemoryError,  # noqa: F401
                     PyxenError, XenFeatureUnavailable)

__all__ = ["ConfigError", "ConfigTypeError", "ConfigWarning", "DomainType",
           "ShutdownAction", "DiskSpec", "NicSpec", "DomainConfig", "parse_file",
           "parse_string", "parse_disk", "parse_nic", "random_mac"]


# ConfigError and ConfigTypeError live in pyxen.errors (imported above)


# ---------------------------------------------------------------------------------------
# Limits, checked in Python before anything reaches libxlutil or libxl
# ---------------------------------------------------------------------------------------

DISK_SPEC_MAX = 4096
"""Bytes in one disk specification. libxlutil's flex disk lexer (libxlu_disk_l.l: a rule
with variable trailing context) records one DFA state per scanned byte in a fixed buffer of
YY_BUF_SIZE + 2 (16386) states without a bound check, so a spec of about 16 KiB overflows
the heap. 4 KiB is also all xenstore takes in one message (XENSTORE_PAYLOAD_MAX), which the
backend's ``params`` (the target path) has to fit in."""
VIF_SPEC_MAX = 4096
"""Bytes in one vif specification (the same bound as a disk spec)."""
CONFIG_MAX = 1 << 20
"""Bytes of config text, from a file or a string (xl configs are a few KiB)."""
SETTINGS_MAX = 4096
"""Settings (``key = value`` and ``key += value``) in one config: libxlutil keeps them in a
list it walks for every lookup, so time grows with their square."""
APPEND_COPY_MAX = 16 << 20
"""Bytes that ``+=`` may copy: libxlutil keeps each joined string or list array."""
LIST_DEPTH_MAX = 64
"""Nesting of ``[...]`` lists (xl.cfg's own keys nest two deep at most)."""
MEMORY_MAX_MIB = (2**63 - 1) >> 10
"""memory=/maxmem= in MiB: its size in kB (libxl's MemKB, which xl computes as a C long
``l * 1024``) must fit in 63 bits."""
HVM_MAX_VCPUS = 128
"""Xen's limit for HVM and PVH guests (public/hvm/hvm_info_table.h)."""
PV_MAX_VCPUS = 8192
"""Xen's limit for x86 PV guests (MAX_VIRT_CPUS, arch/x86/include/asm/config.h)."""
VNCDISPLAY_MAX = 65535 - 5900
"""vncdisplay=N listens on TCP port 5900 + N."""
VIF_DEVID_MAX = 2**31 - 1
"""A vif devid is a libxl_devid (a C int) and a xenstore directory name; -1 means "pick
one" to libxl, so pyxen takes 0..2^31-1 (or no devid= at all)."""
MTU_MIN, MTU_MAX = 68, 65535
"""A vif mtu= (0, or no mtu=, is libxl's default of 1500)."""


def _short(text: str | bytes, n: int = 60) -> str:
    """repr() of a possibly huge input, cut for an error message."""
    r = repr(text)
    return r if len(r) <= n else r[:n] + f"...' ({len(text)} characters)"


def _spec_text(spec: object, what: str, limit: int, *, file: str | None = None,
               line: int | None = None, key: str | None = None) -> str:
    """A disk/vif spec as str: str or bytes (UTF-8, undecodable bytes kept as surrogate
    escapes, as config values are), no NUL (C would cut the spec there), at most
    ``limit`` bytes."""
    if isinstance(spec, (bytes, bytearray, memoryview)):
        spec = bytes(spec).decode("utf-8", "surrogateescape")
    elif not isinstance(spec, str):
        raise ConfigTypeError(f"a {what} specification must be str or bytes, not "
                              f"{type(spec).__name__}", file=file, line=line, key=key)
    if "\0" in spec:
        raise ConfigError(f"NUL character in {what} specification {_short(spec)} (C would "
                          "cut the specification there)", file=file, line=line, key=key)
    try:
        size = len(spec.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError as e:
        raise ConfigError(f"cannot encode character {spec[e.start]!r} in {what} "
                          f"specification {_short(spec)}", file=file, line=line,
                          key=key) from None
    if size > limit:
        raise ConfigError(f"{what} specification of {size} bytes: at most {limit} are "
                          f"accepted ({_short(spec)})", file=file, line=line, key=key)
    return spec


class ConfigWarning(UserWarning):
    """A key was accepted but mapped or ignored (legacy xm keys, uninterpreted keys)."""


class DomainType(str, enum.Enum):
    PV = "pv"
    PVH = "pvh"
    HVM = "hvm"


# what to do on poweroff/reboot/crash: pyxen.types.LifecycleAction, shared with guest
ShutdownAction = LifecycleAction


def random_mac() -> str:
    """A random MAC in Xen's OUI 00:16:3e (as libxl picks one)."""
    r = os.urandom(3)
    return "00:16:3e:%02x:%02x:%02x" % (r[0] & 0x7F, r[1], r[2])


@dataclass(frozen=True)
class DiskSpec:
    """One ``disk=[...]`` entry, as ``xlu_disk_parse`` fills a ``libxl_device_disk``."""

    vdev: str
    pdev_path: str | None = None
    backend: str = "unknown"      # libxl_disk_backend: unknown, phy, tap, qdisk, standalone
    format: str = "raw"           # libxl_disk_format: unknown, qcow, qcow2, vhd, raw, empty, qed
    script: str | None = None
    readwrite: bool = True
    is_cdrom: bool = False
    removable: bool = False
    direct_io_safe: bool = False
    discard_enable: bool | None = None
    backend_domname: str | None = None
    spec: str | None = field(default=None, compare=False)

    def to_libxl_json(self) -> dict:
        """This disk as libxl's ``libxl_device_disk`` JSON."""
        d: dict = {"vdev": self.vdev}
        if self.pdev_path is not None:
            d["pdev_path"] = self.pdev_path
        if self.backend != "unknown":
            d["backend"] = self.backend
        if self.format != "unknown":
            d["format"] = self.format
        for k in ("script", "backend_domname"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        d["readwrite"] = int(self.readwrite)
        if self.is_cdrom:
            d["is_cdrom"] = 1
        if self.removable:
            d["removable"] = 1
        if self.direct_io_safe:
            d["direct_io_safe"] = True
        if self.discard_enable is not None:
            d["discard_enable"] = _defbool_json(self.discard_enable)
        return d

    @classmethod
    def from_libxl_json(cls, d: dict) -> "DiskSpec":
        """A DiskSpec from libxl's ``libxl_device_disk`` JSON."""
        return cls(vdev=d.get("vdev") or "", pdev_path=d.get("pdev_path"),
                   backend=d.get("backend", "unknown"), format=d.get("format", "unknown"),
                   script=d.get("script"), readwrite=bool(d.get("readwrite", 0)),
                   is_cdrom=bool(d.get("is_cdrom", 0)), removable=bool(d.get("removable", 0)),
                   direct_io_safe=bool(d.get("direct_io_safe", False)),
                   discard_enable=_defbool_parse(d.get("discard_enable")),
                   backend_domname=d.get("backend_domname"))


@dataclass(frozen=True)
class NicSpec:
    """One ``vif=[...]`` entry (xl-network-configuration(5)); ``mac`` is always set."""

    mac: str
    bridge: str | None = None
    ip: str | None = None
    script: str | None = None
    vifname: str | None = None
    model: str | None = None
    rate: str | None = None
    type: str | None = None          # None (libxl default), "vif" or "vif_ioemu"
    backend: str | None = None
    mtu: int | None = None
    gatewaydev: str | None = None
    devid: int | None = None
    rate_bytes_per_interval: int = 0
    rate_interval_usecs: int = 0
    spec: str | None = field(default=None, compare=False)

    def to_libxl_json(self) -> dict:
        """This NIC as libxl's ``libxl_device_nic`` JSON."""
        d: dict = {"mac": self.mac}
        for k, j in (("bridge", "bridge"), ("ip", "ip"), ("script", "script"),
                     ("vifname", "ifname"), ("model", "model"), ("backend", "backend_domname"),
                     ("gatewaydev", "gatewaydev"), ("type", "nictype"), ("mtu", "mtu"),
                     ("devid", "devid")):
            v = getattr(self, k)
            if v is not None:
                d[j] = v
        if self.rate_bytes_per_interval:
            d["rate_bytes_per_interval"] = self.rate_bytes_per_interval
            d["rate_interval_usecs"] = self.rate_interval_usecs
        return d

    @classmethod
    def from_libxl_json(cls, d: dict, rate: str | None = None) -> "NicSpec":
        """A NicSpec from libxl's ``libxl_device_nic`` JSON."""
        return cls(mac=d.get("mac", ""), bridge=d.get("bridge"), ip=d.get("ip"),
                   script=d.get("script"), vifname=d.get("ifname"), model=d.get("model"),
                   rate=rate, type=d.get("nictype"), backend=d.get("backend_domname"),
                   mtu=d.get("mtu") or None, gatewaydev=d.get("gatewaydev"),
                   devid=d.get("devid"),
                   rate_bytes_per_interval=d.get("rate_bytes_per_interval", 0),
                   rate_interval_usecs=d.get("rate_interval_usecs", 0))


@dataclass(frozen=True)
class Ignored:
    key: str
    line: int | None
    reason: str


@dataclass(frozen=True)
class DomainConfig:
    """The interpreted part of an xl domain config. Memory in MiB, like xl.cfg."""

    name: str
    type: DomainType = DomainType.PV
    uuid: str | None = None
    memory: int | None = None
    maxmem: int | None = None
    vcpus: int | None = None
    maxvcpus: int | None = None
    kernel: str | None = None
    ramdisk: str | None = None
    cmdline: str | None = None
    bootloader: str | None = None
    # xl's defaults (libxl omits "destroy" from its JSON: it is the zero value)
    on_poweroff: ShutdownAction = ShutdownAction.DESTROY
    on_reboot: ShutdownAction = ShutdownAction.RESTART
    on_crash: ShutdownAction = ShutdownAction.DESTROY
    on_watchdog: ShutdownAction = ShutdownAction.DESTROY
    disks: tuple[DiskSpec, ...] = ()
    nics: tuple[NicSpec, ...] = ()
    # HVM
    boot: str | None = None
    vnc: bool | None = None
    vnclisten: str | None = None
    vncdisplay: int | None = None
    vncunused: bool | None = None
    vncpasswd: str | None = None
    keymap: str | None = None
    sdl: bool | None = None
    stdvga: bool | None = None
    serial: tuple[str, ...] = ()
    # device model (xl.cfg device_model_version / device_model_override)
    device_model_version: str | None = None     # "qemu-xen" or "qemu-xen-traditional"
    device_model_override: str | None = None
    # bookkeeping, not part of the domain
    ignored: tuple[Ignored, ...] = field(default=(), compare=False, repr=False)
    uninterpreted: dict = field(default_factory=dict, compare=False, repr=False)
    source: str | None = field(default=None, compare=False, repr=False)

    def replace(self, **changes: Any) -> "DomainConfig":
        """A copy with the given fields changed (dataclasses.replace)."""
        return dataclasses.replace(self, **changes)

    # -- libxl JSON ------------------------------------------------------------------
    def to_libxl_json(self) -> dict:
        """The JSON object of a ``libxl_domain_config`` (as ``libxl_domain_config_to_json``
        prints it; ``libxl_domain_config_from_json`` reads it)."""
        c_info: dict = {"type": self.type.value, "name": self.name}
        if self.uuid:
            c_info["uuid"] = self.uuid
        b_info: dict = {}
        if self.vcpus is not None:
            b_info["max_vcpus"] = self.maxvcpus or self.vcpus
            b_info["avail_vcpus"] = list(range(self.vcpus))
        elif self.maxvcpus is not None:
            b_info["max_vcpus"] = self.maxvcpus
        if self.memory is not None:
            b_info["target_memkb"] = self.memory * 1024
            b_info["max_memkb"] = (self.maxmem or self.memory) * 1024
        elif self.maxmem is not None:
            b_info["max_memkb"] = self.maxmem * 1024
        for k in ("kernel", "ramdisk", "cmdline"):
            if getattr(self, k) is not None:
                b_info[k] = getattr(self, k)
        if self.device_model_version is not None:
            b_info["device_model_version"] = self.device_model_version.replace("-", "_")
        if self.device_model_override is not None:
            b_info["device_model"] = self.device_model_override
        u: dict = {}
        if self.type == DomainType.HVM:
            if self.boot is not None:
                u["boot"] = self.boot
            vnc: dict = {}
            if self.vnc is not None:
                vnc["enable"] = _defbool_json(self.vnc)
            if self.vnclisten is not None:
                vnc["listen"] = self.vnclisten
            if self.vncpasswd is not None:
                vnc["passwd"] = self.vncpasswd
            if self.vncdisplay is not None:
                vnc["display"] = self.vncdisplay
            if self.vncunused is not None:
                vnc["findunused"] = _defbool_json(self.vncunused)
            if vnc:
                u["vnc"] = vnc
            if self.keymap is not None:
                u["keymap"] = self.keymap
            if self.sdl is not None:
                u["sdl"] = {"enable": _defbool_json(self.sdl)}
            if self.stdvga is not None:
                u["stdvga"] = _defbool_json(self.stdvga)
            if len(self.serial) == 1:
                u["serial"] = self.serial[0]
            elif self.serial:
                u["serial_list"] = list(self.serial)
        elif self.bootloader is not None:
            u["bootloader"] = self.bootloader
        b_info[f"type.{self.type.value}"] = u
        d: dict = {"c_info": c_info, "b_info": b_info}
        if self.disks:
            d["disks"] = [x.to_libxl_json() for x in self.disks]
        if self.nics:
            d["nics"] = [x.to_libxl_json() for x in self.nics]
        for k in ("on_poweroff", "on_reboot", "on_crash", "on_watchdog"):
            d[k] = getattr(self, k).value
        return d

    @classmethod
    def from_libxl_json(cls, d: dict, *, like: "DomainConfig | None" = None) -> "DomainConfig":
        """A DomainConfig from a ``libxl_domain_config`` JSON object. Values libxl filled
        in as defaults are kept; ``like`` (the config it came from, if any) supplies the
        vif ``rate`` strings, which libxl stores only as numbers."""
        c = d.get("c_info", {})
        b = d.get("b_info", {})
        dtype = DomainType(c.get("type", "pv"))
        u = b.get(f"type.{dtype.value}") or {}
        avail = b.get("avail_vcpus")
        vcpus = len(avail) if avail else None
        max_vcpus = b.get("max_vcpus") or None
        target = b.get("target_memkb")
        maxkb = b.get("max_memkb")
        memory = target // 1024 if target not in (None, -1) else None
        maxmem = maxkb // 1024 if maxkb not in (None, -1) else None
        rates = [n.rate for n in like.nics] if like else []
        nics = tuple(NicSpec.from_libxl_json(n, rates[i] if i < len(rates) else None)
                     for i, n in enumerate(d.get("nics") or []))
        vnc = u.get("vnc") or {}
        sdl = u.get("sdl") or {}
        serial = u.get("serial_list") or ([u["serial"]] if u.get("serial") else [])
        act: dict[str, Any] = {k: ShutdownAction(d.get(k) or "destroy")
               for k in ("on_poweroff", "on_reboot", "on_crash", "on_watchdog")}
        uuid = c.get("uuid")
        if uuid == "00000000-0000-0000-0000-000000000000":
            uuid = None
        return cls(
            name=c.get("name") or "", type=dtype, uuid=uuid,
            memory=memory, maxmem=None if maxmem == memory else maxmem,
            vcpus=vcpus, maxvcpus=None if max_vcpus in (None, vcpus) else max_vcpus,
            kernel=b.get("kernel"), ramdisk=b.get("ramdisk"), cmdline=b.get("cmdline"),
            bootloader=u.get("bootloader") if dtype != DomainType.HVM else None,
            disks=tuple(DiskSpec.from_libxl_json(x) for x in d.get("disks") or []),
            nics=nics,
            boot=u.get("boot"), vnc=_defbool_parse(vnc.get("enable")),
            vnclisten=vnc.get("listen"), vncdisplay=vnc.get("display"),
            vncunused=_defbool_parse(vnc.get("findunused")), vncpasswd=vnc.get("passwd"),
            keymap=u.get("keymap"), sdl=_defbool_parse(sdl.get("enable")),
            stdvga=_defbool_parse(u.get("stdvga")), serial=tuple(serial),
            device_model_version=(b.get("device_model_version") or "").replace("_", "-")
            or None,
            device_model_override=b.get("device_model"),
            **act)


def _defbool_json(v: bool) -> str:
    return "True" if v else "False"


def _defbool_parse(v: object) -> bool | None:
    if v in (None, "<default>"):
        return None
    if isinstance(v, bool):
        return v
    return str(v).lower() == "true"


# ---------------------------------------------------------------------------------------
# xl.cfg keys
# ---------------------------------------------------------------------------------------

# Keys xl.cfg(5) (Xen 4.17) defines that pyxen.config does not interpret (yet): kept in
# DomainConfig.uninterpreted with a ConfigWarning.
XL_KEYS_UNINTERPRETED = frozenset("""
pool cpus cpus_soft cpu_weight cap seclabel init_seclabel max_grant_frames
max_maptrack_frames max_grant_version nomigrate driver_domain device_tree passthrough iomem
ioports irqs pci pci_permissive pci_msitranslate pci_seize pci_power_mgmt rdm
rdm_mem_boundary usbctrl usbdev vfb channel vtpm p9 pvcalls vdispl vsnd vkb dtdev
gic_version vuart tee e820_host pvshim pvshim_path pvshim_cmdline pvshim_extra
bootloader_args bootloader_restrict bootloader_user xen_platform_pci viridian hap oos
shadow_memory hpet vpt_align timer_mode nestedhvm altp2m altp2mhvm smbios_firmware
acpi_firmware acpi_s3 acpi_s4 acpi_laptop_slate tsc_mode localtime rtc_timeoffset vga
videoram spice spicehost spiceport spicetls_port spicedisable_ticketing spicepasswd
spiceagent_mouse spicevdagent spice_clipboard_sharing spiceusbredirection
spice_image_compression spice_streaming_video opengl display xauthority usb usbdevice
usbversion soundhw vendor_device mmio_hole gfx_passthru
device_model_stubdomain_override device_model_stubdomain_seclabel
device_model_args device_model_args_pv device_model_args_hvm device_model_user
stubdomain_kernel stubdomain_ramdisk stubdomain_memory cpuid dm_restrict claim_mode
ms_vm_genid max_event_channels vcpu_hard_affinity vcpu_soft_affinity on_soft_reset vnuma
bios bios_path_override firmware firmware_override acpi apic pae nographic nx vpmu
vmtrace_buf_kb suppress_vmdesc mca_caps msr_relaxed sve virtio event_channels
vkb_device xendispl vif2 ioemu
""".split())

# xm-only keys that xl does not read at all: accepted, ignored with a warning.
XM_KEYS_IGNORED = {
    "dhcp": "xm's dhcp (kernel IP autoconfiguration) is not an xl option; put ip= in "
            "extra= if the guest needs it",
    "vncviewer": "xm's vncviewer is not an xl option (use `xl create -V` / a VNC client)",
    "vncconsole": "xm's vncconsole is not an xl option (use `xl vncviewer`)",
    "device_model": "ignoring device_model directive (xl does too); use "
                    "device_model_override for a non-default device model",
    "netmask": "xm's netmask is not an xl option",
    "gateway": "xm's gateway is not an xl option",
    "hostname": "xm's hostname is not an xl option",
    "interface": "xm's interface is not an xl option",
    "nfs_server": "xm's nfs_server is not an xl option",
    "nfs_root": "xm's nfs_root is not an xl option",
    "cpu": "xm's cpu is not an xl option (use cpus=)",
    "shadow_memory_mb": "not an xl option (use shadow_memory=)",
}

_INTERPRETED = frozenset("""
name type builder uuid memory maxmem vcpus maxvcpus kernel ramdisk cmdline root extra
bootloader on_poweroff on_reboot on_crash on_watchdog disk vif boot vnc vnclisten
vncdisplay vncunused vncpasswd keymap sdl stdvga serial device_model_version
device_model_override
""".split())

_VIF_KEYS = {"mac", "bridge", "netdev", "ip", "script", "vifname", "model", "rate", "type",
             "backend", "mtu", "gatewaydev", "devid", "accel"}


# ---------------------------------------------------------------------------------------
# libxlutil plumbing
# ---------------------------------------------------------------------------------------

_REPORT_LINE = re.compile(r"^(?P<file>.*?):(?P<line>\d+)(?:[.\d-]*)?: (?P<msg>.*)$")
_REPORT_REST = re.compile(r"(?P<line>[0-9]+)(?:[.0-9-]*)?: (?P<msg>.*)")


class _Xlu:
    """One XLU_Config with its report stream captured in memory (open_memstream)."""

    def __init__(self, filename: str):
        ffi, lib = xen()
        self.ffi, self.lib, self.filename = ffi, lib, filename
        self._buf = ffi.new("char **")
        self._size = ffi.new("size_t *")
        self._stream = lib.open_memstream(self._buf, self._size)
        if self._stream == ffi.NULL:
            raise OutOfMemoryError("open_memstream")
        self._seen = 0
        self.cfg = lib.xlu_cfg_init(self._stream, filename.encode("utf-8", "surrogateescape"))
        if self.cfg == ffi.NULL:
            self._close_stream()
            raise OutOfMemoryError("xlu_cfg_init")

    def report(self) -> str:
        """What libxlutil wrote to its report stream since the last call."""
        self.lib.fflush(self._stream)
        if self._buf[0] == self.ffi.NULL:
            return ""
        text = self.ffi.string(self._buf[0], self._size[0])[self._seen:]
        self._seen = self._size[0]
        return text.decode("utf-8", "replace")

    def _close_stream(self) -> None:
        if self._stream is not None:
            self.lib.fclose(self._stream)
            self._stream = None
            if self._buf[0] != self.ffi.NULL:
                self.lib.free(self._buf[0])
                self._buf[0] = self.ffi.NULL

    def close(self) -> None:
        if self.cfg is not None:
            self.lib.xlu_cfg_destroy(self.cfg)
            self.cfg = None
        self._close_stream()

    def __enter__(self) -> _Xlu:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _error_from_report(report: str, default_file: str, message: str, *,
                       key: str | None = None, line: int | None = None) -> ConfigError:
    first = next((ln for ln in report.splitlines() if ln.strip()), "")
    if first.startswith(default_file + ":"):
        # libxlutil names the source as it was given: a file name with ":12: " in it
        # must not be split there
        m = _REPORT_REST.match(first, len(default_file) + 1)
        if m:
            return ConfigError(m.group("msg"), file=default_file,
                               line=int(m.group("line")), key=key, report=report)
    m = _REPORT_LINE.match(first)
    if m:
        return ConfigError(m.group("msg"), file=m.group("file"), line=int(m.group("line")),
                           key=key, report=report)
    if first:
        msg = first
        if first.startswith(default_file + ": "):
            msg = first[len(default_file) + 2:]
        return ConfigError(msg, file=default_file, line=line, key=key, report=report)
    return ConfigError(message, file=default_file, line=line, key=key, report=report or None)


def _settings(xlu: _Xlu) -> list[tuple[str, int]]:
    """(name, line) of every setting of a parsed XLU_Config, the newest first (the one the
    xlu_cfg_get_* calls return): one walk of libxlutil's list."""
    ffi, lib = xlu.ffi, xlu.lib
    n = lib.pyxen_xlu_settings(xlu.cfg, ffi.NULL, ffi.NULL, 0)
    if n <= 0:
        return []
    names = ffi.new("const char *[]", n)
    lines = ffi.new("int[]", n)
    n = min(n, lib.pyxen_xlu_settings(xlu.cfg, names, lines, n))
    return [(ffi.string(names[i]).decode("utf-8", "replace"), int(lines[i]))
            for i in range(n)]


#: the probe of :func:`check_layout`: known names on known lines, the newest listed first
_PROBE = b'pyxen_probe_a = 1\n\npyxen_probe_b = "two"\npyxen_probe_c = [ "x", "y" ]\n'
_PROBE_WANT = [("pyxen_probe_c", 4), ("pyxen_probe_b", 3), ("pyxen_probe_a", 1)]
_layout_ok = False


def check_layout() -> None:
    """Check pyxen's mirror of libxlutil's private XLU_Config layout (csrc/pyxen_xen.c)
    against the real library: a probe config must list its known names and line numbers,
    and each name must be one the public xlu_cfg_get_* calls find. Runs once, before the
    first config is read; raises XenFeatureUnavailable on a mismatch (never misreads)."""
    global _layout_ok
    if _layout_ok:
        return
    with _Xlu("pyxen-layout-probe") as xlu:
        rc = xlu.lib.xlu_cfg_readdata(xlu.cfg, _PROBE, len(_PROBE))
        got = _settings(xlu) if rc == 0 else None
        out = xlu.ffi.new("const char **")
        found = rc == 0 and xlu.lib.xlu_cfg_get_string(xlu.cfg, b"pyxen_probe_b", out, 1) == 0 \
            and xlu.ffi.string(out[0]) == b"two"
    if got != _PROBE_WANT or not found:
        from ._native import built_version
        raise XenFeatureUnavailable(
            "libxlutil's XLU_Config layout is not the one pyxen mirrors to list a config's "
            f"settings (probe listed {got!r}, want {_PROBE_WANT!r}; pyxen built for Xen "
            f"{built_version()}): rebuild pyxen against this libxlutil")
    _layout_ok = True


class _Reader:
    """Typed access to the settings of a parsed XLU_Config."""

    def __init__(self, xlu: _Xlu):
        check_layout()
        self.xlu = xlu
        self.lines: dict[str, int] = {}
        self.order: list[str] = []
        for name, line in _settings(xlu):  # the newest first: the one xlu_cfg_get_* returns
            if name not in self.lines:
                self.lines[name] = line
                self.order.append(name)
        self.order.reverse()

    def _err(self, key: str, message: str) -> ConfigError:
        return _error_from_report(self.xlu.report(), self.xlu.filename, message, key=key,
                                  line=self.lines.get(key))

    def has(self, key: str) -> bool:
        return key in self.lines

    def string(self, key: str) -> str | None:
        ffi, lib = self.xlu.ffi, self.xlu.lib
        out = ffi.new("const char **")
        rc = lib.xlu_cfg_get_string(self.xlu.cfg, key.encode(), out, 0)
        if rc == _errno.ESRCH:
            return None
        if rc:
            raise self._err(key, f"expected a single value ({os.strerror(rc)})")
        return ffi.string(out[0]).decode("utf-8", "surrogateescape")

    def long(self, key: str, minimum: int | None = None, maximum: int | None = None,
             why: str = "") -> int | None:
        ffi, lib = self.xlu.ffi, self.xlu.lib
        out = ffi.new("long *")
        rc = lib.xlu_cfg_get_long(self.xlu.cfg, key.encode(), out, 0)
        if rc == _errno.ESRCH:
            return None
        if rc:
            raise self._err(key, f"expected a number ({os.strerror(rc)})")
        if minimum is not None and out[0] < minimum:
            raise ConfigError(f"must be at least {minimum}, not {out[0]}",
                              file=self.xlu.filename, line=self.lines.get(key), key=key)
        if maximum is not None and out[0] > maximum:
            raise ConfigError(f"must be at most {maximum}{why}, not {out[0]}",
                              file=self.xlu.filename, line=self.lines.get(key), key=key)
        return int(out[0])

    def boolean(self, key: str) -> bool | None:
        v = self.long(key)
        return None if v is None else bool(v)

    def value(self, key: str) -> str | list | None:
        """The raw value: a str, or a (nested) list of str."""
        ffi, lib = self.xlu.ffi, self.xlu.lib
        lst = ffi.new("XLU_ConfigList **")
        n = ffi.new("int *")
        rc = lib.xlu_cfg_get_list(self.xlu.cfg, key.encode(), lst, n, 1)
        if rc == _errno.ESRCH:
            return None
        if rc == 0:
            return self._list(lst[0], n[0], key)
        return self.string(key)

    def _list(self, lst: Any, n: int, key: str, depth: int = 1) -> list:
        ffi, lib = self.xlu.ffi, self.xlu.lib
        if depth > LIST_DEPTH_MAX:
            raise ConfigError(f"lists nested more than {LIST_DEPTH_MAX} deep",
                              file=self.xlu.filename, line=self.lines.get(key), key=key)
        out: list = []
        for i in range(n):
            item = lib.xlu_cfg_get_listitem(lst, i)  # a string item (NULL: a list)
            if item != ffi.NULL:
                # the string belongs to the XLU_Config: not ours to free
                out.append(ffi.string(item).decode("utf-8", "surrogateescape"))
                continue
            v = lib.xlu_cfg_get_listitem2(lst, i)
            if v == ffi.NULL:
                break
            else:
                sub = ffi.new("XLU_ConfigList **")
                rc = lib.xlu_cfg_value_get_list(self.xlu.cfg, v, sub, 1)
                if rc:
                    raise self._err("?", "bad list item")
                cnt = 0
                while lib.xlu_cfg_get_listitem2(sub[0], cnt) != ffi.NULL:
                    cnt += 1
                out.append(self._list(sub[0], cnt, key, depth + 1))
        return out

    def string_list(self, key: str, *, allow_string: bool = False) -> list[str] | None:
        """A list of strings (``xlu_cfg_get_list`` + ``xlu_cfg_get_listitem``)."""
        ffi, lib = self.xlu.ffi, self.xlu.lib
        lst = ffi.new("XLU_ConfigList **")
        n = ffi.new("int *")
        rc = lib.xlu_cfg_get_list(self.xlu.cfg, key.encode(), lst, n, int(allow_string))
        if rc == _errno.ESRCH:
            return None
        if rc == _errno.EINVAL and allow_string:
            self.xlu.report()
            s = self.string(key)
            return None if s is None else [s]
        if rc:
            raise self._err(key, f"expected a list ({os.strerror(rc)})")
        out = []
        for i in range(n[0]):
            item = lib.xlu_cfg_get_listitem(lst[0], i)
            if item == ffi.NULL:
                raise ConfigError(f"item {i + 1} is a list, expected a string",
                                  file=self.xlu.filename, line=self.lines.get(key), key=key)
            out.append(ffi.string(item).decode("utf-8", "surrogateescape"))
        return out


def _read(xlu: _Xlu, data: bytes) -> None:
    """``xlu_cfg_readdata`` of text that passed :func:`_encode` (never a file name:
    ``xlu_cfg_readfile`` would read FIFOs, devices and directories with flex, which hangs
    or calls ``exit(2)``)."""
    lib = xlu.lib
    _prescan(data, xlu.filename)
    rc = lib.xlu_cfg_readdata(xlu.cfg, data, len(data))
    if rc:
        e = _error_from_report(xlu.report(), xlu.filename, f"cannot parse ({os.strerror(rc)})")
        why = os.strerror(rc)
        if why not in e.message:  # libxlutil may print a clobbered errno ("Success")
            e.message = re.sub(r": Success$", "", e.message) + f": {why}"
            e.args = (str(e),)
        raise e
    junk = xlu.report()
    if junk.strip():  # a warning while reading is still an error for pyxen
        raise _error_from_report(junk, xlu.filename, "parse warning")


# The tokens of libxlu_cfg_l.l's initial state that _prescan needs: quoted strings,
# comments, identifiers, numbers (so that "0xab" is not read as an identifier), = and +=,
# [ and ]. In a config libxlutil accepts, finditer() starts each match where flex starts a
# token; after a lexical error libxlutil stores no more settings.
_CFG_TOKENS = re.compile(rb"""
    (?P<s>'[^'\\\n]*(?:\\[^\n][^'\\\n]*)*'|"[^"\\\n]*(?:\\[^\n][^"\\\n]*)*")
  | (?P<c>\#[^\n]*\n)
  | (?P<id>[a-z][._0-9a-z]*)
  | (?P<num>[0-9][0-9a-fx]*)
  | (?P<op>\+=|=)
  | (?P<lb>\[)
  | (?P<rb>\])""", re.X)
# an octal escape in a quoted string token (whose first byte, the quote, is no backslash):
# an odd run of backslashes before a digit 0-7
_CFG_OCTAL = re.compile(rb"[^\\](?:\\\\)*\\[0-7]")


def _prescan(data: bytes, filename: str) -> None:
    """What libxlutil would do badly with this config text, refused before it runs:

    * more than SETTINGS_MAX settings: each ``xlu_cfg_get_*`` and each ``+=`` walks the
      list of settings, and so does listing them, so time grows with their square (a
      1 MiB config of ``a=1`` lines took minutes);
    * ``+=`` copying more than APPEND_COPY_MAX bytes: each ``x += '..'`` keeps a new copy
      of the joined string, each ``x += [..]`` a new array of the joined list's items, and
      the old ones stay allocated (a 1 MiB config could allocate gigabytes);
    * octal escapes in quoted strings: ``xlu__cfgl_dequote`` parses ``\\NNN`` but never
      stores the character (``'a\\101b'`` reads as ``'ab'``), a silently wrong value.
      (``\\xNN`` is always refused by libxlutil itself.)"""
    settings = copied = atoms = depth = list_start = 0
    size: dict[bytes, int] = {}    # a key's value so far: string bytes or list items
    key = b""
    pending: tuple[bytes, bytes] | None = None   # (key, op) waiting for its value
    in_list: tuple[bytes, bytes] | None = None   # (key, op) whose list is being read

    def fail(msg: str, pos: int) -> ConfigError:
        return ConfigError(msg, file=filename, line=data.count(b"\n", 0, pos) + 1)

    def assign(k: bytes, op: bytes, n: int, unit: int, pos: int) -> None:
        nonlocal copied
        if op == b"+=":
            size[k] = size.get(k, 0) + n
            copied += size[k] * unit
            if copied > APPEND_COPY_MAX:
                raise fail(f"'+=' copies more than {APPEND_COPY_MAX} bytes (libxlutil keeps "
                           "a copy of each joined value)", pos)
        else:
            size[k] = n

    for m in _CFG_TOKENS.finditer(data):
        kind = m.lastgroup
        if kind == "c":
            continue
        if kind == "s" and b"\\" in m.group(0):
            e = _CFG_OCTAL.search(m.group(0))
            if e is not None:
                i = m.start() + e.end() - 2
                esc = re.match(rb"\\[0-7]{1,3}", data[i:i + 4])
                shown = esc.group(0).decode() if esc else "\\N"
                raise fail(f"octal escape {shown!r} in a quoted string: libxlutil drops such "
                           "characters instead of decoding them; write the character itself",
                           i)
        if kind in ("s", "num"):
            atoms += 1
        if in_list is not None:
            if kind == "lb":
                depth += 1
            elif kind == "rb":
                depth -= 1
                if not depth:
                    # at most this many items, each a pointer in libxlutil's array
                    assign(*in_list, atoms - list_start, 8, m.start())
                    in_list = None
            continue
        if pending is not None:
            k, op = pending
            pending = None
            if kind in ("s", "num"):
                assign(k, op, m.end() - m.start(), 1, m.start())
            elif kind == "lb":
                in_list, depth, list_start = (k, op), 1, atoms
            continue
        if kind == "op":
            settings += 1
            if settings > SETTINGS_MAX:
                raise fail(f"more than {SETTINGS_MAX} settings", m.start())
            pending = (key, m.group(0))
        elif kind == "id":
            key = m.group(0)


def _read_config_file(path: object) -> tuple[str, bytes]:
    """(name for messages, bytes) of a config file, read in Python: only a regular file,
    at most CONFIG_MAX bytes, opened non-blocking (a FIFO, a device or a directory is
    refused from its stat before it is opened: reading one would hang or make flex exit)."""
    try:
        p = os.fspath(path)  # type: ignore[call-overload]
    except TypeError:
        raise ConfigTypeError(f"a config path must be str, bytes or os.PathLike, not "
                              f"{type(path).__name__}") from None
    if isinstance(p, bytes):
        name = os.fsdecode(p)
    else:
        name = p
    if "\0" in name:
        raise ConfigError(f"NUL character in config path {_short(name)} (C would cut the "
                          "path there)", file=name.split("\0", 1)[0])
    try:
        os.fsencode(name)
    except UnicodeEncodeError:
        raise ConfigError(f"config path {_short(name)} cannot be encoded", file=name) \
            from None

    def fail(e: OSError) -> ConfigError:
        return ConfigError(f"cannot read config file: {e.strerror or e}", file=name)

    kinds = ((_stat.S_ISDIR, "a directory"), (_stat.S_ISFIFO, "a FIFO"),
             (_stat.S_ISCHR, "a character device"), (_stat.S_ISBLK, "a block device"),
             (_stat.S_ISSOCK, "a socket"))

    def check(st: os.stat_result) -> None:
        if not _stat.S_ISREG(st.st_mode):
            kind = next((k for f, k in kinds if f(st.st_mode)), "not a regular file")
            raise ConfigError(f"cannot read config file: it is {kind}, not a regular "
                              "file", file=name)
        if st.st_size > CONFIG_MAX:
            raise ConfigError(f"config of {st.st_size} bytes: at most {CONFIG_MAX} are "
                              "accepted", file=name)

    try:
        check(os.stat(p))
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise fail(e) from None
    try:
        check(os.fstat(fd))  # the same file as stat() saw (not swapped for a FIFO)
        chunks, size = [], 0
        while size <= CONFIG_MAX:
            chunk = os.read(fd, CONFIG_MAX + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except BlockingIOError:
        raise ConfigError("cannot read config file: reading it would block", file=name) \
            from None
    except OSError as e:
        raise fail(e) from None
    finally:
        os.close(fd)
    if size > CONFIG_MAX:  # a file that grows (or a /proc file, which says 0 bytes)
        raise ConfigError(f"config of {size} bytes or more: at most {CONFIG_MAX} are "
                          "accepted", file=name)
    return name, b"".join(chunks)


# ---------------------------------------------------------------------------------------
# disks and vifs
# ---------------------------------------------------------------------------------------

def _disk_guard(spec: object, *, file: str | None = None,
                line: int | None = None) -> str:
    """A disk spec that cannot kill the process in ``xlu_disk_parse``: str or bytes, no
    NUL (the lexer gets ``strlen(spec)`` bytes), at most DISK_SPEC_MAX bytes (its
    unchecked DFA state buffer), and no ``=`` right before a newline: a ``=`` the other
    rules leave to the catch-all ``.`` rule switches the lexer to its LEXERR state, whose
    only rule (``.*``) cannot match an empty line, and under ``%option nodefault`` flex then
    calls ``exit(2)`` ("flex scanner jammed")."""
    spec = _spec_text(spec, "disk", DISK_SPEC_MAX, file=file, line=line, key="disk")
    if "=\n" in spec:
        raise ConfigError(f"bad disk specification {_short(spec)}: '=' before a newline "
                          "(libxlutil's disk lexer would exit the process)", file=file,
                          line=line, key="disk")
    return spec


def _disk(xlu: _Xlu, spec: object, *, line: int | None = None) -> DiskSpec:
    ffi, lib = xlu.ffi, xlu.lib
    spec = _disk_guard(spec, file=xlu.filename, line=line)
    disk = ffi.new("libxl_device_disk *")
    lib.libxl_device_disk_init(disk)
    try:
        s = ffi.new("char[]", spec.encode("utf-8", "surrogateescape"))
        specs = ffi.new("const char *[1]", [s])
        rc = lib.xlu_disk_parse(xlu.cfg, 1, specs, disk)
        if rc:
            raise _error_from_report(xlu.report(), xlu.filename,
                                     f"bad disk specification {spec!r}", key="disk", line=line)

        vdev = disk.vdev
        if vdev == ffi.NULL or not ffi.string(vdev):
            raise ConfigError(f"no vdev in disk specification {spec!r}",
                              file=xlu.filename, line=line, key="disk")
        return disk_from_c(disk, spec=spec)
    finally:
        lib.libxl_device_disk_dispose(disk)


def disk_from_c(disk: Any, spec: str | None = None) -> DiskSpec:
    """A DiskSpec from a ``libxl_device_disk *`` (fields read, nothing freed)."""
    ffi, lib = xen()

    def s_(p: Any) -> str | None:
        return None if p == ffi.NULL else ffi.string(p).decode("utf-8", "surrogateescape")

    discard = None
    if not lib.libxl_defbool_is_default(disk.discard_enable):
        discard = bool(lib.libxl_defbool_val(disk.discard_enable))
    return DiskSpec(
        vdev=s_(disk.vdev) or "", pdev_path=s_(disk.pdev_path),
        backend=s_(lib.libxl_disk_backend_to_string(disk.backend)) or "unknown",
        format=s_(lib.libxl_disk_format_to_string(disk.format)) or "unknown",
        script=s_(disk.script), readwrite=bool(disk.readwrite),
        is_cdrom=bool(disk.is_cdrom), removable=bool(disk.removable),
        direct_io_safe=bool(disk.direct_io_safe), discard_enable=discard,
        backend_domname=s_(disk.backend_domname), spec=spec)


_MAC = re.compile(r"[0-9a-fA-F]{1,2}(:[0-9a-fA-F]{1,2}){5}")
# libxlu_vif.c's regular expressions, in ASCII: rate=BYTES[@INTERVAL], without leading
# zeros: libxlu reads both numbers with strtoull(.., 0), so "010Mb/s" would be octal 8 Mb/s
# and "018Mb/s" one byte per second
_RATE = re.compile(r"[1-9][0-9]*[GMK]?[Bb]/s(@[1-9][0-9]*[mu]?s?)?")
_WS = " \t\n\r\f\v"


def _nic(xlu: _Xlu, spec: object, *, line: int | None = None,
         warn: list | None = None) -> NicSpec:
    """Parse one vif spec the way xl's parse_nic_config does."""
    def err(msg: str, key: str | None = None) -> ConfigError:
        return ConfigError(msg if key is None else f"{key}: {msg}", file=xlu.filename,
                           line=line, key="vif")

    spec = _spec_text(spec, "vif", VIF_SPEC_MAX, file=xlu.filename, line=line, key="vif")
    kw: dict = {}
    for item in spec.split(","):
        item = item.strip(_WS)
        if not item:
            continue
        if "=" not in item:
            raise err(f"vif parameter {_short(item)} is not key=value")
        k, v = (x.strip(_WS) for x in item.split("=", 1))
        if k not in _VIF_KEYS:
            raise err(f"unknown vif parameter {_short(k)}")
        if k == "accel":
            if warn is not None:
                warn.append(Ignored("vif", line, "the accel parameter for vifs is not "
                                    "supported by xl: ignored"))
            continue
        if k == "netdev":  # xl: "the netdev parameter is deprecated, use gatewaydev"
            k = "gatewaydev"
        if k == "mac":
            if not _MAC.fullmatch(v):
                raise err(f"invalid mac address {_short(v)}", "mac")
            v = ":".join("%02x" % int(x, 16) for x in v.split(":"))
        elif k == "type":
            t = v.lower()
            if t == "ioemu":
                t = "vif_ioemu"
            if t not in ("vif", "vif_ioemu"):
                raise err(f"invalid vif type {v!r} (vif or ioemu)", "type")
            v = t
        elif k in ("mtu", "devid"):
            # xl: parse_ulong (strtoul, base 10); only plain ASCII decimal here, since
            # strtoul would read "0x10" as 0 and "-1" as ULONG_MAX
            if not re.fullmatch(r"[0-9]{1,12}", v):
                raise err(f"invalid number {_short(v)} (decimal digits)", k)
            n = int(v)
            if k == "devid" and n > VIF_DEVID_MAX:
                raise err(f"devid {n} out of range 0..{VIF_DEVID_MAX}", k)
            if k == "mtu" and n and not MTU_MIN <= n <= MTU_MAX:
                raise err(f"mtu {n} out of range {MTU_MIN}..{MTU_MAX} (0: the default)",
                          k)
            if k == "mtu" and not n:
                kw.pop(k, None)
            else:
                kw[k] = n
            continue
        kw[k] = v
    if "rate" in kw:
        rate = kw["rate"]
        if not _RATE.fullmatch(rate):
            # libxlu_vif.c's own regular expressions, checked first in Python: they are
            # ASCII, and the rate goes to C as bytes
            raise err(f"invalid rate {_short(rate)} (N[GMK]{{B,b}}/s[@N[m,u]s], N decimal "
                      "without leading zeros)", "rate")
        ffi, lib = xlu.ffi, xlu.lib
        nic = ffi.new("libxl_device_nic *")
        lib.libxl_device_nic_init(nic)
        try:
            # xlu_vif_parse_rate tests errno == ERANGE after strtoull without clearing it
            # first: a stale ERANGE would fail a good rate ("rate overflow")
            ffi.errno = 0
            rc = lib.xlu_vif_parse_rate(xlu.cfg, rate.encode("ascii"), nic)
            if rc:
                raise _error_from_report(xlu.report(), xlu.filename,
                                         f"invalid rate {rate!r}", key="vif", line=line)
            kw["rate_bytes_per_interval"] = int(nic.rate_bytes_per_interval)
            kw["rate_interval_usecs"] = int(nic.rate_interval_usecs)
        finally:
            lib.libxl_device_nic_dispose(nic)
        if not kw["rate_bytes_per_interval"]:
            # libxl would write a credit of 0 bytes, which reads as "no limit"
            raise err(f"rate {rate!r} is less than one byte per "
                      f"{kw['rate_interval_usecs']} us interval (it would mean no limit)",
                      "rate")
    kw.setdefault("mac", random_mac())
    return NicSpec(spec=spec, **kw)


def parse_disk(spec: str | bytes) -> DiskSpec:
    """One disk specification (xl-disk-configuration(5)) through ``xlu_disk_parse``.
    ConfigError (a ValueError) for a bad one, ConfigTypeError for a non-string."""
    with _Xlu("<disk>") as xlu:
        return _disk(xlu, spec)


def parse_nic(spec: str | bytes) -> NicSpec:
    """One vif specification (xl-network-configuration(5)).
    ConfigError (a ValueError) for a bad one, ConfigTypeError for a non-string."""
    with _Xlu("<vif>") as xlu:
        return _nic(xlu, spec)


# ---------------------------------------------------------------------------------------
# the domain config
# ---------------------------------------------------------------------------------------

def _filename(filename: object) -> str:
    if not isinstance(filename, str):
        raise ConfigTypeError(f"filename must be str, not {type(filename).__name__}")
    try:
        if "\0" in filename:
            raise UnicodeEncodeError("utf-8", filename, filename.index("\0"),
                                     filename.index("\0") + 1, "NUL")
        filename.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as e:
        raise ConfigError(f"filename {_short(filename)}: character "
                          f"{filename[e.start]!r} is not allowed") from None
    return filename


def _encode(text: object, filename: str) -> bytes:
    """Config text as bytes libxlutil can read: str (UTF-8) or bytes, no NUL (its lexer
    asserts on a string with a NUL in it), at most CONFIG_MAX bytes."""
    if isinstance(text, str):
        try:
            text = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError as e:
            line = e.object.count("\n", 0, e.start) + 1
            raise ConfigError(f"cannot encode character {text[e.start]!r}", file=filename,
                              line=line) from None
    elif not isinstance(text, (bytes, bytearray, memoryview)):
        raise ConfigTypeError(f"config text must be str or bytes, not {type(text).__name__}",
                              file=filename)
    data = bytes(text)
    if len(data) > CONFIG_MAX:
        raise ConfigError(f"config of {len(data)} bytes: at most {CONFIG_MAX} are accepted",
                          file=filename)
    if b"\0" in data:
        raise ConfigError("NUL byte in config", file=filename,
                          line=data.count(b"\n", 0, data.index(b"\0")) + 1)
    return data


def parse_file(path: str | os.PathLike, *, strict: bool = True,
               extra: Sequence[str] = ()) -> DomainConfig:
    """Parse an xl domain config file. Raises ConfigError (with file, line, key).

    The file is read here (a regular file of at most CONFIG_MAX bytes; a directory, FIFO,
    device or socket is refused without reading it) and its bytes parsed as
    :func:`parse_string` does. ``extra``: ``KEY=VALUE`` lines appended to it, as
    ``xl create CFG KEY=VALUE ...`` appends them (a later setting of a key wins)."""
    name, data = _read_config_file(path)
    if isinstance(extra, (str, bytes)):
        raise ConfigTypeError("extra must be a sequence of KEY=VALUE strings")
    for line in extra:
        if not isinstance(line, str) or "\n" in line or "\0" in line:
            raise ConfigTypeError(f"extra config line {line!r}: one line of text")
        data = data.rstrip(b"\n") + b"\n" + line.encode("utf-8", "surrogateescape") + b"\n"
    if len(data) > CONFIG_MAX:
        raise ConfigError(f"config with its extra lines is over {CONFIG_MAX} bytes",
                          file=name)
    data = _encode(data, name)
    with _Xlu(name) as xlu:
        _read(xlu, data)
        return _interpret(xlu, strict=strict, source=name)


def parse_string(text: str | bytes, *, filename: str = "<string>",
                 strict: bool = True) -> DomainConfig:
    """Parse xl domain config text. Raises ConfigError (with file, line, key)."""
    filename = _filename(filename)
    data = _encode(text, filename)
    with _Xlu(filename) as xlu:
        _read(xlu, data)
        return _interpret(xlu, strict=strict, source=filename)


def parse_raw(text: str | bytes, *, filename: str = "<string>") -> dict:
    """Every setting as libxlutil parsed it: ``{key: (value, line)}``, values str or lists."""
    filename = _filename(filename)
    data = _encode(text, filename)
    with _Xlu(filename) as xlu:
        _read(xlu, data)
        r = _Reader(xlu)
        return {k: (r.value(k), r.lines[k]) for k in r.order}


def _interpret(xlu: _Xlu, *, strict: bool, source: str) -> DomainConfig:
    r = _Reader(xlu)
    ignored: list[Ignored] = []
    uninterpreted: dict = {}
    fname = xlu.filename

    def ignore(key: str, reason: str) -> None:
        ignored.append(Ignored(key, r.lines.get(key), reason))

    for key in r.order:
        if key in _INTERPRETED:
            continue
        if key in XM_KEYS_IGNORED:
            ignore(key, XM_KEYS_IGNORED[key])
        elif key in XL_KEYS_UNINTERPRETED:
            uninterpreted[key] = r.value(key)
            ignore(key, "an xl.cfg key pyxen.config does not interpret yet: not passed "
                        "to libxl")
        elif strict:
            raise ConfigError("unknown key", file=fname, line=r.lines[key], key=key)
        else:
            uninterpreted[key] = r.value(key)
            ignore(key, "unknown key: ignored")

    name = r.string("name")
    if not name:
        raise ConfigError("domain name must be specified", file=fname, key="name",
                          line=r.lines.get("name"))

    # type (builder is xm's spelling; xl still reads it, with a deprecation note)
    dtype = DomainType.PV
    t = r.string("type")
    builder = r.string("builder")
    if t is not None:
        try:
            dtype = DomainType(t.lower())
        except ValueError:
            raise ConfigError(f"invalid domain type {t!r} (pv, pvh or hvm)", file=fname,
                              line=r.lines["type"], key="type") from None
        if builder is not None:
            ignore("builder", "both type= and builder= given: builder ignored (as xl)")
    elif builder is not None:
        if builder.lower() == "hvm":
            dtype = DomainType.HVM
        elif builder.lower() in ("generic", "linux", "pv"):
            dtype = DomainType.PV
        else:
            raise ConfigError(f"invalid builder {builder!r}", file=fname,
                              line=r.lines["builder"], key="builder")
        ignore("builder", f"deprecated xm key: mapped to type={dtype.value!r} (as xl)")

    kernel = r.string("kernel")
    if dtype == DomainType.HVM and kernel is not None:
        if os.path.basename(kernel) == "hvmloader":
            ignore("kernel", f"xm's kernel={kernel!r} names HVM firmware (hvmloader): "
                             "libxl's default firmware is used instead (as xl)")
            kernel = None

    root, extra, cmdline = r.string("root"), r.string("extra"), r.string("cmdline")
    if cmdline is not None:
        if root is not None or extra is not None:
            ignore("extra" if extra is not None else "root",
                   "cmdline= given: root= and extra= ignored (as xl)")
    elif root is not None and extra is not None:
        cmdline = f"root={root} {extra}"
    elif root is not None:
        cmdline = f"root={root}"
    elif extra is not None:
        cmdline = extra

    def action(key: str, default: ShutdownAction) -> ShutdownAction:
        v = r.string(key)
        if v is None:
            return default
        try:
            return ShutdownAction.from_xl(v)
        except ValueError:
            raise ConfigError(f"invalid action {v!r}", file=fname, line=r.lines[key],
                              key=key) from None

    disks = []
    for spec in r.string_list("disk") or []:
        disks.append(_disk(xlu, spec, line=r.lines.get("disk")))
    nics = []
    for spec in r.string_list("vif") or []:
        nics.append(_nic(xlu, spec, line=r.lines.get("vif"), warn=ignored))

    uuid = r.string("uuid")
    if uuid is not None and not re.fullmatch(r"[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}"
                                             r"[0-9a-fA-F]{12}", uuid):
        raise ConfigError(f"invalid uuid {uuid!r}", file=fname, line=r.lines["uuid"],
                          key="uuid")

    hvm_keys = ("boot", "vnc", "vnclisten", "vncdisplay", "vncunused", "vncpasswd",
                "keymap", "sdl", "stdvga", "serial")
    hvm: dict = {}
    if dtype == DomainType.HVM:
        boot = r.string("boot")
        if boot is not None and not re.fullmatch(r"[acdn]{1,3}", boot):
            raise ConfigError(f"invalid boot order {boot!r}", file=fname,
                              line=r.lines["boot"], key="boot")
        hvm = dict(boot=boot, vnc=r.boolean("vnc"), vnclisten=r.string("vnclisten"),
                   vncdisplay=r.long("vncdisplay", 0, VNCDISPLAY_MAX,
                                     " (TCP port 5900 + vncdisplay)"),
                   vncunused=r.boolean("vncunused"),
                   vncpasswd=r.string("vncpasswd"), keymap=r.string("keymap"),
                   sdl=r.boolean("sdl"), stdvga=r.boolean("stdvga"),
                   serial=tuple(r.string_list("serial", allow_string=True) or ()))
    else:
        for k in hvm_keys:
            if r.has(k):
                uninterpreted[k] = r.value(k)
                ignore(k, f"{k}= applies to HVM guests (PV display/serial devices are "
                          "not interpreted by pyxen.config yet)")

    dm_version = r.string("device_model_version")
    if dm_version is not None and dm_version not in ("qemu-xen", "qemu-xen-traditional"):
        raise ConfigError(f"unknown device model version {dm_version!r} (qemu-xen or "
                          "qemu-xen-traditional)", file=fname,
                          line=r.lines.get("device_model_version"), key="device_model_version")
    dm_override = r.string("device_model_override")

    # Xen's own limits, checked here: libxl would take them as they are (vcpus= sizes a
    # bitmap, memory= is multiplied into kB) and fail, or overflow, much later
    mem_why = " MiB (the size in kB must fit in libxl's 64-bit MemKB)"
    if dtype == DomainType.PV:
        max_vcpus, vcpu_why = PV_MAX_VCPUS, " (Xen's MAX_VIRT_CPUS for x86 PV guests)"
    else:
        max_vcpus, vcpu_why = HVM_MAX_VCPUS, (f" (Xen's HVM_MAX_VCPUS for {dtype.value} "
                                              "guests)")
    cfg = DomainConfig(
        name=name, type=dtype, uuid=uuid,
        device_model_version=dm_version, device_model_override=dm_override,
        memory=r.long("memory", 1, MEMORY_MAX_MIB, mem_why),
        maxmem=r.long("maxmem", 1, MEMORY_MAX_MIB, mem_why),
        vcpus=r.long("vcpus", 1, max_vcpus, vcpu_why),
        maxvcpus=r.long("maxvcpus", 1, max_vcpus, vcpu_why),
        kernel=kernel, ramdisk=r.string("ramdisk"), cmdline=cmdline,
        bootloader=r.string("bootloader"),
        on_poweroff=action("on_poweroff", ShutdownAction.DESTROY),
        on_reboot=action("on_reboot", ShutdownAction.RESTART),
        on_crash=action("on_crash", ShutdownAction.DESTROY),
        on_watchdog=action("on_watchdog", ShutdownAction.DESTROY),
        disks=tuple(disks), nics=tuple(nics),
        ignored=tuple(ignored), uninterpreted=uninterpreted, source=source, **hvm)
    # maxvcpus == vcpus and maxmem == memory say nothing more: normalised away
    if cfg.maxvcpus is not None and cfg.maxvcpus == cfg.vcpus:
        cfg = cfg.replace(maxvcpus=None)
    if cfg.maxmem is not None and cfg.maxmem == cfg.memory:
        cfg = cfg.replace(maxmem=None)
    if cfg.maxvcpus is not None and cfg.vcpus is not None and cfg.maxvcpus < cfg.vcpus:
        raise ConfigError(f"maxvcpus ({cfg.maxvcpus}) < vcpus ({cfg.vcpus})", file=fname,
                          line=r.lines.get("maxvcpus"), key="maxvcpus")
    if cfg.maxmem is not None and cfg.memory is not None and cfg.maxmem < cfg.memory:
        raise ConfigError(f"maxmem ({cfg.maxmem}) < memory ({cfg.memory})", file=fname,
                          line=r.lines.get("maxmem"), key="maxmem")
    for ig in ignored:
        where = f"{fname}:{ig.line}: " if ig.line else f"{fname}: "
        warnings.warn(f"{where}{ig.key}: {ig.reason}", ConfigWarning, stacklevel=3)
    return cfg
