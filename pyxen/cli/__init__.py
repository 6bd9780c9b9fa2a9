"""The ``pyxen`` command line: xl/xm-style verbs over the library, in-process.

Each area lives in its own module under ``pyxen.cli`` with a ``register(sub)`` function
that adds its verbs; verbs return an exit status. Exit statuses are xl's: 0 for success, 1
for a failed operation (a missing Xen included), 2 only for a usage error (argparse's).
Errors print like xl's: one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from .. import __version__
from .._text import printable
from ..errors import PyxenError

AREAS = ("host", "xenstore", "light", "guest", "devices", "hypfs", "stat")


def print_json(obj: Any) -> None:
    """Print ``obj`` as indented, key-sorted JSON (anything else as str)."""
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def build_parser() -> argparse.ArgumentParser:
    """The ``pyxen`` argument parser, with every area's verbs."""
    p = argparse.ArgumentParser(prog="pyxen", description="Xen control from Python, in-process.")
    p.add_argument("--version", action="version", version=f"pyxen {__version__}")
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    for area in AREAS:
        importlib.import_module(f"{__name__}.{area}").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the ``pyxen`` command line; returns the exit status (xl's)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PyxenError as e:  # XenUnavailableError ("no Xen here") included: exit 1, as xl
        return fail(e)
    except BrokenPipeError:
        return 0
    except OSError as e:     # a file or device the operation needed (one line, as xl)
        return fail(e)
    except KeyboardInterrupt:
        return 130


def one_line(text: object) -> str:
    """An error message folded onto one line (C libraries' reports span several)."""
    return " ".join(str(text).split())


def fail(e: BaseException) -> int:
    """Print ``e`` as xl prints a failed operation (one line on stderr, anything not
    printable escaped: messages can quote what a guest wrote) and return 1."""
    print(f"pyxen: {printable(one_line(e))}", file=sys.stderr)
    return 1
