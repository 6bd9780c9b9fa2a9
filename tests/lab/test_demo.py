"""`pyxen demo` (what `make demo` runs in the lab): the classic walkthrough end to end."""

import subprocess
import sys


def test_demo_walkthrough():
    r = subprocess.run([sys.executable, "-m", "pyxen", "demo"], capture_output=True,
                       text=True, timeout=1200)
    out = r.stdout
    print(out[-6000:])
    print(r.stderr[-3000:], file=sys.stderr)
    assert r.returncode == 0, out[-3000:] + r.stderr[-2000:]
    for step in ("virt-caps", "info: the hypervisor", "create the PV guest",
                 "console: the guest's marker", "block-attach a file-backed disk",
                 "block-list", "block-detach", "xenstore read", "mem-set", "vcpu-set",
                 "vcpu-pin", "pause", "unpause", "shutdown (and the domain-death notification)",
                 "create the HVM guest",
                 "vnc: where its display is served", "destroy"):
        assert f"-- ok: {step}" in out, step
    assert "FAILED" not in out
    assert "xen_version" in out and "Domain-0" in out
    assert "PYXEN-DEMO-LINUX uname=" in out
    assert "Domain linux created as domid" in out and "Domain winxp created as domid" in out
    assert "127.0.0.1:" in out.split("$ pyxen vnc")[1]
