"""The stable Xen libraries through pyxen against C loops over the same libraries, in the
lab dom0.

    python3 -m pyxen.lab run -- python3 benchmarks/hypercall.py --json

* evtchn_rtt_vs_c: an event-channel round trip between two pyxen.evtchn handles in dom0
  (an interdomain pair within dom0): notify, wait on the other handle (take the pending
  port, polling only if there is none yet, then unmask it), notify back, wait. Goal 1.5.
* gnt_map_vs_c: map + unmap (pyxen.gnttab) of one page dom0 shared with itself through
  gntshr. Goal 1.5.
* gnt_copy_vs_c: a grant copy of 4096 bytes from such a page into a Python buffer. Goal 1.5.
* fmem_map_vs_c: foreign map + unmap (pyxen.foreignmemory) of one frame (the console page)
  of a paused PV guest. Goal 1.5.
* vchan_64m_vs_c: 64 MiB over vchan, from ``benchmarks/_vchan_bench.py`` (``run()``) when
  present. Goal 2.0.

The C side is benchmarks/hypercall_loop.c, compiled here with gcc against the same
libraries; it does what the pyxen calls do, timed inside its process. Measurements are
interleaved in rounds and the best round counts. Ratio = pyxen's time / C's (lower is
better). Timings are never asserted: this prints a table and, with --json, one JSON line
last.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(1, HERE)

from _common import Rounds, per_op, print_json, result, table  # noqa: E402

from pyxen import evtchn, foreignmemory, gnttab  # noqa: E402

KIT = "/usr/share/pyxen-lab/guest"
NAME = "bench-hypercall"
OPS = ["evtchn_rtt", "gnt_map", "gnt_copy", "fmem_map"]
C_OP = {"evtchn_rtt": "evtchn", "gnt_map": "gntmap", "gnt_copy": "gntcopy",
        "fmem_map": "fmem"}
GOAL = 1.5


def start_guest(tmp: str) -> tuple[int, int]:
    """A paused PV guest (nothing runs in it); its domid and console frame."""
    cfg = os.path.join(tmp, "guest.cfg")
    with open(cfg, "w") as f:
        f.write(f'name = "{NAME}"\nkernel = "{KIT}/vmlinuz"\nramdisk = "{KIT}/initrd.cpio.gz"\n'
                'extra = "console=hvc0 pyxen.action=wait"\nmemory = 96\nvcpus = 1\n')
    subprocess.run(["xl", "destroy", NAME], capture_output=True)
    r = subprocess.run(["xl", "create", "-p", cfg], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"xl create -p failed ({r.returncode}): {r.stderr.strip()}")
    domid = int(subprocess.run(["xl", "domid", NAME], check=True, capture_output=True,
                               text=True).stdout)
    ring = int(subprocess.run(["xenstore-read", f"/local/domain/{domid}/console/ring-ref"],
                              check=True, capture_output=True, text=True).stdout)
    return domid, ring


class Pyxen:
    """The pyxen side of each operation: ``ops[op](n)`` runs it n times."""

    def __init__(self, domid: int, gfn: int):
        self.a, self.b = evtchn.open(), evtchn.open()
        self.pa = self.a.bind_unbound_port(0)
        self.pb = self.b.bind_interdomain(0, self.pa)
        assert self.b.wait(timeout=30) == self.pb  # a new interdomain binding starts pending
        self.gs, self.gt = gnttab.open_share(), gnttab.open()
        self.page = self.gs.share(0)
        self.page.write(b"\x5a" * gnttab.PAGE_SIZE)
        self.ref = self.page.refs[0]
        self.buf = bytearray(gnttab.PAGE_SIZE)
        self.fm = foreignmemory.open()
        self.domid, self.gfn = domid, gfn
        self.ops = {"evtchn_rtt": self.evtchn_rtt, "gnt_map": self.gnt_map,
                    "gnt_copy": self.gnt_copy, "fmem_map": self.fmem_map}

    def evtchn_rtt(self, n: int) -> None:
        a, pa, b, pb = self.a, self.pa, self.b, self.pb
        for _ in range(n):
            a.notify(pa)
            b.wait(30)
            b.notify(pb)
            a.wait(30)

    def gnt_map(self, n: int) -> None:
        gt, ref = self.gt, self.ref
        for _ in range(n):
            gt.map(0, ref, writable=True).unmap()

    def gnt_copy(self, n: int) -> None:
        copy, seg = self.gt.copy, [gnttab.FromGrant(0, self.ref, 0, self.buf)]
        for _ in range(n):
            copy(seg)

    def fmem_map(self, n: int) -> None:
        fmap, domid, gfns = self.fm.map, self.domid, [self.gfn]
        for _ in range(n):
            fmap(domid, gfns).unmap()

    def close(self) -> None:
        if self.buf[-1] != 0x5A:
            raise SystemExit("grant copy moved the wrong bytes")
        for h in (self.a, self.b, self.gt, self.gs, self.fm):
            h.close()


class CLoop:
    def __init__(self, tmp: str):
        self.exe = os.path.join(tmp, "hypercall_loop")
        subprocess.run(["gcc", "-O2", "-o", self.exe, os.path.join(HERE, "hypercall_loop.c"),
                        "-lxenevtchn", "-lxengnttab", "-lxenforeignmemory"], check=True)

    def time(self, op: str, n: int, domid: int, gfn: int) -> float:
        extra = [str(domid), str(gfn)] if op == "fmem_map" else []
        out = subprocess.run([self.exe, C_OP[op], str(n), *extra], check=True,
                             capture_output=True, text=True).stdout
        return float(out.strip())


def vchan_result() -> dict:
    try:
        import _vchan_bench  # type: ignore[import-not-found]
    except ImportError:
        return {"name": "vchan_64m_vs_c", "ratio": None, "goal": 2.0,
                "detail": "pyxen.vchan not merged yet"}
    return _vchan_bench.run()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the JSON results line last")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("-n", type=int, default=200, help="operations per round per impl")
    ap.add_argument("--profile", action="store_true", help="cProfile each pyxen op (stderr)")
    args = ap.parse_args()

    for mod in ("xen-gntdev", "xen-gntalloc"):
        subprocess.run(["modprobe", mod], capture_output=True)
    tmp = tempfile.mkdtemp(prefix="pyxen-bench-")
    domid, gfn = start_guest(tmp)
    try:
        c = CLoop(tmp)
        py = Pyxen(domid, gfn)
        r = Rounds(args.rounds)
        for rnd in range(args.rounds):
            for op in OPS:
                py.ops[op](10)  # warm up
                r.add(op, "pyxen", per_op(py.ops[op], args.n))
                r.add(op, "c", c.time(op, args.n, domid, gfn))
            print(f"# round {rnd + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        if args.profile:
            import cProfile
            import pstats
            for op in OPS:
                prof = cProfile.Profile()
                prof.runcall(py.ops[op], args.n)
                print(f"# profile of {op}", file=sys.stderr)
                pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(12)
        py.close()
    finally:
        subprocess.run(["xl", "destroy", NAME], capture_output=True)

    rows, results = [], []
    for op in OPS:
        mine, theirs = r.best(op, "pyxen"), r.best(op, "c")
        assert mine is not None and theirs is not None
        ratio = mine / theirs
        rows.append([op, f"{mine * 1e6:.1f}", f"{theirs * 1e6:.1f}", f"{ratio:.2f}"])
        detail = (f"pyxen {mine * 1e6:.1f} us vs C {theirs * 1e6:.1f} us per op (best of "
                  f"{args.rounds} interleaved rounds of {args.n}; medians "
                  f"{r.median(op, 'pyxen') * 1e6:.1f} vs {r.median(op, 'c') * 1e6:.1f} us)")
        results.append(result(f"{op}_vs_c", ratio, GOAL, detail))
    results.append(vchan_result())
    print(table(rows, ["op (us/op)", "pyxen", "C", "ratio"]))
    missed = [x["name"] for x in results if x["ratio"] is not None and x["ratio"] > x["goal"]]
    print("goals missed: " + (", ".join(missed) if missed else "none"))
    if args.json:
        print_json(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
