"""Host verbs: virt-caps, info, list, demo."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Callable

from . import print_json
from .._text import printable


def register(sub: argparse._SubParsersAction) -> None:
    """Add the host verbs (virt-caps, info, list, demo)."""
    p = sub.add_parser("virt-caps", help="can this host run HVM guests (VT-x/AMD-V), and why")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_virt_caps)
    p = sub.add_parser("info", help="hypervisor and host information (like xl info)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("list", help="list domains (xm list's columns)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("demo", help="the classic walkthrough end to end (in a lab dom0): "
                                    "a PV and an HVM guest through pyxen's verbs")
    p.add_argument("--workdir", default="/tmp/pyxen-demo",
                   help="where the demo writes its configs and disk images")
    p.add_argument("--no-hvm", action="store_true", help="skip the HVM part")
    p.add_argument("--hvm-wait", type=float, default=900, metavar="S",
                   help="how long to wait for the directly built HVM guest's marker on its "
                        "serial port (default 900 s: minutes under TCG, seconds with KVM; "
                        "0: do not wait)")
    p.set_defaults(func=cmd_demo)


def cmd_virt_caps(args: argparse.Namespace) -> int:
    """``pyxen virt-caps``: what this CPU and hypervisor can run (VT-x/AMD-V, HVM, PV)."""
    from .. import cpuid
    ci = cpuid.info()
    v = cpuid.verdict()
    if args.json:
        print_json({"verdict": dataclasses.asdict(v), "cpuid": dataclasses.asdict(ci)})
        return 0
    hv = ci.hypervisor_signature or ("present" if ci.hypervisor_present else "none")
    if ci.xen_version:
        hv += f" (Xen {ci.xen_version[0]}.{ci.xen_version[1]})"
    yes = {True: "yes", False: "no", None: "unknown"}
    print(f"cpu vendor           : {ci.vendor} (family {ci.family} model {ci.model} "
          f"stepping {ci.stepping})")
    print(f"vmx (Intel VT-x)     : {yes[ci.vmx]}")
    print(f"svm (AMD-V)          : {yes[ci.svm]}")
    print(f"hypervisor           : {hv}" + (f" [{ci.view} view]" if ci.view != "native" else ""))
    if v.xen_guest:
        print(f"xen guest type       : {v.xen_guest}")
    print(f"firmware             : {v.firmware}")
    print(f"hvm capable          : {yes[v.capable]} (reason: {v.reason})")
    if v.hap is not None:
        print(f"hap (EPT/NPT)        : {yes[v.hap]}")
    print(f"why                  : {v.detail}")
    return 0


def _info_dict() -> dict:
    from .. import ctrl
    with ctrl.open() as xc:
        v, p, sched = xc.version(), xc.physinfo(), xc.sched_id()
    return {
        "nr_cpus": p.nr_cpus, "max_cpu_id": p.max_cpu_id, "nr_nodes": p.nr_nodes,
        "cores_per_socket": p.cores_per_socket, "threads_per_core": p.threads_per_core,
        "cpu_mhz": f"{p.cpu_khz / 1000:.3f}",
        "hw_caps": ":".join(f"{c:08x}" for c in p.hw_caps),
        "virt_caps": " ".join(p.virt_caps.xl_names()),
        "total_memory": p.total_memory_mb, "free_memory": p.free_memory_mb,
        "xen_major": v.major, "xen_minor": v.minor, "xen_extra": v.extra,
        "xen_version": v.release, "xen_caps": " ".join(v.capabilities),
        "xen_scheduler": sched.xl_name if isinstance(sched, ctrl.Scheduler) else str(sched),
        "xen_pagesize": v.pagesize, "xen_changeset": v.changeset,
        "xen_commandline": v.commandline, "cc_compiler": v.compiler,
        "cc_compile_by": v.compile_by, "cc_compile_domain": v.compile_domain,
        "cc_compile_date": v.compile_date,
    }


def cmd_info(args: argparse.Namespace) -> int:
    """``pyxen info``: the host, as ``xl info``."""
    info = _info_dict()
    if args.json:
        print_json(info)
    else:
        for k, v in info.items():
            print(f"{k:<23}: {v}")
    return 0


def _domain_rows() -> list[dict]:
    from .. import ctrl, xenstore, xspath
    from ..errors import XenError
    with ctrl.open() as xc:
        doms = xc.domains()
    rows = []
    with xenstore.open() as xs:
        for d in doms:
            try:
                name = xspath.name(xs, d.domid)
            except XenError:
                name = None
            rows.append({"name": name, "domid": d.domid,
                         "mem_mib": (d.memory_kb + d.outstanding_kb) // 1024,
                         "max_mem_kb": d.max_memory_kb, "memory_kb": d.memory_kb,
                         "vcpus": d.online_vcpus, "max_vcpus": d.max_vcpus,
                         "state": d.state, "time_s": round(d.cpu_time_s, 1),
                         "cpu_time_ns": d.cpu_time_ns, "uuid": d.uuid, "type": d.type,
                         "cpupool": d.cpupool,
                         "shutdown_reason": d.shutdown_reason.name.lower()
                         if isinstance(d.shutdown_reason, ctrl.ShutdownReason)
                         else d.shutdown_reason})
    return rows


def cmd_list(args: argparse.Namespace) -> int:
    """``pyxen list``: the domains, as ``xl list`` (``-l``/``--json`` for more)."""
    rows = _domain_rows()
    if args.json:
        print_json(rows)
        return 0
    # xl/xm list's layout: "%-40s %5d %5lu %5d     %s  %8.1f"
    print("Name                                        ID   Mem VCPUs\tState\tTime(s)")
    for r in rows:
        name = printable(r["name"]) if r["name"] is not None else "(null)"
        print(f"{name:<40} {r['domid']:5d} {r['mem_mib']:5d} {r['vcpus']:5d}     "
              f"{r['state']}  {r['time_s']:8.1f}")
    return 0


# -- the walkthrough -----------------------------------------------------------------------

GUEST_KIT = "/usr/share/pyxen-lab/guest"
DEMO_MARKER = "PYXEN-DEMO-LINUX"

# The two xm-era configs, adapted to the lab: kernel/ramdisk from the guest kit,
# file-backed disks in the work directory, vifs on xenbr0, small memory (TCG). Legacy keys
# stay where they are harmless so the demo shows how pyxen.config maps them.
PV_CFG = """\
# adapted from the classic PV example (linux)
kernel = '{kit}/vmlinuz'
ramdisk = '{kit}/initrd.cpio.gz'
memory = '256'
vcpus = '2'
root = '/dev/xvda1'
disk = ['format=raw,vdev=xvda,access=rw,target={work}/linux0.img']
name = 'linux'
vif = ['bridge=xenbr0,mac=00:16:3e:38:d4:07']
on_poweroff = 'destroy'
on_reboot = 'restart'
on_crash = 'restart'
extra = 'console=hvc0 init=/sbin/init rootfstype=ext4 rootflags=nobarrier pyxen.action=wait pyxen.marker={marker}'
"""  # noqa: E501 - xl config lines are not wrapped

HVM_CFG = """\
# adapted from the classic HVM example (winxp): hvmloader and qemu-xen of this dom0
# (libxl's defaults), the guest kit's kernel booted directly by qemu-xen
kernel = '{kit}/vmlinuz'
ramdisk = '{kit}/initrd.cpio.gz'
extra = 'console=ttyS0 pyxen.action=wait pyxen.marker=PYXEN-DEMO-WINXP'
builder = 'hvm'
device_model = '/usr/lib/xen/bin/qemu-dm'
device_model_version = 'qemu-xen'
memory = '256'
vcpus = '2'
disk = ['format=raw,vdev=hda,access=rw,target={work}/winxp0.img']
name = 'winxp'
dhcp = 'dhcp'
vif = ['bridge=xenbr0,mac=00:16:3e:38:d4:15']
on_poweroff = 'destroy'
on_reboot = 'restart'
on_crash = 'restart'
boot = 'c'
serial = 'pty'
vnc = 1
vncviewer = 0
vnclisten = '127.0.0.1'
sdl = 0
"""


class _Demo:
    def __init__(self) -> None:
        self.results: list[tuple[str, bool]] = []

    def say(self, text: str) -> None:
        print(text, flush=True)

    def console_marker(self, name: str, marker: str) -> bool:
        """Read ``name``'s PV console non-interactively until the guest kit's marker line."""
        from .. import guest
        domid = guest.resolve(name)
        self.say(f"$ pyxen console {name}   (read non-interactively until {marker})")
        out = guest.console_output(domid, timeout=150, until=marker + " uname=")
        lines = [ln for ln in out.replace("\r", "").splitlines() if marker in ln]
        self.say(lines[-1] if lines else out[-800:])
        return bool(lines)

    def step(self, title: str, argv: list[str] | None = None,
             fn: Callable[[], object] | None = None, required: bool = True) -> bool:
        """Print the command, run it in-process (pyxen.cli.main), record the outcome."""
        import sys
        from . import main
        self.say(f"\n== {title} ==")
        ok = False
        try:
            if argv is not None:
                self.say("$ pyxen " + " ".join(argv))
                sys.stdout.flush()
                try:
                    rc = main(argv)
                except SystemExit as e:  # argparse: unknown verb in this build
                    rc = e.code if isinstance(e.code, int) else 2
                    if rc == 2:
                        self.say(f"(verb {argv[0]!r} is not available in this build of pyxen)")
                ok = rc == 0
                if not ok:
                    self.say(f"[exit status {rc}]")
            else:
                assert fn is not None, "step() runs argv or fn"
                ok = bool(fn())
        except Exception as e:  # noqa: BLE001 - the demo reports and goes on
            self.say(f"[failed: {type(e).__name__}: {e}]")
        sys.stdout.flush()
        sys.stderr.flush()
        self.results.append((title, ok or not required))
        self.say(f"-- {'ok' if ok else ('FAILED' if required else 'skipped')}: {title}")
        return ok


def cmd_demo(args: argparse.Namespace) -> int:
    """``pyxen demo``: the xm/xl walkthrough, in-process."""
    import os
    import time
    from .. import light
    work = args.workdir
    os.makedirs(work, exist_ok=True)
    demo = _Demo()
    t0 = time.monotonic()
    demo.say("== pyxen demo: the classic Xen walkthrough, in-process through libxenctrl, "
             "libxenstore, libxl and libxlutil ==")
    demo.step("virt-caps: can this host run HVM guests, and why", ["virt-caps"])
    demo.step("info: the hypervisor and host (libxenctrl)", ["info"])

    pv_cfg = os.path.join(work, "linux.cfg")
    hvm_cfg = os.path.join(work, "winxp.cfg")
    for img, size in (("linux0.img", 64), ("winxp0.img", 64), ("data.img", 16)):
        with open(os.path.join(work, img), "wb") as imgf:
            imgf.truncate(size << 20)
    with open(pv_cfg, "w") as f:
        f.write(PV_CFG.format(kit=GUEST_KIT, work=work, marker=DEMO_MARKER))
    with open(hvm_cfg, "w") as f:
        f.write(HVM_CFG.format(kit=GUEST_KIT, work=work))

    def show(path: str) -> bool:
        demo.say(f"$ cat {path}")
        with open(path) as f:
            demo.say(f.read().rstrip())
        return True

    created: list[str] = []
    try:
        demo.step("the PV config", fn=lambda: show(pv_cfg))
        if demo.step("create the PV guest (libxl, asynchronous create)", ["create", pv_cfg]):
            created.append("linux")
        demo.step("list (xm list's columns)", ["list"])

        demo.step("console: the guest's marker",
                  fn=lambda: demo.console_marker("linux", DEMO_MARKER))

        data = os.path.join(work, "data.img")
        # pyxen.devices wires the file itself (a loop device by ioctl, no hotplug script)
        demo.step("block-attach a file-backed disk",
                  ["block-attach", "linux", f"format=raw,vdev=xvdb,access=rw,target={data}"])
        demo.step("block-list", ["block-list", "linux"])
        demo.step("block-detach", ["block-detach", "linux", "xvdb"])

        def xs_read() -> bool:
            with light.open() as ctx:
                domid = ctx.domid("linux")
            from . import main
            demo.say(f"$ pyxen xenstore read /local/domain/{domid}/name "
                     f"/local/domain/{domid}/memory/target")
            return main(["xenstore", "read", f"/local/domain/{domid}/name",
                         f"/local/domain/{domid}/memory/target"]) == 0
        demo.step("xenstore read", fn=xs_read)
        demo.step("mem-set (balloon target 192 MiB)", ["mem-set", "linux", "192"])
        demo.step("vcpu-set (1 vcpu online)", ["vcpu-set", "linux", "1"])
        demo.step("vcpu-pin (vcpu 0 on cpu 1 if the host has two)",
                  ["vcpu-pin", "linux", "0", "1" if _ncpus() > 1 else "0"])
        demo.step("vcpu-list", ["vcpu-list", "linux"])
        demo.step("pause", ["pause", "linux"])
        demo.step("list: the guest is paused (p)", ["list"])
        demo.step("unpause", ["unpause", "linux"])

        def shutdown() -> bool:
            from . import main
            demo.say("$ pyxen shutdown -w -t 20 linux")
            rc = main(["shutdown", "-w", "-t", "20", "linux"])
            if rc == 0:
                created.remove("linux")
                return True
            demo.say("(the guest did not act on the shutdown request; destroying it, "
                     "as `xl destroy` would)")
            demo.say("$ pyxen destroy linux")
            if main(["destroy", "linux"]) == 0:
                created.remove("linux")
            return False
        demo.step("shutdown (and the domain-death notification)", fn=shutdown)
        demo.step("list", ["list"])

        if not args.no_hvm:
            demo.step("the HVM config", fn=lambda: show(hvm_cfg))
            if demo.step("create the HVM guest (hvmloader + qemu-xen, VNC on)",
                         ["create", hvm_cfg]):
                created.append("winxp")
            demo.step("list", ["list"])
            demo.step("vnc: where its display is served", ["vnc", "--wait", "60", "winxp"])
            if demo.step("destroy", ["destroy", "winxp"]):
                created.remove("winxp")
            demo.step("list", ["list"])
        _direct_builds(demo, args, created, pv_cfg, hvm_cfg)
    finally:
        if created:
            with light.open() as ctx:
                for name in created:
                    try:
                        if name.startswith("direct-"):  # built without libxl: its devices too
                            _destroy_direct(name)
                        else:
                            ctx.destroy(name)
                    except Exception:  # noqa: BLE001
                        pass
        for name in ("linux0.img", "winxp0.img", "data.img"):
            try:
                os.unlink(os.path.join(work, name))
            except OSError:
                pass

    failed = [t for t, ok in demo.results if not ok]
    demo.say(f"\n== demo finished in {time.monotonic() - t0:.0f}s: "
             f"{len(demo.results) - len(failed)}/{len(demo.results)} steps ok ==")
    for t in failed:
        demo.say(f"FAILED: {t}")
    return 1 if failed else 0


def _direct_builds(demo: "_Demo", args: argparse.Namespace, created: list[str],
                   pv_cfg: str, hvm_cfg: str) -> None:
    """The same two configs built without libxl: ``pyxen build CFG`` (pyxen.toolstack:
    libxenguest, qemu-xen for HVM, the disks and vifs wired in-process)."""
    from .. import guest
    pv_marker, hvm_marker = "PYXEN-DEMO-DIRECT-PV", "PYXEN-DEMO-DIRECT-HVM"

    def devices(name: str) -> None:
        demo.step("list", ["list"])
        demo.step("block-list (what xl block-list shows)", ["block-list", name])
        demo.step("network-list (what xl network-list shows)", ["network-list", name])

    if demo.step("build the PV config directly: pyxen build CFG (no libxl)",
                 ["build", pv_cfg, "name='direct-linux'",
                  f"extra='console=hvc0 pyxen.action=wait pyxen.marker={pv_marker}'"]):
        created.append("direct-linux")
        demo.step("console: the directly built guest's marker",
                  fn=lambda: demo.console_marker("direct-linux", pv_marker))
        devices("direct-linux")
        if demo.step("destroy (domain, disks, vif)", fn=lambda: _destroy_direct("direct-linux")):
            created.remove("direct-linux")
    if args.no_hvm:
        return
    if demo.step("build the HVM config directly: pyxen build CFG (hvmloader + SeaBIOS + "
                 "qemu-xen with the IDE disk and the emulated NIC, VNC on)",
                 ["build", hvm_cfg, "name='direct-winxp'",
                  f"extra='console=ttyS0 pyxen.action=wait pyxen.marker={hvm_marker}'"]):
        created.append("direct-winxp")
        devices("direct-winxp")
        demo.step("vnc: the directly built guest's display", ["vnc", "direct-winxp"])
        if args.hvm_wait > 0:
            def hvm_serial() -> bool:
                domid = guest.resolve("direct-winxp")
                demo.say(f"$ pyxen console --serial direct-winxp   (read non-interactively "
                         f"until {hvm_marker}; up to {args.hvm_wait:.0f} s: hvmloader, "
                         f"SeaBIOS and the kernel run emulated)")
                out = guest.serial_output(domid, timeout=args.hvm_wait,
                                          until=hvm_marker + " uname=")
                lines = [ln for ln in out.replace("\r", "").splitlines() if hvm_marker in ln
                         and "uname=" in ln]
                demo.say(lines[-1] if lines else out[-800:])
                return bool(lines)
            demo.step("serial: the HVM guest's marker", fn=hvm_serial)
        if demo.step("destroy (qemu, domain, disk, vif)",
                     fn=lambda: _destroy_direct("direct-winxp")):
            created.remove("direct-winxp")


def _destroy_direct(name: str) -> bool:
    from .. import guest, toolstack
    print(f"$ pyxen destroy {name}   (pyxen.toolstack.destroy: qemu, domain, devices)")
    toolstack.destroy(guest.resolve(name))
    return True


def _ncpus() -> int:
    from .. import light
    with light.open() as ctx:
        return ctx.max_cpus()
