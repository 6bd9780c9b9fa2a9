"""Per-call costs of pyxen.cpuid/pyxen.ctrl pieces in a dom0 (lab): where verdict() and
domain listing spend their time. Leaves a Ctrl handle open on purpose: exit must be clean."""
import cProfile, pstats, timeit, sys
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.dirname(__import__("os").path.abspath(__file__))))
import pyxen.cpuid as c, pyxen.ctrl as ctrl
xc = ctrl.open()
n = 200
for name, f in [("cpuid", lambda: c.cpuid(0)), ("xen_pv_cpuid", lambda: c.xen_pv_cpuid(0x40000000)),
                ("guest_type", c.xen_guest_type), ("info", lambda: c.info("PV")), ("xl_names", lambda: xc.physinfo().virt_caps.xl_names()),
                ("physinfo", xc.physinfo), ("verdict(xc)", lambda: c.verdict(xc)),
                ("domain(0)", lambda: xc.domain(0)), ("domains", xc.domains),
                ("open+close", lambda: ctrl.open().close())]:
    print(f"{name:<14}{timeit.timeit(f, number=n) / n * 1e6:10.1f} us")
cProfile.run("for _ in range(200): c.verdict(xc)", "/tmp/p")
pstats.Stats("/tmp/p").sort_stats("tottime").print_stats(10)
