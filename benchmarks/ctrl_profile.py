"""Per-call costs of pyxen.cpuid / pyxen.ctrl pieces in a dom0 (lab): where verdict() and
domain listing spend their time. Leaves a Ctrl handle open on purpose: exit must be clean.

    python -m pyxen.lab run -- python3 benchmarks/ctrl_profile.py
"""

import cProfile
import os
import pstats
import sys
import timeit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pyxen.cpuid as c  # noqa: E402
import pyxen.ctrl as ctrl  # noqa: E402

xc = ctrl.open()
N = 200
CASES = [
    ("cpuid", lambda: c.cpuid(0)),
    ("xen_pv_cpuid", lambda: c.xen_pv_cpuid(0x40000000)),
    ("guest_type", c.xen_guest_type),
    ("info", lambda: c.info("PV")),
    ("xl_names", lambda: xc.physinfo().virt_caps.xl_names()),
    ("physinfo", xc.physinfo),
    ("verdict(xc)", lambda: c.verdict(xc)),
    ("domain(0)", lambda: xc.domain(0)),
    ("domains", xc.domains),
    ("open+close", lambda: ctrl.open().close()),
]
for name, fn in CASES:
    print(f"{name:<14}{timeit.timeit(fn, number=N) / N * 1e6:10.1f} us")
cProfile.run("for _ in range(200): c.verdict(xc)", "/tmp/pyxen-ctrl-profile")
pstats.Stats("/tmp/pyxen-ctrl-profile").sort_stats("tottime").print_stats(10)
