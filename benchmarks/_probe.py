import sys, errno
sys.path.insert(0, "/usr/lib/xen-4.17/lib/python")
import pyxs, inspect
print("pyxs", [n for n in dir(pyxs.Client) if not n.startswith("_")])
try:
    print(inspect.signature(pyxs.Client.__init__)); print(inspect.signature(pyxs.Client.transaction))
except Exception as e: print(e)
import xen.lowlevel.xs as L
print("lowlevel", [n for n in dir(L.xs()) if not n.startswith("_")])
import pyxen.xenstore as X
xs = X.open()
for desc, fn in [
  ("tx unknown write", lambda: xs.write("/probe", b"x", 12345)),
  ("set_target 4242", lambda: xs.set_target(4242, 0)),
  ("resume 4242", lambda: xs.resume_domain(4242)),
  ("restricted big write", None),
]:
    if fn is None: continue
    try: fn(); print(desc, "ok")
    except Exception as e: print(desc, type(e).__name__, e)
g = X.open(readonly=True)
try: print(g.read("/local/domain/0/name"))
except Exception as e: print("ro read", e)
try: g.write("/probe7", b"x"); print("restricted write / ok")
except Exception as e: print("restricted write /", type(e).__name__, e)
xs.write("/probe7", b""); xs.set_permissions("/probe7", "n7"); print(xs.get_permissions("/probe7")); print(xs.read("/probe7"))
try: g.write("/probe7/big", b"x"*3000); print("restricted big ok")
except Exception as e: print("restricted big", type(e).__name__, e)
ts=[]
try:
    for i in range(20): ts.append(g.transaction_start())
    print("20 tx ok")
except Exception as e: print("tx quota at", len(ts), type(e).__name__, e)
try:
    for i in range(200): g.watch("/probe7", i)
    print("200 watches ok")
except Exception as e: print("watch quota", type(e).__name__, e)
import time
t0=time.perf_counter()
for i in range(300): xs.read("/local/domain/0/name")
print("pyxen read ms", (time.perf_counter()-t0)/300*1e3)
