"""`pyxen demo` (what `make demo` runs in the lab): the classic walkthrough end to end."""

import os
import subprocess
import sys


def _cmdlines() -> list[list[str]]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")[:-1]
        except OSError:
            continue
        if argv:
            out.append([a.decode(errors="replace") for a in argv])
    return out


def test_demo_walkthrough():
    r = subprocess.run([sys.executable, "-m", "pyxen", "demo", "--hvm-wait", "0"],
                       capture_output=True, text=True, timeout=1200)
    out = r.stdout
    print(out[-6000:])
    print(r.stderr[-3000:], file=sys.stderr)
    assert r.returncode == 0, out[-3000:] + r.stderr[-2000:]
    for step in ("virt-caps", "info: the hypervisor", "create the PV guest",
                 "console: the guest's marker", "block-attach a file-backed disk",
                 "block-list", "block-detach", "xenstore read", "mem-set", "vcpu-set",
                 "vcpu-pin", "pause", "unpause", "shutdown (and the domain-death notification)",
                 "create the HVM guest",
                 "vnc: where its display is served", "destroy",
                 "build the PV config directly: pyxen build CFG (no libxl)",
                 "console: the directly built guest's marker",
                 "block-list (what xl block-list shows)",
                 "network-list (what xl network-list shows)",
                 "destroy (domain, disks, vif)",
                 "build the HVM config directly: pyxen build CFG",
                 "vnc: the directly built guest's display",
                 "destroy (qemu, domain, disk, vif)"):
        assert f"-- ok: {step}" in out, step
    assert "FAILED" not in out
    assert "xen_version" in out and "Domain-0" in out
    assert "PYXEN-DEMO-LINUX uname=" in out
    assert "PYXEN-DEMO-DIRECT-PV uname=" in out
    # the HVM guest's marker on its serial is waited for by the demo itself unless
    # --hvm-wait 0; tests/lab/test_guest_hvm.py boots HVM to its marker
    assert "device model pid" in out.split("$ pyxen build /")[2]
    # the directly built guests' disks and vifs, as xl's block-list and network-list show
    direct = out.split("$ pyxen build /")[1]
    assert "51712" in direct.split("$ pyxen block-list direct-linux")[1].split("$ pyxen")[0]
    assert "00:16:3e:38:d4:07" in direct.split("$ pyxen network-list direct-linux")[1]
    # nothing the demo built is left: no domain, no qemu
    names = {"linux", "winxp", "direct-linux", "direct-winxp"}
    listed = subprocess.run(["xl", "list"], capture_output=True, text=True).stdout
    assert not names & {ln.split()[0] for ln in listed.splitlines()[1:] if ln.strip()}, listed
    assert not [a for a in _cmdlines() if "qemu-system" in a[0] and
                any(a[i] == "-name" and a[i + 1] in names for i in range(len(a) - 1))]
    assert "Domain linux created as domid" in out and "Domain winxp created as domid" in out
    assert "127.0.0.1:" in out.split("$ pyxen vnc")[1]
