"""Host verbs: virt-caps, info, list, demo."""

from __future__ import annotations

import dataclasses

from . import print_json


def register(sub) -> None:
    p = sub.add_parser("virt-caps", help="can this host run HVM guests (VT-x/AMD-V), and why")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_virt_caps)
    p = sub.add_parser("info", help="hypervisor and host information (like xl info)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("list", help="list domains (xm list's columns)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("demo", help="the lab demo: host facts, Xen info, domain list")
    p.set_defaults(func=cmd_demo)


def cmd_virt_caps(args) -> int:
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


def cmd_info(args) -> int:
    info = _info_dict()
    if args.json:
        print_json(info)
    else:
        for k, v in info.items():
            print(f"{k:<23}: {v}")
    return 0


def _domain_rows() -> list[dict]:
    from .. import ctrl, xenstore
    from ..errors import XenError
    with ctrl.open() as xc:
        doms = xc.domains()
    rows = []
    with xenstore.open() as xs:
        for d in doms:
            try:
                name = xs.read(f"/local/domain/{d.domid}/name").decode("utf-8", "replace")
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


def cmd_list(args) -> int:
    rows = _domain_rows()
    if args.json:
        print_json(rows)
        return 0
    # xl/xm list's layout: "%-40s %5d %5lu %5d     %s  %8.1f"
    print("Name                                        ID   Mem VCPUs\tState\tTime(s)")
    for r in rows:
        name = r["name"] if r["name"] is not None else "(null)"
        print(f"{name:<40} {r['domid']:5d} {r['mem_mib']:5d} {r['vcpus']:5d}     "
              f"{r['state']}  {r['time_s']:8.1f}")
    return 0


def cmd_demo(args) -> int:
    print("== pyxen demo: inside a Xen dom0 ==")
    print("-- pyxen virt-caps: can this host run HVM guests, and why --")
    cmd_virt_caps(args.__class__(json=False))
    print("-- pyxen info (libxenctrl, in-process) --")
    cmd_info(args.__class__(json=False))
    print("-- pyxen list (libxenctrl + libxenstore, in-process) --")
    return cmd_list(args.__class__(json=False))
