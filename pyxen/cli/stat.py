"""pyxen top: xentop's batch mode (``xentop -b -i N``), in-process over libxenstat."""

from __future__ import annotations

import argparse
import dataclasses
import time

from . import print_json


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``pyxen top``."""
    p = sub.add_parser("top", help="domain statistics as xentop -b prints them")
    p.add_argument("-b", "--batch", action="store_true",
                   help="batch mode (the only mode: accepted for xentop's command line)")
    p.add_argument("-i", "--iterations", type=int, default=1, metavar="N",
                   help="samples to print (default 1; 0: until interrupted)")
    p.add_argument("-d", "--delay", type=float, default=3.0, metavar="SECONDS",
                   help="seconds between samples (default 3)")
    p.add_argument("-n", "--networks", action="store_true", help="vif network data")
    p.add_argument("-x", "--vbds", action="store_true", help="vbd block device data")
    p.add_argument("-v", "--vcpus", action="store_true", help="vcpu data")
    p.add_argument("-r", "--repeat-header", action="store_true",
                   help="repeat the header before each domain")
    p.add_argument("-f", "--full-name", action="store_true", help="domain names in full")
    p.add_argument("-z", "--dom0-first", action="store_true", help="Domain-0 first")
    p.add_argument("--json", action="store_true",
                   help="each sample as one JSON object (bytes and ns, CPU %% included)")
    p.set_defaults(func=cmd_top)


def cmd_top(args: argparse.Namespace) -> int:
    """``pyxen top``: xentop's batch table (or JSON) for N samples."""
    from .. import stat
    from ..errors import PyxenError
    if args.iterations < 0 or args.delay <= 0:
        raise PyxenError("pyxen top: --iterations must be >= 0 and --delay > 0")
    prev = None
    n = 0
    try:
        with stat.open() as st:
            while True:
                cur = st.sample()
                if args.json:
                    doc = dataclasses.asdict(cur)
                    for d in doc["domains"]:
                        d["state"] = cur.domain(d["domid"]).state  # type: ignore[union-attr]
                        d["cpu_percent"] = cur.cpu_percent(prev, d["domid"]) if prev else 0.0
                    print_json(doc)
                else:
                    for line in stat.xentop_lines(
                            cur, prev, full_name=args.full_name, dom0_first=args.dom0_first,
                            vcpus=args.vcpus, networks=args.networks, vbds=args.vbds,
                            repeat_header=args.repeat_header):
                        print(line)
                print(end="", flush=True)
                n += 1
                if args.iterations and n >= args.iterations:
                    return 0
                prev = cur
                time.sleep(args.delay)
    except KeyboardInterrupt:
        return 0
