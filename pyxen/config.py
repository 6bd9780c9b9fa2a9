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
import random
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

from ._native import xen
from .errors import PyxenError

__all__ = ["ConfigError", "ConfigWarning", "DomainType", "ShutdownAction", "DiskSpec",
           "NicSpec", "DomainConfig", "parse_file", "parse_string", "parse_disk",
           "parse_nic", "random_mac"]


class ConfigError(PyxenError, ValueError):
    """A domain config is malformed: ``file``, ``line`` (1-based, or None) and ``key``."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None, report: str | None = None):
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        self.report = report
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        elif self.line:
            where = f"line {self.line}: "
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.message}"


class ConfigWarning(UserWarning):
    """A key was accepted but mapped or ignored (legacy xm keys, uninterpreted keys)."""


class DomainType(str, enum.Enum):
    PV = "pv"
    PVH = "pvh"
    HVM = "hvm"


class ShutdownAction(str, enum.Enum):
    """libxl_action_on_shutdown; ``from_xl`` accepts xl.cfg's spellings."""

    DESTROY = "destroy"
    RESTART = "restart"
    RESTART_RENAME = "restart_rename"
    PRESERVE = "preserve"
    COREDUMP_DESTROY = "coredump_destroy"
    COREDUMP_RESTART = "coredump_restart"
    SOFT_RESET = "soft_reset"

    @classmethod
    def from_xl(cls, text: str) -> "ShutdownAction":
        t = text.strip().lower()
        t = {"rename-restart": "restart_rename"}.get(t, t).replace("-", "_")
        return cls(t)


def random_mac() -> str:
    """A random MAC in Xen's OUI 00:16:3e (as libxl picks one)."""
    r = random.SystemRandom()
    return "00:16:3e:%02x:%02x:%02x" % (r.randrange(128), r.randrange(256), r.randrange(256))


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


class _Xlu:
    """One XLU_Config with its report stream captured in memory (open_memstream)."""

    def __init__(self, filename: str):
        ffi, lib = xen()
        self.ffi, self.lib, self.filename = ffi, lib, filename
        self._buf = ffi.new("char **")
        self._size = ffi.new("size_t *")
        self._stream = lib.open_memstream(self._buf, self._size)
        if self._stream == ffi.NULL:
            raise MemoryError("open_memstream")
        self._seen = 0
        self.cfg = lib.xlu_cfg_init(self._stream, filename.encode("utf-8", "surrogateescape"))
        if self.cfg == ffi.NULL:
            self._close_stream()
            raise MemoryError("xlu_cfg_init")

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


class _Reader:
    """Typed access to the settings of a parsed XLU_Config."""

    def __init__(self, xlu: _Xlu):
        self.xlu = xlu
        ffi, lib = xlu.ffi, xlu.lib
        self.lines: dict[str, int] = {}
        self.order: list[str] = []
        name_p = ffi.new("const char **")
        line_p = ffi.new("int *")
        # index 0 is the newest setting: the one the xlu_cfg_get_* calls return
        for i in range(lib.pyxen_xlu_nsettings(xlu.cfg)):
            if lib.pyxen_xlu_setting(xlu.cfg, i, name_p, line_p) != 0:
                break
            name = ffi.string(name_p[0]).decode("utf-8", "replace")
            if name not in self.lines:
                self.lines[name] = line_p[0]
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

    def long(self, key: str, minimum: int | None = None) -> int | None:
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
            return self._list(lst[0], n[0])
        return self.string(key)

    def _list(self, lst: Any, n: int) -> list:
        ffi, lib = self.xlu.ffi, self.xlu.lib
        out: list = []
        for i in range(n):
            v = lib.xlu_cfg_get_listitem2(lst, i)
            if v == ffi.NULL:
                break
            if lib.xlu_cfg_value_type(v) == lib.XLU_STRING:
                s = ffi.new("char **")
                rc = lib.xlu_cfg_value_get_string(self.xlu.cfg, v, s, 1)
                if rc:
                    raise self._err("?", "bad list item")
                # the string belongs to the XLU_Config: not ours to free
                out.append(ffi.string(s[0]).decode("utf-8", "surrogateescape"))
            else:
                sub = ffi.new("XLU_ConfigList **")
                rc = lib.xlu_cfg_value_get_list(self.xlu.cfg, v, sub, 1)
                if rc:
                    raise self._err("?", "bad list item")
                cnt = 0
                while lib.xlu_cfg_get_listitem2(sub[0], cnt) != ffi.NULL:
                    cnt += 1
                out.append(self._list(sub[0], cnt))
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


def _read(xlu: _Xlu, text: bytes | None, path: str | None) -> None:
    lib = xlu.lib
    if path is not None:
        rc = lib.xlu_cfg_readfile(xlu.cfg, os.fsencode(path))
    else:
        assert text is not None  # the text, or the path of a file to read
        rc = lib.xlu_cfg_readdata(xlu.cfg, text, len(text))
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


# ---------------------------------------------------------------------------------------
# disks and vifs
# ---------------------------------------------------------------------------------------

def _disk(xlu: _Xlu, spec: str, *, line: int | None = None) -> DiskSpec:
    ffi, lib = xlu.ffi, xlu.lib
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


_MAC = re.compile(r"^[0-9a-fA-F]{1,2}(:[0-9a-fA-F]{1,2}){5}$")


def _nic(xlu: _Xlu, spec: str, *, line: int | None = None,
         warn: list | None = None) -> NicSpec:
    """Parse one vif spec the way xl's parse_nic_config does."""
    def err(msg: str, key: str | None = None) -> ConfigError:
        return ConfigError(msg if key is None else f"{key}: {msg}", file=xlu.filename,
                           line=line, key="vif")

    kw: dict = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise err(f"vif parameter {item!r} is not key=value")
        k, v = (x.strip() for x in item.split("=", 1))
        if k not in _VIF_KEYS:
            raise err(f"unknown vif parameter {k!r}")
        if k == "accel":
            if warn is not None:
                warn.append(Ignored("vif", line, "the accel parameter for vifs is not "
                                    "supported by xl: ignored"))
            continue
        if k == "netdev":
            k = "bridge"
        if k == "mac":
            if not _MAC.match(v):
                raise err(f"invalid mac address {v!r}", "mac")
            v = ":".join("%02x" % int(x, 16) for x in v.split(":"))
        elif k == "type":
            t = v.lower()
            if t == "ioemu":
                t = "vif_ioemu"
            if t not in ("vif", "vif_ioemu"):
                raise err(f"invalid vif type {v!r} (vif or ioemu)", "type")
            v = t
        elif k in ("mtu", "devid"):
            try:
                kw[k] = int(v, 0)
            except ValueError:
                raise err(f"invalid number {v!r}", k) from None
            continue
        kw[k] = v
    if "rate" in kw:
        ffi, lib = xlu.ffi, xlu.lib
        nic = ffi.new("libxl_device_nic *")
        lib.libxl_device_nic_init(nic)
        try:
            rc = lib.xlu_vif_parse_rate(xlu.cfg, kw["rate"].encode(), nic)
            if rc:
                raise _error_from_report(xlu.report(), xlu.filename,
                                         f"invalid rate {kw['rate']!r}", key="vif", line=line)
            kw["rate_bytes_per_interval"] = int(nic.rate_bytes_per_interval)
            kw["rate_interval_usecs"] = int(nic.rate_interval_usecs)
        finally:
            lib.libxl_device_nic_dispose(nic)
    kw.setdefault("mac", random_mac())
    return NicSpec(spec=spec, **kw)


def parse_disk(spec: str) -> DiskSpec:
    """One disk specification (xl-disk-configuration(5)) through ``xlu_disk_parse``."""
    with _Xlu("<disk>") as xlu:
        return _disk(xlu, spec)


def parse_nic(spec: str) -> NicSpec:
    """One vif specification (xl-network-configuration(5))."""
    with _Xlu("<vif>") as xlu:
        return _nic(xlu, spec)


# ---------------------------------------------------------------------------------------
# the domain config
# ---------------------------------------------------------------------------------------

def _encode(text: str | bytes, filename: str) -> bytes:
    if isinstance(text, str):
        try:
            text = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError as e:
            line = e.object.count("\n", 0, e.start) + 1
            raise ConfigError(f"cannot encode character {text[e.start]!r}", file=filename,
                              line=line) from None
    data = bytes(text)
    if b"\0" in data:
        raise ConfigError("NUL byte in config", file=filename,
                          line=data.count(b"\n", 0, data.index(b"\0")) + 1)
    return data


def parse_file(path: str | os.PathLike, *, strict: bool = True) -> DomainConfig:
    """Parse an xl domain config file. Raises ConfigError (with file, line, key)."""
    path = os.fspath(path)
    with _Xlu(path) as xlu:
        _read(xlu, None, path)
        return _interpret(xlu, strict=strict, source=path)


def parse_string(text: str | bytes, *, filename: str = "<string>",
                 strict: bool = True) -> DomainConfig:
    """Parse xl domain config text. Raises ConfigError (with file, line, key)."""
    data = _encode(text, filename)
    with _Xlu(filename) as xlu:
        _read(xlu, data, None)
        return _interpret(xlu, strict=strict, source=filename)


def parse_raw(text: str | bytes, *, filename: str = "<string>") -> dict:
    """Every setting as libxlutil parsed it: ``{key: (value, line)}``, values str or lists."""
    data = _encode(text, filename)
    with _Xlu(filename) as xlu:
        _read(xlu, data, None)
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
    if uuid is not None and not re.match(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}"
                                         r"[0-9a-fA-F]{12}$", uuid):
        raise ConfigError(f"invalid uuid {uuid!r}", file=fname, line=r.lines["uuid"],
                          key="uuid")

    hvm_keys = ("boot", "vnc", "vnclisten", "vncdisplay", "vncunused", "vncpasswd",
                "keymap", "sdl", "stdvga", "serial")
    hvm: dict = {}
    if dtype == DomainType.HVM:
        boot = r.string("boot")
        if boot is not None and not re.match(r"^[acdn]{1,3}$", boot):
            raise ConfigError(f"invalid boot order {boot!r}", file=fname,
                              line=r.lines["boot"], key="boot")
        hvm = dict(boot=boot, vnc=r.boolean("vnc"), vnclisten=r.string("vnclisten"),
                   vncdisplay=r.long("vncdisplay", 0), vncunused=r.boolean("vncunused"),
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

    cfg = DomainConfig(
        name=name, type=dtype, uuid=uuid,
        device_model_version=dm_version, device_model_override=dm_override,
        memory=r.long("memory", 1), maxmem=r.long("maxmem", 1),
        vcpus=r.long("vcpus", 1), maxvcpus=r.long("maxvcpus", 1),
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
