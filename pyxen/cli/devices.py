"""Device verbs (pyxen.devices): block-attach, block-list, block-detach, network-attach,
network-list, network-detach, as with xl. Without hotplug scripts by default; the block
verbs take ``--libxl`` to go through libxl (pyxen.light) instead."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from . import print_json
from .._text import printable
from ..errors import PyxenError

if TYPE_CHECKING:
    from ..devices import Devices
    from ..light import Context


class UsageError(PyxenError):
    pass


def register(sub: argparse._SubParsersAction) -> None:
    """Add the block-* and network-* verbs."""
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("domain", help="name or id")
        p.add_argument("--json", action="store_true")

    p = sub.add_parser("block-attach", help="attach a disk (like xl block-attach)")
    common(p)
    p.add_argument("spec", nargs="+", help="xl disk spec (xl-disk-configuration(5))")
    p.add_argument("--libxl", action="store_true", help="go through libxl (and its scripts)")
    p.add_argument("--timeout", type=float, default=None, help="seconds to wait for Connected")
    p.set_defaults(func=cmd_block_attach)
    p = sub.add_parser("block-list", help="list a domain's disks (like xl block-list)")
    common(p)
    p.add_argument("--libxl", action="store_true", help="go through libxl")
    p.set_defaults(func=cmd_block_list)
    p = sub.add_parser("block-detach", help="detach a disk (like xl block-detach)")
    common(p)
    p.add_argument("vdev", help="the disk's virtual device (xvdb) or devid")
    p.add_argument("--libxl", action="store_true", help="go through libxl (and its scripts)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds to wait for Closed before forcing")
    p.set_defaults(func=cmd_block_detach)
    p = sub.add_parser("network-attach", help="attach a vif (like xl network-attach)")
    common(p)
    p.add_argument("spec", nargs="*", help="xl vif spec items (xl-network-configuration(5))")
    p.add_argument("--timeout", type=float, default=None)
    p.set_defaults(func=cmd_network_attach)
    p = sub.add_parser("network-list", help="list a domain's vifs (like xl network-list)")
    common(p)
    p.set_defaults(func=cmd_network_list)
    p = sub.add_parser("network-detach", help="detach a vif (like xl network-detach)")
    common(p)
    p.add_argument("which", help="devid or mac")
    p.add_argument("--timeout", type=float, default=None)
    p.set_defaults(func=cmd_network_detach)


def _dev() -> Devices:
    from .. import devices
    return devices.Devices()


def _join(items: list[str]) -> str:
    """xl passes each argument to the parser as its own item; items may end in commas."""
    return ",".join(x.strip().strip(",").strip() for x in items if x.strip(" ,"))


def _kw(args: argparse.Namespace) -> dict:
    return {"timeout": args.timeout} if getattr(args, "timeout", None) is not None else {}


def _libxl_domid(ctx: Context, dom: str) -> int:
    from ..light import DomainNotFound
    try:
        return ctx.domid(dom)
    except DomainNotFound as e:  # xl's wording
        raise UsageError(f"{dom} is an invalid domain identifier (rc={e.rc})") from None


def cmd_block_attach(args: argparse.Namespace) -> int:
    """``pyxen block-attach DOM SPEC``: hot-plug a disk, as ``xl block-attach``."""
    spec = _join(args.spec)
    if args.libxl:
        from .. import light
        with light.open() as ctx:
            domid = _libxl_domid(ctx, args.domain)
            ctx.disk_add(domid, spec)
        if args.json:
            print_json({"domid": domid, "spec": spec})
        return 0
    with _dev() as d:
        info = d.attach_disk(args.domain, spec, **_kw(args))
    if args.json:
        print_json(info.to_json())
    return 0


def cmd_block_list(args: argparse.Namespace) -> int:
    """``pyxen block-list DOM``: the domain's disks, as ``xl block-list``."""
    from .. import devices
    if args.libxl:
        from .. import light
        with light.open() as ctx:
            domid = _libxl_domid(ctx, args.domain)
            infos = ctx.disk_list(domid)
        if args.json:
            print_json([x.to_json() for x in infos])
            return 0
        print(devices.DISK_HEADER)
        for x in infos:
            print("%-5d %-3d %-6d %-5d %-6d %-8d %-30s" % (x.devid, x.backend_id, domid,
                                                          x.state, x.evtch, x.rref,
                                                          printable(x.backend)))
        return 0
    with _dev() as d:
        disks = d.list_disks(args.domain)
    if args.json:
        print_json([x.to_json() for x in disks])
        return 0
    print(devices.DISK_HEADER)
    for disk in disks:
        print(disk.row())
    return 0


def cmd_block_detach(args: argparse.Namespace) -> int:
    """``pyxen block-detach DOM VDEV``: unplug a disk, as ``xl block-detach``."""
    if args.libxl:
        from .. import light
        with light.open() as ctx:
            domid = _libxl_domid(ctx, args.domain)
            vdev = args.vdev
            if vdev.isdigit():  # a devid, as xl block-list prints it
                match = [x for x in ctx.disk_list(domid) if x.devid == int(vdev)]
                if not match:
                    raise UsageError(f"Error: Device {vdev} not connected.")
                vdev = match[0].vdev
            ctx.disk_remove(domid, vdev)
        if args.json:
            print_json({"domid": domid, "vdev": vdev})
        return 0
    with _dev() as d:
        domid = d.domid(args.domain)
        clean = d.detach(domid, "vbd", args.vdev, **_kw(args))
    if args.json:
        print_json({"domid": domid, "vdev": args.vdev, "clean": clean})
    elif not clean:
        print(f"warning: the backend did not close; {args.vdev} was removed by force")
    return 0


def cmd_network_attach(args: argparse.Namespace) -> int:
    """``pyxen network-attach DOM [SPEC]``: hot-plug a NIC, as ``xl network-attach``."""
    spec = _join(args.spec)
    with _dev() as d:
        info = d.attach_nic(args.domain, spec, **_kw(args))
    if args.json:
        print_json(info.to_json())
    return 0


def cmd_network_list(args: argparse.Namespace) -> int:
    """``pyxen network-list DOM``: the domain's NICs, as ``xl network-list``."""
    from .. import devices
    with _dev() as d:
        nics = d.list_nics(args.domain)
    if args.json:
        print_json([x.to_json() for x in nics])
        return 0
    print(devices.NIC_HEADER)
    for x in nics:
        print(x.row())
    return 0


def cmd_network_detach(args: argparse.Namespace) -> int:
    """``pyxen network-detach DOM DEVID|MAC``: unplug a NIC, as ``xl network-detach``."""
    with _dev() as d:
        domid = d.domid(args.domain)
        clean = d.detach(domid, "vif", args.which, **_kw(args))
    if args.json:
        print_json({"domid": domid, "which": args.which, "clean": clean})
    elif not clean:
        print(f"warning: the backend did not close; vif {args.which} was removed by force")
    return 0
