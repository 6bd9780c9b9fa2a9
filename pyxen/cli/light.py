"""libxl verbs (pyxen.light): create, destroy, pause, unpause, shutdown, reboot, mem-set,
vcpu-set. Domains are named by name or id, as with xl."""

from __future__ import annotations

import re
import sys
import warnings

from . import print_json
from ..errors import PyxenError


class UsageError(PyxenError):
    pass


def register(sub) -> None:
    p = sub.add_parser("create", help="create a domain from an xl config file (like xl create)")
    p.add_argument("config", help="xl domain config file")
    p.add_argument("-p", "--paused", action="store_true", help="leave the domain paused")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_create)
    for verb, what in (("destroy", "destroy a domain immediately"),
                       ("pause", "pause a domain"), ("unpause", "unpause a domain"),
                       ("shutdown", "ask a domain to shut down"),
                       ("reboot", "ask a domain to reboot")):
        p = sub.add_parser(verb, help=f"{what} (like xl {verb})")
        p.add_argument("domain", help="name or id")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_simple, verb_name=verb)
    p = sub.add_parser("mem-set", help="set a domain's memory target (like xl mem-set)")
    p.add_argument("domain", help="name or id")
    p.add_argument("memory", help="size, MiB unless suffixed b/k/m/g/t (as xl)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_mem_set)
    p = sub.add_parser("vcpu-set", help="set the number of online vcpus (like xl vcpu-set)")
    p.add_argument("domain", help="name or id")
    p.add_argument("vcpus", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_vcpu_set)


def parse_mem_kb(text: str) -> int:
    """xl's parse_mem_size_kb: a number with an optional b/k/m/g/t suffix (default m)."""
    m = re.fullmatch(r"\s*(\d+)([bkmgtBKMGT]?)\s*", text)
    if not m:
        raise UsageError(f"invalid memory size: {text}")
    n, unit = int(m.group(1)), m.group(2).lower() or "m"
    return {"b": n >> 10, "k": n, "m": n << 10, "g": n << 20, "t": n << 30}[unit]


def _ctx():
    from .. import light
    return light.open()


def _domid(ctx, dom: str) -> int:
    from ..light import DomainNotFound
    try:
        return ctx.domid(dom)
    except DomainNotFound as e:  # xl's wording
        raise UsageError(f"{dom} is an invalid domain identifier (rc={e.rc})") from None


def _done(args, domid: int, name: str | None, **extra) -> int:
    if args.json:
        print_json({"domid": domid, "name": name, **extra})
    return 0


def cmd_create(args) -> int:
    from .. import config
    print(f"Parsing config from {args.config}", file=sys.stderr)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", config.ConfigWarning)
        cfg = config.parse_file(args.config)
    for w in caught:
        print(f"WARNING: {w.message}", file=sys.stderr)
    with _ctx() as ctx:
        domid = ctx.create(cfg, paused=args.paused)
        if not args.json:
            print(f"Domain {cfg.name} created as domid {domid}"
                  + (" (paused)" if args.paused else ""))
        return _done(args, domid, cfg.name, paused=args.paused)


def cmd_simple(args) -> int:
    with _ctx() as ctx:
        domid = _domid(ctx, args.domain)
        name = ctx.name(domid)
        getattr(ctx, args.verb_name)(domid)
        return _done(args, domid, name, action=args.verb_name)


def cmd_mem_set(args) -> int:
    kb = parse_mem_kb(args.memory)
    with _ctx() as ctx:
        domid = _domid(ctx, args.domain)
        ctx.set_memory_target(domid, kb)
        return _done(args, domid, ctx.name(domid), target_kb=kb)


def cmd_vcpu_set(args) -> int:
    with _ctx() as ctx:
        domid = _domid(ctx, args.domain)
        ctx.set_vcpus_online(domid, args.vcpus)
        return _done(args, domid, ctx.name(domid), vcpus=args.vcpus)
