"""guest verbs: pyxen build (direct PV domain build) and pyxen console DOMAIN."""

from __future__ import annotations

import os
import select
import sys
import termios
import tty

ESCAPE = 0x1D  # Ctrl-]


def register(sub) -> None:
    b = sub.add_parser("build", help="build and start a PV guest in-process (no libxl)")
    b.add_argument("--name", required=True)
    b.add_argument("--kernel", required=True)
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
    b.set_defaults(func=cmd_build)

    c = sub.add_parser("console", help="attach to a guest's console (Ctrl-] leaves)")
    c.add_argument("domain", help="domain name or id")
    c.set_defaults(func=cmd_console)


def cmd_build(args) -> int:
    from .. import guest
    spec = guest.BuildSpec(name=args.name, kernel=args.kernel, ramdisk=args.ramdisk,
                           memory=args.memory, maxmem=args.maxmem, vcpus=args.vcpus,
                           cmdline=args.extra, root=args.root, uuid=args.uuid,
                           paused=args.paused, on_poweroff=args.on_poweroff,
                           on_reboot=args.on_reboot, on_crash=args.on_crash)
    g = guest.build(spec)
    print(f"built {g.name}: domid {g.domid} uuid {g.uuid} "
          f"({g.timings.get('total', 0):.3f}s{', paused' if spec.paused else ''})")
    if args.console:
        attach(g.domid)
    if args.supervise:
        with guest.Supervisor() as sup:
            sup.add(g)
            while sup.guests:
                for ev in sup.poll(1.0):
                    print(f"{ev.name} (domid {ev.domid}): {ev.reason} -> {ev.action.value}"
                          + (f", now domid {ev.new_domid}" if ev.new_domid else "")
                          + (f" [{ev.error}]" if ev.error else ""))
    return 0


def cmd_console(args) -> int:
    from .. import guest
    return attach(guest.resolve(args.domain))


def attach(domid: int) -> int:
    """Shuttle bytes between this terminal and the guest's console until Ctrl-]."""
    from .. import guest
    fd = guest.open_console(domid)
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
