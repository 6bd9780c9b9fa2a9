"""Domain listing and HVM detection: pyxen vs xen.lowlevel.xc vs subprocesses (lab).

    python -m pyxen.lab run -- python3 benchmarks/domain_list.py --json

Times, per operation (best of several repeats): pyxen's ``Ctrl.domains()`` and
``Ctrl.domain(id)``, the same through Xen's own C extension ``xen.lowlevel.xc``
(``domain_getinfo``), and ``xl list`` as a subprocess, with 1 domain (dom0) and with 20
empty paused domains more; then ``pyxen.cpuid.verdict()`` against a
``grep -E 'vmx|svm' /proc/cpuinfo`` subprocess. Ratio = pyxen's time / the anchor's
(lower is better). The last line printed is one JSON object {"results": [...]}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
LOWLEVEL = "/usr/lib/xen-4.17/lib/python"

import pyxen.cpuid  # noqa: E402
import pyxen.ctrl  # noqa: E402


def per_op(fn, n: int, repeats: int = 5) -> float:
    """Best-of-``repeats`` seconds per call of ``fn`` over ``n`` calls."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def lowlevel():
    sys.path.insert(0, LOWLEVEL)
    try:
        import xen.lowlevel.xc as llxc
    except ImportError as e:
        sys.exit(f"xen.lowlevel.xc not importable from {LOWLEVEL}: {e}")
    return llxc.xc()


def xl_list() -> None:
    subprocess.run(["xl", "list"], check=True, stdout=subprocess.DEVNULL)


def grep_cpuinfo() -> None:
    subprocess.run(["grep", "-E", "vmx|svm", "/proc/cpuinfo"], stdout=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true", help="(the JSON line is always printed)")
    ap.add_argument("--domains", type=int, default=20)
    args = ap.parse_args()

    rows, results = [], []

    def add(name, ours, anchor, goal, what):
        ratio = ours / anchor
        rows.append((name, ours, anchor, ratio, goal))
        results.append({"name": name, "ratio": round(ratio, 4), "goal": goal,
                        "detail": f"{what}: pyxen {ours * 1e3:.4f} ms vs "
                                  f"{anchor * 1e3:.4f} ms per op"})

    in_dom0 = os.path.exists("/dev/xen/privcmd")
    if in_dom0:
        bench_ctrl(args, add)
    else:
        print("no Xen here (/dev/xen/privcmd): domain-list rows skipped", file=sys.stderr)
    ours = per_op(pyxen.cpuid.verdict, 50 if in_dom0 else 2000)
    anchor = per_op(grep_cpuinfo, 20, repeats=3)
    reason = pyxen.cpuid.verdict().reason
    if in_dom0:
        add("cpuid_verdict_cold_vs_grep_subprocess", ours, anchor, 0.01,
            f"pyxen.cpuid.verdict() ({reason}; opens and closes libxenctrl each time) vs "
            "grep -E 'vmx|svm' /proc/cpuinfo subprocess")
        with pyxen.ctrl.open() as xc:
            ours = per_op(lambda: pyxen.cpuid.verdict(xc), 200)
        add("cpuid_verdict_vs_grep_subprocess", ours, anchor, 0.01,
            f"pyxen.cpuid.verdict(xc) ({reason}, open handle) vs grep -E 'vmx|svm' "
            "/proc/cpuinfo subprocess")
    else:
        add("cpuid_verdict_vs_grep_subprocess", ours, anchor, 0.01,
            f"pyxen.cpuid.verdict() ({reason}) vs grep -E 'vmx|svm' /proc/cpuinfo "
            "subprocess")

    print(f"{'name':<40}{'pyxen ms':>12}{'anchor ms':>12}{'ratio':>10}{'goal':>8}  ok")
    for name, ours, anchor, ratio, goal in rows:
        print(f"{name:<40}{ours * 1e3:>12.4f}{anchor * 1e3:>12.4f}{ratio:>10.4f}{goal:>8}  "
              f"{'yes' if ratio <= goal else 'NO'}")
    print(json.dumps({"results": results}))
    return 0


def bench_ctrl(args, add) -> None:
    ll = lowlevel()
    with pyxen.ctrl.open() as xc:
        created = []
        try:
            for label in ("1", str(args.domains)):
                if label != "1":
                    for _ in range(args.domains):
                        created.append(xc.create_domain(max_vcpus=1))
                ndom = len(xc.domains())
                assert ndom == len(ll.domain_getinfo(0, 4096)), "pyxen and lowlevel disagree"
                ours = per_op(xc.domains, 300)
                anchor = per_op(lambda: ll.domain_getinfo(0, 4096), 300)
                sfx = "" if label != "1" else "_1"
                add(f"list_vs_lowlevel{sfx}", ours, anchor, 1.0,
                    f"list of {ndom} domain(s), xc.domains() vs xen.lowlevel.xc "
                    "domain_getinfo(0, 4096)")
                xl = per_op(xl_list, 5, repeats=3)
                add(f"list_vs_xl_subprocess{sfx}", ours, xl, 0.01,
                    f"list of {ndom} domain(s) vs `xl list` subprocess")
            ours = per_op(lambda: xc.domain(0), 1000)
            anchor = per_op(lambda: ll.domain_getinfo(0, 1), 1000)
            add("getinfo_vs_lowlevel", ours, anchor, 1.0,
                "one domain: xc.domain(0) vs domain_getinfo(0, 1)")
        finally:
            for domid in created:
                xc.destroy(domid)


if __name__ == "__main__":
    sys.exit(main())
