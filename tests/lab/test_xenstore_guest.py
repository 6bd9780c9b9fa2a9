"""Permissions enforced on an unprivileged connection: pyxen.xenstore running inside a real
guest domain, talking to xenstored over the guest's own ring (/dev/xen/xenbus).

dom0's connection is privileged (xenstored skips permission checks for it) and Xen 4.17
dropped XS_RESTRICT, so the non-owner view is a real domU: the lab's guest kernel with its
busybox initramfs plus an appended cpio holding python3, the files pyxen imports and a new
/init that runs tests/lab/xenstore_guest_probe.py. The dom0 side sets the permissions,
boots the guest and checks what pyxen raised there."""

import json
import os
import pty
import subprocess
import sys
import threading
import time
import uuid

import pyxen.xenstore as X
from pyxen.lab import cpio

import pyxen

HERE = os.path.dirname(os.path.abspath(__file__))
# where the pyxen under test is installed (the lab pip-installs the sdist; see pyxen.lab.vm)
WORK = os.path.dirname(os.path.dirname(os.path.abspath(pyxen.__file__)))
PROBE = os.path.join(HERE, "xenstore_guest_probe.py")

INIT = """#!/bin/sh
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo PYXEN-GUEST-PROBE-START >/dev/hvc0
PYTHONPATH={work}:/usr/lib/python3/dist-packages PYTHONDONTWRITEBYTECODE=1 \\
    /usr/bin/python3 -S {probe} {base} >/dev/hvc0 2>&1
echo PYXEN-GUEST-PROBE-DONE rc=$? >/dev/hvc0
poweroff -f
"""


def _ldd(path):
    out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        for p in parts:
            if p.startswith("/"):
                libs.append(p)
    return libs


def _payload(base: str) -> bytes:
    """A cpio with python3, everything the probe imports, their shared libraries, /init."""
    env = dict(os.environ, PYTHONPATH=f"{WORK}:/usr/lib/python3/dist-packages")
    files = subprocess.run([sys.executable, "-S", PROBE, "--list-files"], env=env, check=True,
                           capture_output=True, text=True).stdout.split()
    files += [os.path.realpath(sys.executable), PROBE]
    # the stdlib landmark and encodings python needs at startup
    std = os.path.dirname(os.__file__)
    files += [os.path.join(std, "os.py")]
    for name in os.listdir(os.path.join(std, "encodings")):
        if name.endswith(".py"):
            files.append(os.path.join(std, "encodings", name))
    sos = [f for f in files if f.endswith(".so") or ".so." in f]
    for so in list(sos) + [os.path.realpath(sys.executable)]:
        files += _ldd(so)
    entries, dirs = [], set()
    for f in sorted(set(files)):
        if not os.path.isfile(f):
            continue
        rel = f.lstrip("/")
        parts = rel.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in dirs:
                dirs.add(d)
                entries.append(cpio.Entry.dir(d))
        with open(f, "rb") as fh:
            entries.append(cpio.Entry.file(rel, fh.read(), 0o755))
    exe = os.path.realpath(sys.executable).lstrip("/")
    if exe != "usr/bin/python3":
        entries.append(cpio.Entry.symlink("usr/bin/python3", os.path.basename(exe)))
    entries.append(cpio.Entry.file("init", INIT.format(work=WORK, probe=PROBE,
                                                       base=base).encode(), 0o755))
    return cpio.write(entries)


def _console(name, sink):
    """Collect the guest's console through `xl console` on a pty (diagnostics only)."""
    os.makedirs("/run/lock", exist_ok=True)      # xenconsole's lock directory
    master, slave = pty.openpty()
    p = subprocess.Popen(["xl", "console", name], stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)

    def pump():
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                break
            if not data:
                break
            sink.append(data.decode("utf-8", "replace"))
    t = threading.Thread(target=pump, daemon=True)
    t.start()
    return p


def test_unprivileged_guest_gets_permission_errors(xs, guest_kit, tmp_path):
    base = f"/pyxen-guest/{uuid.uuid4().hex[:10]}"
    initrd = tmp_path / "initrd.img"
    with open(guest_kit["ramdisk"], "rb") as f:
        kit = f.read()
    kit += b"\0" * (-len(kit) % 512)             # archives start 4-byte aligned
    initrd.write_bytes(kit + _payload(base))      # concatenated archives: ours wins
    name = f"pyxen-xsperm-{uuid.uuid4().hex[:6]}"
    cfg = tmp_path / "g.cfg"
    cfg.write_text(f'name = "{name}"\ntype = "pv"\nkernel = "{guest_kit["kernel"]}"\n'
                   f'ramdisk = "{initrd}"\nmemory = 384\nvcpus = 1\n'
                   'extra = "console=hvc0 quiet"\non_poweroff = "preserve"\n')
    subprocess.run(["xl", "create", "-p", str(cfg)], check=True, capture_output=True)
    console = []
    con = _console(name, console)
    try:
        domid = int(subprocess.run(["xl", "domid", name], capture_output=True, text=True,
                                   check=True).stdout)
        xs.write(f"{base}/secret", b"top secret")
        xs.set_permissions(f"{base}/secret", "n0")
        xs.write(f"{base}/shared", b"readable")
        xs.set_permissions(f"{base}/shared", f"n0 r{domid}")
        xs.write(f"{base}/rw", b"")
        xs.set_permissions(f"{base}/rw", f"n0 b{domid}")
        result_path = f"/local/domain/{domid}/data/pyxen-result"
        xs.watch(result_path, "result")
        subprocess.run(["xl", "unpause", name], check=True)
        t0 = time.monotonic()
        raw = None
        for _ev in xs.events(timeout=360):
            raw = xs.get(result_path)
            if raw:
                break
        elapsed = time.monotonic() - t0
        xl_list = subprocess.run(["xl", "list"], capture_output=True, text=True).stdout
        assert raw, (f"no result from the guest after {elapsed:.0f}s; xl list:\n{xl_list}"
                     "console:\n" + "".join(console)[-4000:])
        r = json.loads(raw)
        print(f"\nguest {domid} answered after {elapsed:.1f}s: {r}")
        assert r["domid"] == domid and r["home"] == f"/local/domain/{domid}"
        eacces = ["XenStorePermissionError", 13, f"{base}/secret", True, False]
        assert r["read_secret"] == eacces
        assert r["ls_secret"] == eacces
        assert r["read_shared"] == ["ok", "readable"]
        assert r["write_shared"] == ["XenStorePermissionError", 13, f"{base}/shared", True,
                                     False]
        assert r["write_rw"] == ["ok", None]
        assert r["perms_shared"] == ["ok", f"n0 r{domid}"]
        assert r["read_missing"][:3] == ["XenStoreNotFound", 2, f"{base}/rw/missing"]
        assert r["read_missing"][4] is True                  # also a KeyError
        assert r["write_dom0"][0] == "XenStorePermissionError"
        assert r["own_data"] == ["ok", None]
        assert xs.read(f"{base}/rw") == b"guest-was-here"
        assert xs.read(f"{base}/shared") == b"readable"
        assert not xs.exists("/local/domain/0/pyxen-guest")
    finally:
        subprocess.run(["xl", "destroy", name], capture_output=True)
        con.kill()
        try:
            xs.rm(base)
        except X.XenStoreError:
            pass
