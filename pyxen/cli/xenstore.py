"""xenstore verbs: pyxen xenstore read PATH."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("xenstore", help="read and write the xenstore tree")
    xsub = p.add_subparsers(dest="xs_verb", metavar="OP", required=True)
    r = xsub.add_parser("read", help="print the values of PATHs")
    r.add_argument("paths", nargs="+", metavar="PATH")
    r.set_defaults(func=cmd_read)


def cmd_read(args) -> int:
    from .. import xenstore
    with xenstore.open() as xs:
        for path in args.paths:
            sys.stdout.buffer.write(xs.read(path) + b"\n")
    return 0
