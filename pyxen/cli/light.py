"""libxl verbs (pyxen.light): create, destroy, pause, unpause, shutdown, reboot, mem-set,
vcpu-set, vcpu-pin, vnc. Domains are named by name or id, as with xl."""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from typing import TYPE_CHECKING, Any, Iterable

from . import print_json
from .._text import printable
from ..errors import PyxenError

if TYPE_CHECKING:
    from ..light import Context


class UsageError(PyxenError):
    pass


def register(sub: argparse._SubParsersAction) -> None:
    """Add the libxl verbs (create, shutdown, destroy, vcpu-*, mem-set, vnc, ...)."""
    p = sub.add_parser("create", help="create a domain from an xl config file (like xl create)")
    p.add_argument("config", help="xl domain config file")
    p.add_argument("-p", "--paused", action="store_true", help="leave the domain paused")
    p.add_argument("-c", "--console", action="store_true",
                   help="attach to the console once the domain is up (Ctrl-] leaves)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_create)
    for verb, what in (("destroy", "destroy a domain immediately"),
                       ("pause", "pause a domain"), ("unpause", "unpause a domain"),
                       ("shutdown", "ask a domain to shut down"),
                       ("reboot", "ask a domain to reboot")):
        p = sub.add_parser(verb, help=f"{what} (like xl {verb})")
        p.add_argument("domain", help="name or id")
        p.add_argument("--json", action="store_true")
        if verb == "shutdown":
            p.add_argument("-w", "--wait", action="store_true",
                           help="wait for the domain to shut down, then apply its "
                                "on_poweroff action (there is no xl daemon to do it)")
            p.add_argument("-t", "--timeout", type=float, default=None,
                           help="with -w: give up after this many seconds (exit 1)")
        p.set_defaults(func=cmd_simple, verb_name=verb)
    p = sub.add_parser("vcpu-pin", help="set a vcpu's cpu affinity (like xl vcpu-pin)")
    p.add_argument("domain", help="name or id")
    p.add_argument("vcpu", help="vcpu number or 'all'")
    p.add_argument("hard", help="hard affinity: cpu list (0-1,^0, all) or - to keep")
    p.add_argument("soft", nargs="?", default="-",
                   help="soft affinity: cpu list or - to keep (default -)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_vcpu_pin)
    p = sub.add_parser("vcpu-list", help="list a domain's vcpus (like xl vcpu-list)")
    p.add_argument("domain", help="name or id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_vcpu_list)
    p = sub.add_parser("vnc", help="print the VNC address of an HVM domain's display")
    p.add_argument("domain", help="name or id")
    p.add_argument("-w", "--wait", type=float, default=0, metavar="SECONDS",
                   help="wait up to SECONDS for the device model to publish it")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_vnc)
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


class MemorySizeError(UsageError, ValueError):
    """A memory size that is not a number with an optional b/k/m/g/t suffix, or too big."""


MEM_KB_MAX = 2**63 - 1  # xl's parse_mem_size_kb is an int64_t, as libxl's target_memkb


def parse_mem_kb(text: str) -> int:
    """xl's parse_mem_size_kb: a number with an optional b/k/m/g/t suffix (default m),
    in kB, at most 2^63-1 kB. ASCII digits only; MemorySizeError otherwise."""
    if not isinstance(text, str):
        raise MemorySizeError(f"invalid memory size: a {type(text).__name__}, not a str")
    m = re.fullmatch(r"[ \t]*([0-9]{1,25})([bkmgtBKMGT]?)[ \t]*", text)
    if not m:
        raise MemorySizeError(f"invalid memory size: {text[:40]!r}")
    n, unit = int(m.group(1)), m.group(2).lower() or "m"
    kb = {"b": n >> 10, "k": n, "m": n << 10, "g": n << 20, "t": n << 30}[unit]
    if kb > MEM_KB_MAX:
        raise MemorySizeError(f"invalid memory size: {text.strip()} is more than "
                              f"{MEM_KB_MAX} kB")
    return kb


def _ctx() -> Context:
    from .. import light
    return light.open()


def _domid(ctx: Context, dom: str) -> int:
    from ..light import DomainNotFound
    try:
        return ctx.domid(dom)
    except DomainNotFound as e:  # xl's wording
        raise UsageError(f"{dom} is an invalid domain identifier (rc={e.rc})") from None


def _done(args: argparse.Namespace, domid: int, name: str | None, **extra: Any) -> int:
    if args.json:
        print_json({"domid": domid, "name": name, **extra})
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    """``pyxen create CFG``: create a domain through libxl, as ``xl create``."""
    from .. import config
    print(f"Parsing config from {args.config}", file=sys.stderr)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", config.ConfigWarning)
        cfg = config.parse_file(args.config)
    for w in caught:
        print(f"WARNING: {w.message}", file=sys.stderr)
    with _ctx() as ctx:
        # libxl's asynchronous create: the domain exists (paused) while libxl still
        # attaches devices / starts the device model; the console is ready before the end
        op = ctx.create_async(cfg, paused=args.paused)
        early = op.wait_console()
        domid = op.wait()
        if not args.json:
            print(f"Domain {cfg.name} created as domid {domid}"
                  + (" (paused)" if args.paused else "")
                  + (f" in {op.elapsed:.1f}s" if op.elapsed is not None else ""))
        rc = _done(args, domid, cfg.name, paused=args.paused,
                   console_early=early is not None and op.console_available)
    if args.console:
        from .guest import attach
        sys.stdout.flush()
        return attach(domid)
    return rc


def cmd_simple(args: argparse.Namespace) -> int:
    """The one-domain libxl verbs (shutdown, reboot, destroy, pause, unpause)."""
    with _ctx() as ctx:
        domid = _domid(ctx, args.domain)
        name = ctx.name(domid)
        if args.verb_name == "shutdown" and getattr(args, "wait", False):
            return _shutdown_wait(ctx, args, domid, name)
        getattr(ctx, args.verb_name)(domid)
        return _done(args, domid, name, action=args.verb_name)


def _shutdown_wait(ctx: Context, args: argparse.Namespace, domid: int,
                   name: str | None) -> int:
    """xl shutdown -w: watch for the domain's death (libxl_evenable_domain_death), ask it to
    shut down, report the DOMAIN_SHUTDOWN event, apply on_poweroff (destroy here: no xl
    daemon does it), then wait for DOMAIN_DEATH."""
    from ..light import EventType
    from ..config import ShutdownAction
    events = []
    with ctx.watch_death(domid) as w:
        print(f"Shutting down domain {domid}", file=sys.stderr)
        ctx.shutdown(domid)
        print("Waiting for 1 domains", file=sys.stderr)
        ev = w.wait_for(EventType.DOMAIN_SHUTDOWN, EventType.DOMAIN_DEATH,
                        timeout=args.timeout)
        if ev is None:
            raise UsageError(f"domain {domid} did not shut down within {args.timeout:g}s")
        events.append(ev.to_json())
        if ev.type == EventType.DOMAIN_SHUTDOWN:
            reason = ev.shutdown_reason.label if ev.shutdown_reason is not None else "unknown"
            print(f"Domain {domid} has been shut down, reason code "
                  f"{ev.to_json()['shutdown_reason']}", file=sys.stderr)
            try:
                cfg = ctx.retrieve_config(domid)
                action = {"poweroff": cfg.on_poweroff, "reboot": cfg.on_reboot,
                          "crash": cfg.on_crash}.get(reason, ShutdownAction.DESTROY)
            except Exception:  # noqa: BLE001 - no stored config: destroy, as xl would
                action = ShutdownAction.DESTROY
            if action in (ShutdownAction.DESTROY, ShutdownAction.COREDUMP_DESTROY):
                ctx.destroy(domid)
                ev = w.wait_for(EventType.DOMAIN_DEATH, timeout=args.timeout)
                if ev is not None:
                    events.append(ev.to_json())
            else:
                print(f"on_{reason}={action.value}: left to the caller", file=sys.stderr)
        if ev is not None and ev.type == EventType.DOMAIN_DEATH:
            print(f"Domain {domid} has been destroyed.", file=sys.stderr)
    return _done(args, domid, name, action="shutdown", events=events)


def cmd_vcpu_pin(args: argparse.Namespace) -> int:
    """``pyxen vcpu-pin DOM VCPU CPUS``: set a vCPU's affinity, as ``xl vcpu-pin``."""
    with _ctx() as ctx:
        domid = _domid(ctx, args.domain)
        hard = None if args.hard == "-" else args.hard
        soft = None if args.soft == "-" else args.soft
        ctx.vcpu_pin(domid, args.vcpu, hard, soft)
        if args.json:
            print_json({"domid": domid, "name": ctx.name(domid),
                        "vcpus": [v.to_json() for v in ctx.vcpu_list(domid)
                                  if args.vcpu == "all" or str(v.vcpuid) == str(args.vcpu)]})
    return 0


def _cpulist(cpus: Iterable[int], ncpus: int) -> str:
    if set(range(ncpus)) <= set(cpus):
        return "all"
    out: list[str] = []
    run: list[int] = []
    for c in sorted(cpus):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [c]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def cmd_vcpu_list(args: argparse.Namespace) -> int:
    """``pyxen vcpu-list [DOM]``: vCPUs and their affinity, as ``xl vcpu-list``."""
    with _ctx() as ctx:
        domid = _domid(ctx, args.domain)
        name = ctx.name(domid) or ""
        vcpus = ctx.vcpu_list(domid)
        ncpus = ctx.max_cpus()
    if args.json:
        print_json([dict(v.to_json(), domid=domid, name=name) for v in vcpus])
        return 0
    print(f"{'Name':<32} {'ID':>5} {'VCPU':>5} {'CPU':>5} {'State':>5} {'Time(s)':>9} "
          "Affinity (Hard / Soft)")
    name = printable(name)              # the domain's own xenstore node
    for v in vcpus:
        cpu = str(v.cpu) if v.online else "-"
        print(f"{name:<32} {domid:5d} {v.vcpuid:5d} {cpu:>5} {v.state:>5} "
              f"{v.vcpu_time / 1e9:9.1f} {_cpulist(v.hard, ncpus)} / "
              f"{_cpulist(v.soft, ncpus)}")
    return 0


def cmd_vnc(args: argparse.Namespace) -> int:
    """``pyxen vnc DOM``: where the HVM domain's VNC server listens."""
    with _ctx() as ctx:
        domid = _domid(ctx, args.domain)
        addr = ctx.vnc(domid, timeout=args.wait)
    if args.json:
        print_json(dict(addr.to_json(), name=args.domain))
    else:
        print(f"{printable(str(addr))} (port {addr.port})")
    return 0


def cmd_mem_set(args: argparse.Namespace) -> int:
    """``pyxen mem-set DOM SIZE``: set the balloon target, as ``xl mem-set``."""
    kb = parse_mem_kb(args.memory)
    with _ctx() as ctx:
        domid = _domid(ctx, args.domain)
        ctx.set_memory_target(domid, kb)
        return _done(args, domid, ctx.name(domid), target_kb=kb)


def cmd_vcpu_set(args: argparse.Namespace) -> int:
    """``pyxen vcpu-set DOM N``: set the number of online vCPUs, as ``xl vcpu-set``."""
    with _ctx() as ctx:
        domid = _domid(ctx, args.domain)
        ctx.set_vcpus_online(domid, args.vcpus)
        return _done(args, domid, ctx.name(domid), vcpus=args.vcpus)
