"""Domain build speed: pyxen's in-process PV build against ``xl create -p``, and how
pyxen's build time scales over 50 domains, in the lab dom0.

    python3 -m pyxen.lab run -- python3 benchmarks/domain_build.py --json

* pv_create_vs_xl: create-to-paused time of the lab guest kit (Debian kernel + busybox
  initramfs) built by pyxen.guest.build(paused=True) against ``xl create -p`` of the
  same guest (a config file with the same kernel, ramdisk, extra, memory, vcpus);
  interleaved rounds, best round each; ratio = pyxen / xl. Goal 0.3.
* nth_over_first_at_50: 50 paused minimal PV domains (benchmarks/_minipv.py, 16 MiB)
  built one after another by pyxen while all stay alive; ratio = the 50th build's time /
  the 1st's. Goal 1.2 (LightVM, SOSP'17, showed xl growing super-linearly).
* hvm_create_vs_xl (``--hvm-rounds N``, default 1; 0 skips it): create-to-paused of an
  HVM guest (hvmloader + SeaBIOS, qemu-xen started and "running", direct kernel boot of
  the kit) by pyxen against ``xl create -p`` of the same HVM config; ratio = pyxen / xl.
  Most of either is qemu's own start-up. Goal 1.0 (no slower than xl).
* pv_cfg_create_vs_xl: the classic PV config with one file disk and one bridged vif,
  ``pyxen.toolstack.build`` (what ``pyxen build CFG`` runs) to running against ``xl
  create`` of the same file; best round each. Goal 0.3.
* hvm_cfg_create_vs_xl: the classic HVM config (hda file, cdrom, vif, VNC) the same way.
  Goal 0.5.

Timings are never asserted: this prints a table and, with --json, one JSON line last.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(1, os.path.dirname(os.path.abspath(__file__)))

from _common import Rounds, print_json, result, table  # noqa: E402
import _minipv  # noqa: E402

import pyxen.ctrl as C  # noqa: E402
import pyxen.guest as G  # noqa: E402
import pyxen.xenstore as X  # noqa: E402

KIT = "/usr/share/pyxen-lab/guest"
EXTRA = "console=hvc0 pyxen.action=wait"


def xl_config(path: str, name: str, memory: int) -> str:
    with open(path, "w") as f:
        f.write(f'name = "{name}"\nkernel = "{KIT}/vmlinuz"\nramdisk = "{KIT}/initrd.cpio.gz"\n'
                f'extra = "{EXTRA}"\nmemory = {memory}\nvcpus = 1\n'
                'on_poweroff = "destroy"\non_reboot = "destroy"\non_crash = "destroy"\n')
    return path


def time_pyxen(xc, xs, memory: int, steps: dict | None = None) -> float:
    spec = G.BuildSpec(name="bench-pyxen", kernel=f"{KIT}/vmlinuz",
                       ramdisk=f"{KIT}/initrd.cpio.gz", cmdline=EXTRA, memory=memory,
                       paused=True)
    t0 = time.perf_counter()
    g = G.build(spec, xc=xc, xs=xs)
    dt = time.perf_counter() - t0
    if steps is not None:
        steps.clear()
        steps.update(g.timings)
    G.destroy(g.domid, xc=xc, xs=xs, uuid=g.uuid)
    G.wait_gone(xc, g.domid, 30)
    return dt


def time_xl(cfg: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["xl", "create", "-p", "-q", cfg], check=True, capture_output=True)
    dt = time.perf_counter() - t0
    subprocess.run(["xl", "destroy", "bench-xl"], check=True, capture_output=True)
    return dt


def xl_hvm_config(path: str, name: str, memory: int) -> str:
    with open(path, "w") as f:
        f.write(f'name = "{name}"\ntype = "hvm"\nkernel = "{KIT}/vmlinuz"\n'
                f'ramdisk = "{KIT}/initrd.cpio.gz"\nextra = "console=ttyS0 pyxen.action=wait"\n'
                f'memory = {memory}\nvcpus = 1\nvnc = 0\nvga = "none"\nserial = "pty"\n'
                'on_poweroff = "destroy"\non_reboot = "destroy"\non_crash = "destroy"\n')
    return path


def time_pyxen_hvm(xc, xs, memory: int, steps: dict) -> float:
    spec = G.BuildSpec(name="bench-hvm-pyxen", type="hvm", kernel=f"{KIT}/vmlinuz",
                       ramdisk=f"{KIT}/initrd.cpio.gz",
                       cmdline="console=ttyS0 pyxen.action=wait", memory=memory,
                       serial="pty", paused=True)
    t0 = time.perf_counter()
    g = G.build(spec, xc=xc, xs=xs)
    dt = time.perf_counter() - t0
    steps.clear()
    steps.update(g.timings)
    G.destroy(g.domid, xc=xc, xs=xs, uuid=g.uuid)
    G.wait_gone(xc, g.domid, 30)
    return dt


def time_xl_hvm(cfg: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["xl", "create", "-p", "-q", cfg], check=True, capture_output=True)
    dt = time.perf_counter() - t0
    subprocess.run(["xl", "destroy", "bench-hvm-xl"], check=True, capture_output=True)
    return dt


def cfg_files(tmp: str) -> tuple[str, str]:
    """The classic PV and HVM configs (lab kernel, files and bridge); name= is set per run."""
    for img, size in (("pv.img", 32), ("hd.img", 32), ("cd.iso", 4)):
        with open(os.path.join(tmp, img), "wb") as f:
            f.truncate(size << 20)
    pv = os.path.join(tmp, "linux.cfg")
    with open(pv, "w") as f:
        f.write(f"kernel = '{KIT}/vmlinuz'\nramdisk = '{KIT}/initrd.cpio.gz'\nmemory = 128\n"
                f"vcpus = 1\ndisk = ['file:{tmp}/pv.img,xvda,w']\n"
                "vif = ['bridge=xenbr0,mac=00:16:3e:38:d4:07']\n"
                f"extra = '{EXTRA}'\non_poweroff = 'destroy'\n")
    hvm = os.path.join(tmp, "winxp.cfg")
    with open(hvm, "w") as f:
        f.write("type = 'hvm'\nmemory = 128\nvcpus = 1\n"
                f"disk = ['file:{tmp}/hd.img,hda,w', 'file:{tmp}/cd.iso,ioemu:hdc:cdrom,r']\n"
                "vif = ['bridge=xenbr0,mac=00:16:3e:11:22:33']\nboot = 'c'\nvnc = 1\n"
                "serial = 'pty'\non_poweroff = 'destroy'\n")
    return pv, hvm


def time_cfg_pyxen(xc, xs, path: str, name: str) -> float:
    import pyxen.config as CF
    import pyxen.toolstack as T
    cfg = CF.parse_file(path, extra=[f"name='{name}'"])
    t0 = time.perf_counter()
    dom = T.build(cfg, xc=xc, xs=xs)
    dt = time.perf_counter() - t0
    T.destroy(dom.domid, xc=xc, xs=xs, uuid=dom.guest.uuid)
    return dt


def time_cfg_xl(path: str, name: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["xl", "create", "-q", path, f"name='{name}'"], check=True,
                   capture_output=True)
    dt = time.perf_counter() - t0
    subprocess.run(["xl", "destroy", name], check=True, capture_output=True)
    return dt


def scaling(xc, xs, count: int, memory: int, kernel: str) -> list[float]:
    times, built = [], []
    try:
        for i in range(count):
            spec = G.BuildSpec(name=f"bench-mini-{i}", kernel=kernel, memory=memory,
                               paused=True)
            t0 = time.perf_counter()
            g = G.build(spec, xc=xc, xs=xs)
            times.append(time.perf_counter() - t0)
            built.append(g)
    finally:
        for g in built:
            G.destroy(g.domid, xc=xc, xs=xs, uuid=g.uuid)
        for g in built:
            G.wait_gone(xc, g.domid, 30)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the JSON results line last")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--memory", type=int, default=128, help="MiB of the kit guest")
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--mini-memory", type=int, default=16)
    ap.add_argument("--hvm-rounds", type=int, default=1)
    args = ap.parse_args()

    results = []
    with C.open() as xc, X.open() as xs, tempfile.TemporaryDirectory() as tmp:
        cfg = xl_config(os.path.join(tmp, "bench.cfg"), "bench-xl", args.memory)
        # round 0: pyxen with a cold kernel cache (libxenguest-equivalent decompression
        # of the bzImage in this process); then interleaved rounds, pyxen warm
        G.clear_kernel_cache()
        cold_steps: dict = {}
        cold = time_pyxen(xc, xs, args.memory, cold_steps)
        r = Rounds(args.rounds)
        warm_steps: dict = {}
        for _ in range(args.rounds):
            r.add("pv_create", "xl", time_xl(cfg))
            r.add("pv_create", "pyxen", time_pyxen(xc, xs, args.memory, warm_steps))
        p, x = r.best("pv_create", "pyxen"), r.best("pv_create", "xl")
        fmt = lambda d: ", ".join(f"{k} {v:.2f}" for k, v in d.items() if v >= 0.05)  # noqa
        print("pyxen cold build steps (s):", fmt(cold_steps))
        print("pyxen warm build steps (s):", fmt(warm_steps))
        rows = [["pv_create warm (best)", f"{p:.3f}s", f"{x:.3f}s", f"{p / x:.3f}"],
                ["pv_create warm (median)", f"{r.median('pv_create', 'pyxen'):.3f}s",
                 f"{r.median('pv_create', 'xl'):.3f}s",
                 f"{r.median('pv_create', 'pyxen') / r.median('pv_create', 'xl'):.3f}"],
                ["pv_create cold (1 run)", f"{cold:.3f}s", f"{x:.3f}s", f"{cold / x:.3f}"]]
        results.append(result("pv_create_vs_xl", p / x, 0.3,
                              f"create-to-paused, {args.memory} MiB kit guest, best of "
                              f"{args.rounds}: pyxen {p:.3f}s (kernel ELF cached in the "
                              f"process), xl create -p {x:.3f}s"))
        results.append(result("pv_create_cold_vs_xl", cold / x, 0.3,
                              f"first pyxen build in a fresh process (bzImage decompressed "
                              f"by pyxen) {cold:.3f}s vs xl create -p best {x:.3f}s"))

        kernel = _minipv.write(os.path.join(tmp, "minipv.elf"))
        times = scaling(xc, xs, args.count, args.mini_memory, kernel)
        n = len(times)
        first5, last5 = statistics.mean(times[:5]), statistics.mean(times[-5:])
        print("per-domain build times (s):", " ".join(f"{t:.3f}" for t in times))
        rows.append([f"build #1 / #{n}", f"{times[0]:.3f}s", f"{times[-1]:.3f}s",
                     f"{times[-1] / times[0]:.3f}"])
        rows.append(["mean of first 5 / last 5", f"{first5:.3f}s", f"{last5:.3f}s",
                     f"{last5 / first5:.3f}"])
        results.append(result(f"nth_over_first_at_{n}", times[-1] / times[0], 1.2,
                              f"{n} paused minimal PV domains ({args.mini_memory} MiB) "
                              f"built by pyxen one after another: 1st {times[0]:.3f}s, "
                              f"{n}th {times[-1]:.3f}s, mean {statistics.mean(times):.3f}s, "
                              f"max {max(times):.3f}s; last5/first5 {last5 / first5:.3f}"))
        if args.hvm_rounds > 0:
            hcfg = xl_hvm_config(os.path.join(tmp, "hvm.cfg"), "bench-hvm-xl", args.memory)
            hsteps: dict = {}
            for _ in range(args.hvm_rounds):
                r.add("hvm_create", "xl", time_xl_hvm(hcfg))
                r.add("hvm_create", "pyxen", time_pyxen_hvm(xc, xs, args.memory, hsteps))
            hp, hx = r.best("hvm_create", "pyxen"), r.best("hvm_create", "xl")
            print("pyxen HVM build steps (s):", fmt(hsteps))
            rows.append(["hvm_create (best)", f"{hp:.3f}s", f"{hx:.3f}s", f"{hp / hx:.3f}"])
            results.append(result("hvm_create_vs_xl", hp / hx, 1.0,
                                  f"HVM create-to-paused incl. qemu-xen start, {args.memory} "
                                  f"MiB, best of {args.hvm_rounds}: pyxen {hp:.3f}s, "
                                  f"xl create -p {hx:.3f}s"))
        pv_cfg, hvm_cfg = cfg_files(tmp)
        for _ in range(args.rounds):
            r.add("pv_cfg", "xl", time_cfg_xl(pv_cfg, "bench-cfg-xl"))
            r.add("pv_cfg", "pyxen", time_cfg_pyxen(xc, xs, pv_cfg, "bench-cfg-pyxen"))
        cp, cx = r.best("pv_cfg", "pyxen"), r.best("pv_cfg", "xl")
        rows.append(["pv_cfg_create (best)", f"{cp:.3f}s", f"{cx:.3f}s", f"{cp / cx:.3f}"])
        results.append(result("pv_cfg_create_vs_xl", cp / cx, 0.3,
                              f"PV config with a file disk and a bridged vif, to running, "
                              f"best of {args.rounds}: pyxen.toolstack.build {cp:.3f}s, "
                              f"xl create {cx:.3f}s"))
        if args.hvm_rounds > 0:
            for _ in range(args.hvm_rounds):
                r.add("hvm_cfg", "xl", time_cfg_xl(hvm_cfg, "bench-hcfg-xl"))
                r.add("hvm_cfg", "pyxen", time_cfg_pyxen(xc, xs, hvm_cfg, "bench-hcfg-pyxen"))
            hp, hx = r.best("hvm_cfg", "pyxen"), r.best("hvm_cfg", "xl")
            rows.append(["hvm_cfg_create (best)", f"{hp:.3f}s", f"{hx:.3f}s",
                         f"{hp / hx:.3f}"])
            results.append(result("hvm_cfg_create_vs_xl", hp / hx, 0.5,
                                  f"HVM config (hda, cdrom, vif, VNC) to running, best of "
                                  f"{args.hvm_rounds}: pyxen.toolstack.build {hp:.3f}s, "
                                  f"xl create {hx:.3f}s"))
    print(table(rows, ["measure", "pyxen / first", "xl / last", "ratio"]))
    if args.json:
        print_json(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
