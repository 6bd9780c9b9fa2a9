"""guest verbs: pyxen build (direct PV, PVH or HVM domain build) and pyxen console DOMAIN."""

from __future__ import annotations

import argparse
import os
import select
import sys
import termios
import tty

ESCAPE = 0x1D  # Ctrl-]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the direct-build verbs (build, console)."""
    b = sub.add_parser("build", help="build and start a PV, PVH or HVM domain in-process "
                                     "(no libxl): from an xl config file like xl create, "
                                     "or from flags")
    b.add_argument("config", nargs="?", help="xl domain config file (disks, vifs, on_*)")
    b.add_argument("extra_config", nargs="*", metavar="KEY=VALUE",
                   help="lines added to the config, as xl create takes them")
    b.add_argument("-F", "--foreground", action="store_true",
                   help="with a config: stay in the foreground applying on_* until the "
                        "domain is gone (default: a small supervisor process does it)")
    b.add_argument("--name", help="the flag form's domain name (without a config)")
    b.add_argument("--kernel", help="PV and PVH: required; HVM: direct kernel boot "
                   "(optional)")
    b.add_argument("--ramdisk")
    b.add_argument("--memory", type=int, default=64, help="MiB (default 64)")
    b.add_argument("--maxmem", type=int, help="MiB (default: memory)")
    b.add_argument("--vcpus", type=int, default=1)
    b.add_argument("--extra", default="", help="kernel command line (xl's extra)")
    b.add_argument("--root", help="root= for the kernel command line")
    b.add_argument("--uuid")
    b.add_argument("-p", "--paused", action="store_true", help="leave the guest paused")
    b.add_argument("-c", "--console", action="store_true", help="attach to its console")
    for what in ("poweroff", "reboot", "crash"):
        b.add_argument(f"--on-{what}", default="restart" if what == "reboot" else "destroy",
                       choices=["destroy", "restart", "preserve", "rename-restart"])
    b.add_argument("--supervise", action="store_true",
                   help="stay and apply the on_* actions until the guest is gone")
    t = b.add_mutually_exclusive_group()
    t.add_argument("--type", choices=["pv", "pvh", "hvm"], help="guest type, xl's type= "
                   "(default pv)")
    t.add_argument("--pvh", action="store_const", dest="type", const="pvh",
                   help="build a PVH guest (an HVM container, no device model; the kernel "
                        "boots at its PVH entry point, console on hvc0)")
    t.add_argument("--hvm", action="store_const", dest="type", const="hvm",
                   help="build an HVM guest")
    b.add_argument("--hap", action=argparse.BooleanOptionalAction, default=None,
                   help="PVH/HVM: hardware-assisted paging (default: when the host has it)")
    h = b.add_argument_group("HVM (hvmloader + SeaBIOS + qemu-xen device model)")
    h.add_argument("--firmware", help="hvmloader (default: the installed Xen's)")
    h.add_argument("--system-firmware", help="SeaBIOS image (default: "
                   "/usr/share/seabios/bios-256k.bin)")
    h.add_argument("--boot", help="boot order, xl's boot= (c disk, d cdrom, n network)")
    h.add_argument("--serial", default="file",
                   help="file (default, read with pyxen.guest.serial_output), pty, none, "
                        "or a qemu -serial value")
    h.add_argument("--vnc", action="store_true", help="start a VNC server (port printed)")
    h.add_argument("--vnclisten", default="127.0.0.1")
    h.add_argument("--vncdisplay", type=int, default=0)
    h.add_argument("--sdl", action="store_true")
    h.add_argument("--vga", default="none", choices=["none", "stdvga", "cirrus"])
    h.add_argument("--videoram", type=int, help="MiB")
    h.add_argument("--device-model", help="qemu-xen binary")
    h.add_argument("--dm-arg", action="append", default=[],
                   help="extra argument for qemu (repeatable; --dm-arg=-S)")
    b.set_defaults(func=cmd_build)

    c = sub.add_parser("console", help="attach to a guest's console (Ctrl-] leaves)")
    c.add_argument("domain", help="domain name or id")
    c.add_argument("--serial", action="store_true",
                   help="an HVM guest's emulated serial port (pty: interactive; file: "
                        "follow it, Ctrl-C leaves) instead of its PV console")
    c.set_defaults(func=cmd_console)


def cmd_build(args: argparse.Namespace) -> int:
    """``pyxen build``: build a PV or HVM domain in-process (no libxl)."""
    from .. import guest
    if args.config is not None:
        return _build_config(args)
    if not args.name:
        print("pyxen build: a config file or --name is required", file=sys.stderr)
        return 2
    spec = guest.BuildSpec(name=args.name, kernel=args.kernel, ramdisk=args.ramdisk,
                           memory=args.memory, maxmem=args.maxmem, vcpus=args.vcpus,
                           cmdline=args.extra, root=args.root, uuid=args.uuid,
                           paused=args.paused, on_poweroff=args.on_poweroff,
                           on_reboot=args.on_reboot, on_crash=args.on_crash,
                           **_hvm_options(args))
    kind = args.type or "pv"
    if kind != "hvm" and not args.kernel:
        print(f"pyxen build: --kernel is required for a {kind.upper()} guest",
              file=sys.stderr)
        return 2
    g = guest.build(spec)
    print(f"built {g.name}: domid {g.domid} uuid {g.uuid} "
          f"({g.timings.get('total', 0):.3f}s{', paused' if spec.paused else ''})")
    if g.device_model_pid:
        print(f"device model pid {g.device_model_pid}"
              + (f", vnc {spec.vnclisten}:{g.vnc_port}" if g.vnc_port else "")
              + (f", serial {g.serial}" if g.serial else ""))
    if args.console:
        attach(g.domid, g.serial[4:] if g.serial and g.serial.startswith("pty:") else None)
    if args.supervise:
        with guest.Supervisor() as sup:
            sup.add(g)
            while sup.guests:
                for ev in sup.poll(1.0):
                    _print_event(ev)
    return 0


def _print_event(ev: object) -> None:
    print(f"{ev.name} (domid {ev.domid}): {ev.reason} -> {ev.action.value}"  # type: ignore[attr-defined]
          + (f", now domid {ev.new_domid}" if ev.new_domid else "")  # type: ignore[attr-defined]
          + (f" [{ev.error}]" if ev.error else ""), flush=True)  # type: ignore[attr-defined]


def _build_config(args: argparse.Namespace) -> int:
    """``pyxen build CFG [KEY=VALUE ...]``: xl create's job without libxl."""
    import warnings

    from .. import config, toolstack
    for kv in args.extra_config:
        if "=" not in kv:
            print(f"pyxen build: {kv!r} is not KEY=VALUE", file=sys.stderr)
            return 2
    print(f"Parsing config from {args.config}", file=sys.stderr)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", config.ConfigWarning)
        cfg = config.parse_file(args.config, extra=args.extra_config)
    for w in caught:
        print(f"WARNING: {w.message}", file=sys.stderr)
    dom = toolstack.build(cfg, paused=args.paused)
    g = dom.guest
    print(f"Domain {g.name} built as domid {g.domid}" + (" (paused)" if args.paused else "")
          + f" in {dom.timings.get('total', 0):.2f}s: "
          + ", ".join([f"{d.vdev}" for d in dom.disks] + [f"vif {n.devid}" for n in dom.nics]
                      or ["no devices"]))
    if g.device_model_pid:
        print(f"device model pid {g.device_model_pid}"
              + (f", vnc {g.spec.vnclisten}:{g.vnc_port}" if g.vnc_port else ""))
    sys.stdout.flush()
    if args.foreground:
        if args.console:
            print("pyxen build: -c and -F together: the console is left to another "
                  "terminal (`pyxen console`)", file=sys.stderr)
        toolstack.supervise(dom, on_event=_print_event)
        return 0
    _spawn_supervisor(dom)
    if args.console:
        return attach(g.domid, g.serial[4:] if g.serial and g.serial.startswith("pty:")
                      else None)
    return 0


def _spawn_supervisor(dom: object) -> None:
    """xl's per-domain daemon: a child process, in its own session with its output to
    /dev/null, applies the on_* actions and exits once the domain is gone."""
    from .. import toolstack
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return
    code = 0
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        toolstack.supervise(dom)  # type: ignore[arg-type]
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _hvm_options(args: argparse.Namespace) -> dict:
    kind = getattr(args, "type", None) or "pv"
    hap = getattr(args, "hap", None)
    if kind == "pv":
        return {}
    if kind == "pvh":
        return dict(type="pvh", hap=hap)
    return dict(type="hvm", hap=hap, firmware=args.firmware, system_firmware=args.system_firmware,
                boot=args.boot, serial=args.serial, vnc=args.vnc, vnclisten=args.vnclisten,
                vncdisplay=args.vncdisplay, sdl=args.sdl, vga=args.vga,
                videoram=args.videoram, device_model=args.device_model,
                device_model_args=tuple(args.dm_arg))


def cmd_console(args: argparse.Namespace) -> int:
    """``pyxen console DOM``: attach to the domain's console (or serial) until Ctrl-]."""
    from .. import guest
    domid = guest.resolve(args.domain)
    if not getattr(args, "serial", False):
        return attach(domid)
    spec = guest.serial_spec(domid)
    if spec and spec.startswith("pty:"):
        return attach(domid, spec[4:])
    if not spec or not spec.startswith("file:"):
        print(f"pyxen console: domain {domid} has no serial pyxen can read ({spec or 'none'})",
              file=sys.stderr)
        return 1
    try:
        with open(spec[5:], "rb") as f:
            while True:
                data = f.read(65536)
                if data:
                    os.write(sys.stdout.fileno(), data)
                else:
                    select.select([], [], [], 0.2)
    except KeyboardInterrupt:
        return 0


def attach(domid: int, tty_path: str | None = None) -> int:
    """Shuttle bytes between this terminal and the guest's console (or ``tty_path``, e.g. an
    HVM guest's serial pty) until Ctrl-]."""
    from .. import guest
    fd = guest._open_pty(tty_path) if tty_path else guest.open_console(domid)
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    old = termios.tcgetattr(stdin) if os.isatty(stdin) else None
    if old is not None:
        tty.setraw(stdin)
    try:
        while True:
            r, _, _ = select.select([fd, stdin], [], [])
            if fd in r:
                try:
                    data = os.read(fd, 4096)
                except BlockingIOError:
                    continue
                except OSError:  # EIO: xenconsoled closed the console (domain gone)
                    break
                if not data:
                    break
                os.write(stdout, data)
            if stdin in r:
                data = os.read(stdin, 4096)
                if not data:
                    break
                if ESCAPE in data:
                    data = data[:data.index(ESCAPE)]
                    if data:
                        os.write(fd, data)
                    break
                os.write(fd, data)
    finally:
        if old is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, old)
        os.close(fd)
    return 0
