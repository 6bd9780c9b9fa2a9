"""Device hot-plug speed: pyxen.devices against xl, on one running PV guest, in the lab dom0.

    python3 -m pyxen.lab run -- python3 benchmarks/device_attach.py --json

* vbd_cycle_vs_xl: attach + detach of a file-backed raw vbd (``format=raw, vdev=xvde,
  access=rw, target=FILE``): pyxen.devices.attach_disk (which waits until backend and
  frontend are Connected) + detach, against ``xl block-attach`` + ``xl block-detach`` of the
  same spec on another vdev (xl runs the block hotplug script, losetup included).
  Interleaved rounds, best round each; ratio = pyxen / xl. Goal 0.3.
* vif_cycle_vs_xl: the same for a vif on xenbr0 (pyxen enslaves by ioctl; xl runs
  vif-bridge). Goal 0.3.

Timings are never asserted: this prints a table and, with --json, one JSON line last.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(1, os.path.dirname(os.path.abspath(__file__)))

from _common import Rounds, print_json, result, table  # noqa: E402

import pyxen.devices as D  # noqa: E402

KIT = "/usr/share/pyxen-lab/guest"
NAME = "bench-dev"


def start_guest(tmp: str) -> int:
    cfg = os.path.join(tmp, "guest.cfg")
    with open(cfg, "w") as f:
        f.write(f'name = "{NAME}"\nkernel = "{KIT}/vmlinuz"\nramdisk = "{KIT}/initrd.cpio.gz"\n'
                'extra = "console=hvc0 pyxen.action=wait"\nmemory = 128\nvcpus = 1\n')
    subprocess.run(["xl", "create", "-q", cfg], check=True, capture_output=True)
    domid = int(subprocess.run(["xl", "domid", NAME], check=True, capture_output=True,
                               text=True).stdout)
    # the guest's xenbus frontends are ready once its init has loaded blkfront/netfront;
    # wait for the first attach to connect (not timed)
    return domid


def pyxen_vbd(dev, domid: int, img: str) -> float:
    t0 = time.perf_counter()
    dev.attach_disk(domid, f"format=raw, vdev=xvde, access=rw, target={img}")
    t1 = time.perf_counter()
    clean = dev.detach(domid, "vbd", "xvde")
    t2 = time.perf_counter()
    print(f"  pyxen vbd: attach {t1 - t0:.2f}s detach {t2 - t1:.2f}s"
          + ("" if clean else " (forced)"), file=sys.stderr)
    return t2 - t0


def xl_vbd(img: str) -> float:
    # its own vdev, so the guest's teardown of the other implementation's disk cannot
    # delay this one (and the other way round)
    t0 = time.perf_counter()
    subprocess.run(["xl", "block-attach", NAME, f"format=raw, vdev=xvdf, access=rw, "
                    f"target={img}"], check=True, capture_output=True)
    t1 = time.perf_counter()
    subprocess.run(["xl", "block-detach", NAME, "xvdf"], check=True, capture_output=True)
    t2 = time.perf_counter()
    print(f"  xl vbd: attach {t1 - t0:.2f}s detach {t2 - t1:.2f}s", file=sys.stderr)
    return t2 - t0


def pyxen_vif(dev, domid: int) -> float:
    t0 = time.perf_counter()
    info = dev.attach_nic(domid, "bridge=xenbr0, mac=00:16:3e:00:be:01")
    dev.detach(domid, "vif", info.devid)
    return time.perf_counter() - t0


def xl_vif() -> float:
    t0 = time.perf_counter()
    subprocess.run(["xl", "network-attach", NAME, "bridge=xenbr0", "mac=00:16:3e:00:be:02"],
                   check=True, capture_output=True)
    out = subprocess.run(["xl", "network-list", NAME], check=True, capture_output=True,
                         text=True).stdout.splitlines()[1:]
    subprocess.run(["xl", "network-detach", NAME, out[-1].split()[0]], check=True,
                   capture_output=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--vif-rounds", type=int, default=2)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pyxen-bench-dev-")
    img = os.path.join(tmp, "disk.img")
    with open(img, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["xl", "destroy", NAME], capture_output=True)
    domid = start_guest(tmp)
    r = Rounds(max(args.rounds, args.vif_rounds))
    try:
        with D.Devices() as dev:
            # warm-up: the guest may still be booting; its frontend connects when ready
            t0 = time.perf_counter()
            dev.attach_disk(domid, f"format=raw, vdev=xvde, access=rw, target={img}",
                            timeout=600)
            dev.detach(domid, "vbd", "xvde")
            print(f"guest ready, warm-up cycle {time.perf_counter() - t0:.1f}s",
                  file=sys.stderr)
            for i in range(args.rounds):
                r.add("vbd", "pyxen", pyxen_vbd(dev, domid, img))
                r.add("vbd", "xl", xl_vbd(img))
                print(f"vbd round {i}: pyxen {r.samples[('vbd', 'pyxen')][-1]:.2f}s "
                      f"xl {r.samples[('vbd', 'xl')][-1]:.2f}s", file=sys.stderr)
            for i in range(args.vif_rounds):
                r.add("vif", "pyxen", pyxen_vif(dev, domid))
                r.add("vif", "xl", xl_vif())
                print(f"vif round {i}: pyxen {r.samples[('vif', 'pyxen')][-1]:.2f}s "
                      f"xl {r.samples[('vif', 'xl')][-1]:.2f}s", file=sys.stderr)
    finally:
        subprocess.run(["xl", "destroy", NAME], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)

    rows, results = [], []
    for op, name in (("vbd", "vbd_cycle_vs_xl"), ("vif", "vif_cycle_vs_xl")):
        p, x = r.best(op, "pyxen"), r.best(op, "xl")
        if p is None or x is None:
            continue
        rows.append([op, f"{p * 1000:.0f}", f"{x * 1000:.0f}", f"{p / x:.3f}"])
        results.append(result(name, p / x, 0.3,
                              f"{op} attach+detach: pyxen {p * 1000:.0f} ms (to Connected, "
                              f"no scripts) vs xl {x * 1000:.0f} ms; best of "
                              f"{len(r.samples[(op, 'pyxen')])} rounds"))
    print(table(rows, ["cycle", "pyxen ms", "xl ms", "ratio"]))
    if args.json:
        print_json(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
