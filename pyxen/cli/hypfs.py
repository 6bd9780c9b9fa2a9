"""hypfs verbs: pyxen hypfs ls|cat|write|tree (like Xen's xenhypfs tool)."""

from __future__ import annotations

import argparse

from . import print_json


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``pyxen hypfs`` and its verbs."""
    p = sub.add_parser("hypfs", help="read the hypervisor file system (like xenhypfs)")
    hsub = p.add_subparsers(dest="hypfs_verb", metavar="OP", required=True)
    ls = hsub.add_parser("ls", help="list a directory: type, rw, name (as xenhypfs ls)")
    ls.add_argument("path", metavar="PATH")
    ls.add_argument("--json", action="store_true", help="entries as JSON")
    ls.set_defaults(func=cmd_ls)
    cat = hsub.add_parser("cat", help="print a node (as xenhypfs cat)")
    cat.add_argument("path", metavar="PATH")
    cat.add_argument("--value", action="store_true",
                     help="the typed value (blobs gunzipped) instead of libxenhypfs's text")
    cat.set_defaults(func=cmd_cat)
    w = hsub.add_parser("write", help="set a writable node")
    w.add_argument("path", metavar="PATH")
    w.add_argument("value", metavar="VALUE")
    w.set_defaults(func=cmd_write)
    t = hsub.add_parser("tree", help="every node, indented (as xenhypfs tree)")
    t.set_defaults(func=cmd_tree)


def cmd_ls(args: argparse.Namespace) -> int:
    """``pyxen hypfs ls PATH``: one line an entry, as xenhypfs ls."""
    from .. import hypfs
    with hypfs.open() as fs:
        entries = fs.ls(args.path)
    if args.json:
        print_json([{"name": e.name, "type": getattr(e.type, "name", e.type),
                     "size": e.size, "writable": e.writable} for e in entries])
    else:
        for e in entries:
            print(e.xenhypfs_line())
    return 0


def cmd_cat(args: argparse.Namespace) -> int:
    """``pyxen hypfs cat PATH``: the node as xenhypfs cat prints it (or its typed value)."""
    import sys
    from .. import hypfs
    with hypfs.open() as fs:
        if not args.value:
            print(fs.read(args.path))
            return 0
        v = fs.value(args.path)
    if isinstance(v, bytes):
        sys.stdout.flush()
        sys.stdout.buffer.write(v)
    elif isinstance(v, list):
        print("\n".join(v))
    else:
        print(int(v) if isinstance(v, bool) else v)
    return 0


def cmd_write(args: argparse.Namespace) -> int:
    """``pyxen hypfs write PATH VALUE``."""
    from .. import hypfs
    with hypfs.open() as fs:
        fs.write(args.path, args.value)
    return 0


def cmd_tree(args: argparse.Namespace) -> int:
    """``pyxen hypfs tree``: every node, indented, as xenhypfs tree."""
    from .. import hypfs
    print("/")
    with hypfs.open() as fs:
        for path, e in fs.walk("/"):
            depth = path.count("/")
            print(f"{'  ' * depth}{e.name}{'/' if e.type == hypfs.EntryType.DIR else ''}")
    return 0
