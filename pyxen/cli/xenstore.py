"""xenstore verbs: pyxen xenstore read|write|ls|rm|watch (like xenstore-read & co.)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from ..xenstore import XenStore


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``pyxen xenstore`` and its verbs."""
    p = sub.add_parser("xenstore", help="read and write the xenstore tree")
    xsub = p.add_subparsers(dest="xs_verb", metavar="OP", required=True)

    r = xsub.add_parser("read", help="print the values of PATHs")
    r.add_argument("paths", nargs="+", metavar="PATH")
    r.set_defaults(func=cmd_read)

    w = xsub.add_parser("write", help="set PATH to VALUE (pairs)")
    w.add_argument("pairs", nargs="+", metavar="PATH VALUE")
    w.set_defaults(func=cmd_write)

    ls = xsub.add_parser("ls", help="print the tree under PATH (recursive, like xenstore-ls)")
    ls.add_argument("paths", nargs="*", metavar="PATH", default=["/"])
    ls.add_argument("-f", "--full", action="store_true", help="print full paths")
    ls.add_argument("-p", "--perms", action="store_true", help="print permissions")
    ls.add_argument("-1", "--one-level", action="store_true",
                    help="children of PATH only, not recursive")
    ls.set_defaults(func=cmd_ls)

    rm = xsub.add_parser("rm", help="remove PATHs and everything under them")
    rm.add_argument("paths", nargs="+", metavar="PATH")
    rm.set_defaults(func=cmd_rm)

    wa = xsub.add_parser("watch", help="print PATH<TAB>TOKEN for each change under PATHs")
    wa.add_argument("paths", nargs="+", metavar="PATH")
    wa.add_argument("-n", "--count", type=int, default=0,
                    help="exit after this many events (0: never)")
    wa.add_argument("-t", "--timeout", type=float, default=None,
                    help="exit after this many seconds without an event")
    wa.set_defaults(func=cmd_watch)


def sanitise(value: bytes) -> str:
    """xenstore-ls's escaping of a value: printable ASCII as is, \\t \\n \\r \\f \\\\ and
    octal escapes for the rest."""
    out = []
    for c in value:
        if 32 <= c <= 126 and c != 92:
            out.append(chr(c))
        elif c in (9, 10, 13, 12, 92):
            out.append("\\" + {9: "t", 10: "n", 13: "r", 12: "f", 92: "\\"}[c])
        elif c < 8:
            out.append("\\" + chr(48 + c))
        else:
            out.append(f"\\{c:03o}")
    return "".join(out)


def cmd_read(args: argparse.Namespace) -> int:
    """``pyxen xenstore read PATH...``: print each value, as xenstore-read."""
    from .. import xenstore
    with xenstore.open() as xs:
        for path in args.paths:
            value = xs.read(path)
            if sys.stdout.isatty():     # a terminal: a guest's value must not drive it
                value = sanitise(value).encode()
            sys.stdout.buffer.write(value + b"\n")
    return 0


def cmd_write(args: argparse.Namespace) -> int:
    """``pyxen xenstore write PATH VALUE...``: set each pair, as xenstore-write."""
    from .. import xenstore
    from ..errors import PyxenError
    if len(args.pairs) % 2:
        raise PyxenError("xenstore write takes PATH VALUE pairs")
    with xenstore.open() as xs:
        it = iter(args.pairs)
        for path, value in zip(it, it):
            xs.write(path, value.encode("utf-8", "surrogateescape"))
    return 0


def _ls(xs: XenStore, path: str, depth: int, args: argparse.Namespace, out: TextIO) -> None:
    from ..xenstore import join
    for name in xs.ls(path):
        child = join(path, name)
        value = sanitise(xs.get(child, b""))
        label = child if args.full else " " * depth + name
        line = f'{label} = "{value}"'
        if args.perms:
            line += f"  ({xs.get_permissions(child)})"
        out.write(line + "\n")
        if not args.one_level:
            _ls(xs, child, depth + 1, args, out)


def cmd_ls(args: argparse.Namespace) -> int:
    """``pyxen xenstore ls [PATH]``: print the tree, as xenstore-ls."""
    from .. import xenstore
    with xenstore.open() as xs:
        for path in args.paths:
            _ls(xs, path, 0, args, sys.stdout)
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    """``pyxen xenstore rm PATH...``: remove each path and what is under it."""
    from .. import xenstore
    with xenstore.open() as xs:
        for path in args.paths:
            xs.rm(path)
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    """``pyxen xenstore watch PATH...``: print each event, as xenstore-watch."""
    from .. import xenstore
    seen = 0
    with xenstore.open() as xs:
        for path in args.paths:
            xs.watch(path, path)
        for ev in xs.events(args.timeout):
            print(f"{ev.path}\t{ev.token}", flush=True)
            seen += 1
            if args.count and seen >= args.count:
                break
    return 0
