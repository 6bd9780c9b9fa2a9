"""python -m pyxen.lab {build,run,shell,info,clean}: a disposable Xen host in QEMU."""

from __future__ import annotations

import argparse
import json
import shutil
import sys

from .image import RECIPES, LabError, build_image, cache_root, recipe_for
from .vm import choose_machine, run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pyxen.lab",
                                description="A real Xen host (4.17 or 4.20) in QEMU for trying and "
                                            "testing pyxen without a Xen machine.")
    p.add_argument("--accel", choices=["auto", "kvm", "tcg"], default=None,
                   help="QEMU accelerator (default: kvm if the CPU shows vmx/svm and /dev/kvm "
                        "works, else tcg; env PYXEN_LAB_ACCEL)")
    p.add_argument("--xen", choices=sorted(RECIPES), default=None,
                   help="which Xen the lab runs (default 4.17, or env PYXEN_LAB_XEN): 4.17 is "
                        "Debian 12's, 4.20 Debian 13's; each image is cached separately")
    sub = p.add_subparsers(dest="verb", required=True)
    sub.add_parser("build", help="build (or reuse) the cached dom0 image")
    r = sub.add_parser("run", help="run CMD as root in a fresh dom0, with this checkout as "
                                   "the working directory and pyxen importable")
    r.add_argument("--timeout", type=float, default=3600, help="seconds (default 3600)")
    r.add_argument("-v", "--verbose", action="store_true", help="also show the boot console")
    r.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    sub.add_parser("shell", help="an interactive root shell in a fresh dom0 "
                                 "(exit the shell to power off; Ctrl-A x kills QEMU)")
    sub.add_parser("info", help="where the cache is and what it holds")
    sub.add_parser("clean", help="remove the cached images")
    a = p.parse_args(argv)
    try:
        if a.verb == "build":
            img = build_image(recipe_for(a.xen))
            print(json.dumps(img.manifest(), indent=1))
            return 0
        if a.verb == "run":
            cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
            if not cmd:
                p.error("run needs a command: python -m pyxen.lab run -- CMD [ARGS...]")
            return run(cmd, timeout=a.timeout, accel=a.accel, verbose=a.verbose, xen=a.xen)
        if a.verb == "shell":
            return run([], accel=a.accel, interactive=True, xen=a.xen)
        if a.verb == "info":
            m = choose_machine(a.accel)
            print(f"cache: {cache_root()}")
            for d in sorted(cache_root().glob("xen-*/*-*")):
                print(f"  {d.parent.name}/{d.name}")
            print(f"accelerator: {m.accel} (-cpu {m.cpu})")
            return 0
        if a.verb == "clean":
            shutil.rmtree(cache_root(), ignore_errors=True)
            return 0
    except LabError as e:
        print(f"pyxen-lab: {e}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
