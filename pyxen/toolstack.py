"""The direct toolstack: an xl domain config built into a running domain without libxl.

``build(cfg)`` takes a :class:`pyxen.config.DomainConfig` (parsed from an xl.cfg, or made
in code) and does what ``xl create`` does for it, in-process: the domain through
:func:`pyxen.guest.build` (libxenguest, plus qemu-xen for HVM), then every disk and vif
through :class:`pyxen.devices.Devices` while the domain is still paused (as libxl wires
devices before it unpauses), then unpause. A failure at any step, or a Ctrl-C, destroys
what was built: devices (loop devices released, vifs off their bridge), the domain, its
xenstore entries.

A key the direct builder does not implement is refused by name
(:class:`UnsupportedConfigError`), never dropped; the xm-era keys xl ignores were already
reported by :mod:`pyxen.config` as :class:`~pyxen.config.ConfigWarning`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable

from . import _interrupt
from . import ctrl as _ctrl
from . import guest as _guest
from . import xenstore as _xenstore
from . import xspath
from .config import DiskSpec, DomainConfig, DomainType, NicSpec
from .devices import DEFAULT_BRIDGE, Devices, DiskInfo, NicInfo, enslave
from .errors import BuildError, PyxenError, UnsupportedConfigError
from .types import LifecycleAction

__all__ = ["Domain", "UnsupportedConfigError", "build", "destroy", "spec_from_config",
           "supervise"]

#: seconds a backend gets to close when its domain is destroyed before its entries go
DESTROY_DEVICE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Domain:
    """A domain the direct toolstack built: the :class:`pyxen.guest.Guest`, the config it
    came from, and its disks and vifs as dom0 wired them."""

    guest: _guest.Guest
    config: DomainConfig
    disks: tuple[DiskInfo, ...] = ()
    nics: tuple[NicInfo, ...] = ()
    timings: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def domid(self) -> int:
        """The domain's id."""
        return self.guest.domid

    @property
    def name(self) -> str:
        """The domain's name."""
        return self.guest.name


def _refuse(key: str, why: str) -> UnsupportedConfigError:
    return UnsupportedConfigError(key, f"{key}: {why} (the direct builder does not "
                                       "implement it; `pyxen create` builds it through libxl)")


def _check_disk(d: DiskSpec, hvm: bool) -> None:
    what = f"disk {d.spec or d.vdev!r}"
    if hvm and not re.fullmatch(r"hd[a-d]", d.vdev):
        raise _refuse("disk", f"{what}: vdev {d.vdev} (an HVM guest's emulated drives are "
                              "built as IDE hda..hdd)")
    if hvm and d.is_cdrom and not d.pdev_path:
        return                          # an empty cdrom drive: qemu's alone
    if d.format not in ("raw", "unknown"):
        raise _refuse("disk", f"{what}: format={d.format} (raw only)")
    if d.backend not in ("unknown", "phy"):
        raise _refuse("disk", f"{what}: backendtype={d.backend} (phy only)")
    if d.backend_domname not in (None, "", "0", "Domain-0"):
        raise _refuse("disk", f"{what}: a backend in domain {d.backend_domname}")
    if d.script is not None:
        raise _refuse("disk", f"{what}: script={d.script} (pyxen wires phy: and file: "
                              "targets itself)")
    if not d.pdev_path:
        raise _refuse("disk", f"{what}: an empty drive")


def _check_nic(n: NicSpec, hvm: bool) -> None:
    what = f"vif {n.spec or n.mac!r}"
    if hvm and n.type == "vif":
        raise _refuse("vif", f"{what}: type=vif (PV only) for an HVM guest")
    if hvm and n.model is not None and not re.fullmatch(r"[a-z0-9_-]{1,32}", n.model):
        raise _refuse("vif", f"{what}: model={n.model}")
    if not hvm and n.type not in (None, "vif"):
        raise _refuse("vif", f"{what}: type={n.type}")
    if n.script is not None and not n.script.endswith("vif-bridge"):
        raise _refuse("vif", f"{what}: script={n.script} (bridge mode only)")
    if n.backend not in (None, "", "0", "Domain-0"):
        raise _refuse("vif", f"{what}: a backend in domain {n.backend}")


def spec_from_config(cfg: DomainConfig, *, paused: bool = False) -> _guest.BuildSpec:
    """The :class:`pyxen.guest.BuildSpec` of ``cfg``'s domain (its devices are
    :func:`build`'s); UnsupportedConfigError naming the first key it cannot build."""
    if not isinstance(cfg, DomainConfig):
        raise _guest.SpecTypeError("spec", "spec_from_config() takes a DomainConfig, not "
                                           f"{type(cfg).__name__}")
    for key in cfg.uninterpreted:
        raise _refuse(key, "a key pyxen.config does not interpret")
    if cfg.type.value not in _guest.GUEST_TYPES:
        raise _refuse("type", f"type={cfg.type.value}")
    hvm = cfg.type == DomainType.HVM
    if cfg.bootloader:
        raise _refuse("bootloader", f"bootloader={cfg.bootloader}")
    if cfg.maxvcpus is not None:
        raise _refuse("maxvcpus", f"maxvcpus={cfg.maxvcpus} above vcpus (vCPU hotplug)")
    if cfg.on_watchdog not in (LifecycleAction.DESTROY, cfg.on_crash):
        raise _refuse("on_watchdog", "an on_watchdog action other than on_crash's")
    if cfg.device_model_version == "qemu-xen-traditional":
        raise _refuse("device_model_version", "qemu-xen-traditional")
    for key in ("vncpasswd", "keymap"):
        if getattr(cfg, key) is not None:
            raise _refuse(key, f"{key}= for the device model")
    if len(cfg.serial) > 1:
        raise _refuse("serial", "more than one serial port")
    if not hvm and not cfg.kernel:
        raise _guest.SpecError("spec", "a PV guest needs kernel=")
    for d in cfg.disks:
        _check_disk(d, hvm)
    for n in cfg.nics:
        _check_nic(n, hvm)
    kw: dict = dict(name=cfg.name, kernel=cfg.kernel, ramdisk=cfg.ramdisk,
                    cmdline=cfg.cmdline or "", uuid=cfg.uuid, paused=paused,
                    on_poweroff=cfg.on_poweroff, on_reboot=cfg.on_reboot,
                    on_crash=cfg.on_crash, type=cfg.type.value)
    kw.update({k: getattr(cfg, k) for k in ("memory", "maxmem", "vcpus")
               if getattr(cfg, k) is not None})
    if hvm:
        from .devices import vdev_to_devid
        kw["disks"] = tuple(_guest.EmulatedDisk(
            index=ord(d.vdev[2]) - ord("a"), devid=vdev_to_devid(d.vdev), path=d.pdev_path or None,
            cdrom=d.is_cdrom, readonly=not d.readwrite) for d in cfg.disks)
        kw["nics"] = tuple(_guest.EmulatedNic(devid=i if n.devid is None else n.devid,
                                              mac=n.mac.lower(),
                                              model=n.model or _guest.DEFAULT_NIC_MODEL,
                                              bridge=n.bridge or DEFAULT_BRIDGE)
                           for i, n in enumerate(cfg.nics))
        kw.update(boot=cfg.boot, vnc=bool(cfg.vnc), sdl=bool(cfg.sdl),
                  device_model=cfg.device_model_override)
        kw.update({k: getattr(cfg, k) for k in ("vnclisten", "vncdisplay", "vncunused")
                   if getattr(cfg, k) is not None})
        if cfg.stdvga:
            kw["vga"] = "stdvga"
        if cfg.serial:
            kw["serial"] = cfg.serial[0]
    return _guest.BuildSpec(**kw).validated()


def _device_ids(xs: _xenstore.XenStore, domid: int, kind: str) -> list[int]:
    """The devids of ``kind`` the dom0-owned ``/libxl`` mirror lists for ``domid``."""
    try:
        names = xs.ls(xspath.mirror(domid, kind))
    except _xenstore.XenStoreNotFound:
        return []
    return sorted(int(n) for n in names if n.isdigit())


def _remove_devices(devs: Devices, domid: int, timeout: float) -> BaseException | None:
    """Detach every vbd and vif of ``domid`` (forced after ``timeout``); the first
    failure, after trying every device."""
    first: BaseException | None = None
    for kind in ("vif", "vbd"):
        for devid in _device_ids(devs.xs, domid, kind):
            try:
                devs.detach(domid, kind, devid, timeout=timeout, force=True)
            except PyxenError as e:
                first = first or e
    return first


def destroy(domid: int, *, xc: _ctrl.Ctrl | None = None, xs: _xenstore.XenStore | None = None,
            uuid: str | None = None, timeout: float = DESTROY_DEVICE_TIMEOUT) -> None:
    """``xl destroy`` of a domain with devices: the device model killed, the domain
    destroyed, every vbd and vif detached (loop devices released, vifs off their
    bridges), then the domain's xenstore entries removed."""
    with _guest.handles(xc, xs) as (xc, xs), \
            _interrupt.deferred_sigint():    # a Ctrl-C waits for the teardown
        _guest.remove_device_model(xs, domid)
        try:
            xc.destroy(domid)
        except _ctrl.NoSuchDomainError:
            pass
        # the frontends go with their domain: each backend driver sees its other end
        # gone and closes now, instead of waiting on a frontend that cannot answer
        try:
            xs.rm(f"{xspath.domain(domid)}/device")
        except _xenstore.XenStoreError:
            pass
        with Devices(xs, xc) as devs:
            err = _remove_devices(devs, domid, timeout)
        _guest.remove_xenstore_entries(xs, domid, uuid)
        _guest.wait_gone(xc, domid, 10.0)
    if err is not None:
        raise err


def build(cfg: DomainConfig, *, paused: bool = False, xc: _ctrl.Ctrl | None = None,
          xs: _xenstore.XenStore | None = None,
          timeout: float = 30.0) -> Domain:
    """``xl create`` without libxl: build ``cfg``'s domain paused, wire its disks and
    vifs, then unpause it (unless ``paused``). BuildError (``step`` "devices" for a
    device) after destroying everything built."""
    spec = spec_from_config(cfg, paused=True)
    with _guest.handles(xc, xs) as (xc, xs):
        return _build(cfg, spec, paused, xc, xs, timeout)


def _build(cfg: DomainConfig, spec: _guest.BuildSpec, paused: bool, xc: _ctrl.Ctrl,
           xs: _xenstore.XenStore, timeout: float) -> Domain:
    t0 = time.monotonic()
    g: _guest.Guest | None = None
    step = "domain"
    try:
        g = _guest.build(spec, xc=xc, xs=xs)
        timings = {"domain": time.monotonic() - t0}
        step = "devices"
        disks: list[DiskInfo] = []
        nics: list[NicInfo] = []
        with Devices(xs, xc) as devs:
            for d in cfg.disks:
                _interrupt.point("toolstack.disk")
                if d.pdev_path:          # an empty HVM cdrom is qemu's alone
                    disks.append(devs.attach_disk(g.domid, d, timeout=timeout, wait=False))
            for i, n in enumerate(cfg.nics):
                _interrupt.point("toolstack.vif")
                if spec.hvm:             # the emulated NIC's tap, as vif-bridge does it
                    devid = spec.nics[i].devid
                    _interrupt.point("toolstack.tap")
                    enslave(_guest.tap_name(g.domid, devid),
                            devs.check_nic(g.domid, n)[4])
                nics.append(devs.attach_nic(g.domid, n, timeout=timeout, wait=False))
        timings["devices"] = time.monotonic() - t0 - timings["domain"]
        step = "unpause"
        _interrupt.point("toolstack.unpause")
        if not paused:
            xc.unpause(g.domid)
        timings["total"] = time.monotonic() - t0
        return Domain(g, cfg, tuple(disks), tuple(nics), timings)
    except BaseException as e:
        if g is not None:
            with _interrupt.deferred_sigint():   # a second Ctrl-C waits for the rollback
                try:
                    destroy(g.domid, xc=xc, xs=xs, uuid=g.uuid)
                except PyxenError:
                    pass
        if isinstance(e, BuildError) or not isinstance(e, (PyxenError, OSError)):
            raise
        raise BuildError(step, str(e), domid=g.domid if g else None, cause=e) from e


def supervise(dom: Domain, *, until: Callable[[list[_guest.LifecycleEvent]], object]
              | None = None, max_restarts: int = 1,
              on_event: Callable[[_guest.LifecycleEvent], object] | None = None,
              timeout: float | None = None) -> list[_guest.LifecycleEvent]:
    """Apply the domain's on_poweroff / on_reboot / on_crash (as xl's per-domain daemon
    does) until it is gone for good, ``until(events)`` holds or ``timeout`` passes. A
    restart rebuilds the whole config (devices too); destroy removes the devices."""
    events: list[_guest.LifecycleEvent] = []
    end = None if timeout is None else time.monotonic() + timeout
    configs = {dom.domid: dom.config}

    def destroy_one(domid: int, uuid: str | None, xc: _ctrl.Ctrl,
                    xs: _xenstore.XenStore) -> None:
        destroy(domid, xc=xc, xs=xs, uuid=uuid)

    def rebuild(old: _guest.Guest, action: LifecycleAction, xc: _ctrl.Ctrl,
                xs: _xenstore.XenStore) -> _guest.Guest:
        cfg = configs.pop(old.domid)
        if action == LifecycleAction.RENAME_RESTART:
            cfg = cfg.replace(uuid=None)
        new = build(cfg, xc=xc, xs=xs)
        configs[new.domid] = cfg
        return new.guest

    with _guest.Supervisor(max_restarts=max_restarts, destroy=destroy_one,
                           rebuild=rebuild) as sup:
        sup.add(dom.guest)
        while sup.guests:
            left = 1.0 if end is None else min(1.0, end - time.monotonic())
            if left <= 0:
                break
            for ev in sup.poll(left):
                events.append(ev)
                if on_event is not None:
                    on_event(ev)
            if until is not None and until(events):
                break
    return events

