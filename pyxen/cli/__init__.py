"""The ``pyxen`` command line: xl/xm-style verbs over the library, in-process.

Each area lives in its own module under ``pyxen.cli`` with a ``register(sub)`` function
that adds its verbs; verbs return an exit status. Errors print like xl's (one line on
stderr) and exit 1; a missing Xen exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from ..errors import PyxenError, XenUnavailableError

AREAS = ("host", "xenstore", "light", "guest", "devices")


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyxen", description="Xen control from Python, in-process.")
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    for area in AREAS:
        importlib.import_module(f"{__name__}.{area}").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except XenUnavailableError as e:
        print(f"pyxen: {e}", file=sys.stderr)
        return 2
    except PyxenError as e:
        print(f"pyxen: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
