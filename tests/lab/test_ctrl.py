"""pyxen.ctrl against the real Xen in the lab, compared with what xl/xenstore tools print.

One PV guest (the lab's guest kit, booted with `xl create`) serves the whole module."""

import errno
import json
import os
import subprocess
import sys
import time

import pytest

import pyxen.cpuid
from pyxen.ctrl import (NoSuchDomainError, ShutdownReason, VirtCaps, XenCtrlError,
                        XenInvalidArgumentError)

from conftest import run_tool, xl_guest
from conftest import wait_for as _wait

GUEST_MEM_MB = 128
UNUSED_DOMID = 7001


def xl_list() -> dict[int, dict]:
    """`xl list` rows by domid: name, mem (MiB), vcpus, state, time."""
    rows = {}
    for line in run_tool("xl", "list").splitlines()[1:]:
        parts = line.split()
        name = " ".join(parts[:-5])
        domid, mem, vcpus, state, t = parts[-5:]
        rows[int(domid)] = {"name": name, "mem": int(mem), "vcpus": int(vcpus),
                            "state": state, "time": float(t)}
    return rows


def _cpus(text: str, ncpus: int) -> frozenset:
    if text == "all":
        return frozenset(range(ncpus))
    out = set()
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.update(range(int(a), int(b) + 1))
        else:
            out.add(int(part))
    return frozenset(out)


def xl_vcpu_list(name: str, ncpus: int) -> dict[int, dict]:
    rows = {}
    for line in run_tool("xl", "vcpu-list", name).splitlines()[1:]:
        p = line.split()
        # Name ID VCPU CPU State Time(s) Hard / Soft
        hard, soft = " ".join(p[6:]).split(" / ")
        rows[int(p[2])] = {"cpu": p[3], "state": p[4], "hard": _cpus(hard.strip(), ncpus),
                           "soft": _cpus(soft.strip(), ncpus)}
    return rows


@pytest.fixture(scope="module")
def guest(guest_kit, tmp_path_factory):
    name = f"pyxen-ctrl-{os.getpid()}"
    t0 = time.monotonic()
    with xl_guest(name, guest_kit, tmp_path_factory.mktemp("guest"),
                  memory=GUEST_MEM_MB, vcpus=2) as domid:
        import pyxen.ctrl
        with pyxen.ctrl.open() as xc:
            # the guest kernel brings its second vCPU online once it has booted
            booted = _wait(lambda: xc.domain(domid).online_vcpus == 2, timeout=240)
        assert booted, "guest did not bring 2 vCPUs online within 240 s"
        print(f"\n[guest {name} domid {domid} up after {time.monotonic() - t0:.0f}s]")
        yield {"name": name, "domid": domid}


def test_domain_list_matches_xl_list(xc, guest):
    for _attempt in range(10):
        before = {d.domid: d for d in xc.domains()}
        xl = xl_list()
        after = {d.domid: d for d in xc.domains()}
        assert set(before) == set(xl) == set(after)
        assert guest["domid"] in xl and 0 in xl
        for domid, row in xl.items():
            d = after[domid]
            assert row["mem"] == (d.memory_kb + d.outstanding_kb) // 1024, row
            assert row["vcpus"] == d.online_vcpus, row
            assert before[domid].cpu_time_s - 0.06 <= row["time"] <= d.cpu_time_s + 0.06
            # running/blocked can flip between the calls; the rest may not
            assert row["state"][2:] == d.state[2:], (row, d.state)
        if all(row["state"] in (before[i].state, after[i].state) for i, row in xl.items()):
            return
    raise AssertionError(f"r/b letters never agreed with xl list: {xl}")


def test_guest_typed_info(xc, guest):
    d = xc.domain(guest["domid"])
    assert d.domid == guest["domid"]
    assert not d.hvm and d.type == "pv"
    assert d.online_vcpus == 2 and d.max_vcpu_id == 1 and d.max_vcpus == 2
    assert d.max_memory_kb >= GUEST_MEM_MB * 1024
    assert 64 * 1024 < d.memory_kb <= d.max_memory_kb
    assert not d.shutdown and d.shutdown_reason is None and not d.dying
    assert d.cpu_time_ns > 0
    info = json.loads(run_tool("xl", "list", "-l", guest["name"]))[0]
    assert d.uuid == info["config"]["c_info"]["uuid"]
    assert d.cpupool == 0
    assert xc.domain(0).domid == 0


def test_domains_paginate_past_batch(xc, guest):
    full = [d.domid for d in xc.domains()]
    assert len(full) >= 2
    assert [d.domid for d in xc.domains(batch=1)] == full
    assert [d.domid for d in xc.domains(batch=2)] == full


def test_cli_list_matches_xl(guest):
    out = subprocess.run([sys.executable, "-m", "pyxen", "list"], capture_output=True,
                         text=True, check=True).stdout
    lines = out.splitlines()
    assert lines[0] == run_tool("xl", "list").splitlines()[0]
    ours = {int(l[41:46]): l[:40].rstrip() for l in lines[1:]}
    assert ours[0] == "Domain-0" and ours[guest["domid"]] == guest["name"]
    js = json.loads(subprocess.run([sys.executable, "-m", "pyxen", "list", "--json"],
                                   capture_output=True, text=True, check=True).stdout)
    byid = {r["domid"]: r for r in js}
    assert byid[guest["domid"]]["name"] == guest["name"]
    assert byid[guest["domid"]]["vcpus"] == 2 and byid[guest["domid"]]["type"] == "pv"


def test_pause_unpause(xc, guest):
    domid = guest["domid"]
    xc.pause(domid)
    try:
        assert xc.domain(domid).paused
        assert xc.domain(domid).state[2] == "p"
        assert xl_list()[domid]["state"][2] == "p"
    finally:
        xc.unpause(domid)
    assert not xc.domain(domid).paused
    assert xl_list()[domid]["state"][2] == "-"


def test_max_memory_and_target(xc, guest):
    domid = guest["domid"]
    orig_max = xc.domain(domid).max_memory_kb
    xc.set_max_memory(domid, 200 * 1024)
    assert xc.domain(domid).max_memory_kb == 200 * 1024
    target = 96 * 1024
    xc.set_memory_target(domid, target)
    try:
        assert run_tool("xenstore-read", f"/local/domain/{domid}/memory/target").strip() \
            == str(target)
        assert xc.domain(domid).max_memory_kb == target + 1024
        # the guest's balloon driver honours the target: memory shrinks to it
        shrunk = _wait(lambda: xc.domain(domid).memory_kb <= target + 1024, timeout=120)
        d = xc.domain(domid)
        assert shrunk, f"guest still at {d.memory_kb} kB, target {target}"
        assert abs(xl_list()[domid]["mem"] - d.memory_kb // 1024) <= 1
        assert xl_list()[domid]["mem"] <= 97
    finally:
        xc.set_memory_target(domid, GUEST_MEM_MB * 1024, max_kb=orig_max)
    assert xc.domain(domid).max_memory_kb == orig_max
    assert run_tool("xenstore-read", f"/local/domain/{domid}/memory/target").strip() \
        == str(GUEST_MEM_MB * 1024)


def test_vcpu_info_and_affinity(xc, guest):
    domid, name = guest["domid"], guest["name"]
    ncpus = xc.physinfo().nr_cpus
    allc = frozenset(range(ncpus))
    vcpus = xc.vcpus(domid)
    assert [v.vcpu for v in vcpus] == [0, 1]
    assert all(v.online and v.cpu in allc for v in vcpus)
    xl = xl_vcpu_list(name, ncpus)
    assert set(xl) == {0, 1}
    for v in (0, 1):
        a = xc.get_affinity(domid, v)
        assert a.hard == allc and a.soft == allc  # "all / all" after xl create
        assert xl[v]["hard"] == allc and xl[v]["soft"] == allc
    try:
        got = xc.set_affinity(domid, 0, hard={1})
        assert got.hard == {1}
        got = xc.set_affinity(domid, 1, soft={0})
        assert got.soft == {0}
        assert xc.get_affinity(domid, 0).hard == {1}
        xl = xl_vcpu_list(name, ncpus)
        assert xl[0]["hard"] == {1} and xl[0]["soft"] == allc
        assert xl[1]["hard"] == allc and xl[1]["soft"] == {0}
        # pinned to CPU 1: it runs there from now on
        assert _wait(lambda: xc.vcpu_info(domid, 0).cpu == 1, timeout=30)
        xc.set_affinity(domid, 0, hard={0, 1}, soft={0})
        a = xc.get_affinity(domid, 0)
        assert a.hard == allc and a.soft == {0}
        assert xl_vcpu_list(name, ncpus)[0]["soft"] == {0}
    finally:
        for v in (0, 1):
            xc.set_affinity(domid, v, hard=allc, soft=allc)
    assert xl_vcpu_list(name, ncpus)[0]["hard"] == allc
    with pytest.raises(XenInvalidArgumentError):
        xc.set_affinity(domid, 0, hard={100000})
    with pytest.raises(XenCtrlError) as ei:
        xc.vcpu_info(domid, 5)
    assert ei.value.domid == domid


def test_create_empty_domain_then_destroy(xc):
    before = {d.domid for d in xc.domains()}
    free_before = xc.physinfo().free_memory_kb
    domid = xc.create_domain(max_vcpus=2)
    try:
        assert domid not in before and 0 < domid < 0x7FF0
        d = xc.domain(domid)
        assert d.paused and not d.hvm and d.max_vcpu_id is None and d.memory_kb == 0
        assert domid in {x.domid for x in xc.domains()}
        assert domid in xl_list()
        assert xl_list()[domid]["state"][2] == "p"
        xc.max_vcpus(domid, 2)
        d = xc.domain(domid)
        assert d.max_vcpu_id == 1 and d.online_vcpus == 0
        assert [v.online for v in xc.vcpus(domid)] == [False, False]
        p1 = xc.evtchn_alloc_unbound(domid, 0)
        p2 = xc.evtchn_alloc_unbound(domid, 0)
        assert p1 > 0 and p2 > 0 and p1 != p2
        xc.set_max_memory(domid, 4096)
        assert xc.domain(domid).max_memory_kb == 4096
        xc.shutdown(domid, ShutdownReason.CRASH)
        d = xc.domain(domid)
        assert d.shutdown and d.shutdown_reason is ShutdownReason.CRASH and d.crashed
        assert d.state == "--psc-"
        assert xl_list()[domid]["state"] == "--psc-"
    finally:
        xc.destroy(domid)
    gone = _wait(lambda: domid not in {x.domid for x in xc.domains()}, timeout=30)
    assert gone, "destroyed domain still listed"
    with pytest.raises(NoSuchDomainError):
        xc.domain(domid)
    assert domid not in xl_list()
    assert subprocess.run(["xenstore-ls", f"/local/domain/{domid}"],
                          capture_output=True).returncode != 0
    assert abs(xc.physinfo().free_memory_kb - free_before) < 8 * 1024


def test_create_empty_hvm_domain(xc):
    caps = xc.physinfo().virt_caps
    assert VirtCaps.HVM in caps  # the lab runs QEMU with +svm,+npt
    domid = xc.create_domain(hvm=True, max_vcpus=1)
    try:
        d = xc.domain(domid)
        assert d.hvm and d.type == "hvm" and d.hap == (VirtCaps.HAP in caps)
        xc.max_vcpus(domid, 1)
        assert xc.domain(domid).max_vcpus == 1
    finally:
        xc.destroy(domid)
    assert _wait(lambda: domid not in {x.domid for x in xc.domains()}, timeout=30)


def test_create_with_taken_domid_is_typed(xc, guest):
    taken = guest["domid"]
    with pytest.raises(XenCtrlError) as ei:
        xc.create_domain(domid=taken)
    assert ei.value.errno == errno.EEXIST and ei.value.domid == taken


@pytest.mark.parametrize("op", ["domain", "pause", "unpause", "destroy", "shutdown",
                                "vcpu_info", "get_affinity", "set_max_memory",
                                "evtchn_alloc_unbound", "max_vcpus", "set_affinity"])
def test_nonexistent_domid_is_typed(xc, op):
    assert UNUSED_DOMID not in {d.domid for d in xc.domains()}
    args = {"domain": (), "pause": (), "unpause": (), "destroy": (),
            "shutdown": (ShutdownReason.POWEROFF,), "vcpu_info": (0,), "get_affinity": (0,),
            "set_max_memory": (65536,), "evtchn_alloc_unbound": (0,), "max_vcpus": (1,),
            "set_affinity": (0, {0})}[op]
    with pytest.raises(NoSuchDomainError) as ei:
        getattr(xc, op)(UNUSED_DOMID, *args)
    e = ei.value
    assert e.domid == UNUSED_DOMID and e.errno == errno.ESRCH
    assert str(UNUSED_DOMID) in str(e) and e.call.startswith("xc_")


def test_reserved_domids_never_reach_c(xc):
    for bad in (0x7FF0, 0x7FF2, 0x10000, -1):
        with pytest.raises(XenInvalidArgumentError) as ei:
            xc.pause(bad)
        assert ei.value.domid == bad
    assert not xc.domain(0).paused


def test_sched_and_free_memory(xc):
    info = {k.strip(): v.strip() for k, v in (
        line.split(":", 1) for line in run_tool("xl", "info").splitlines() if ":" in line)}
    assert xc.sched_id().xl_name == info["xen_scheduler"]
    assert abs(xc.free_memory_kb() // 1024 - int(info["free_memory"])) <= 16
    assert xc.max_cpus() >= int(info["nr_cpus"])
    out = subprocess.run([sys.executable, "-m", "pyxen", "info", "--json"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["xen_scheduler"] == info["xen_scheduler"]


def test_constants_match_headers():
    from pyxen._native import xen
    import pyxen.ctrl
    _, lib = xen()
    for name, value in pyxen.ctrl.HEADER_CONSTANTS.items():
        assert getattr(lib, name) == value, name


def test_cpuid_sees_xen_in_pv_dom0(xc):
    ci = pyxen.cpuid.info()
    v = xc.version()
    assert pyxen.cpuid.xen_guest_type() == "PV"
    assert ci.view == "xen-pv"
    assert ci.hypervisor_present
    assert ci.hypervisor_signature == "XenVMMXenVMM"
    assert ci.xen_version == (v.major, v.minor)


def test_virt_caps_verdict_in_dom0(xc):
    v = pyxen.cpuid.verdict()
    assert v.capable is True and v.reason == "physinfo"
    assert v.hap == (VirtCaps.HAP in xc.physinfo().virt_caps)
    assert v.xen_guest == "PV"
    out = json.loads(subprocess.run([sys.executable, "-m", "pyxen", "virt-caps", "--json"],
                                    capture_output=True, text=True, check=True).stdout)
    assert out["verdict"]["capable"] is True and out["verdict"]["reason"] == "physinfo"
    assert out["cpuid"]["hypervisor_signature"] == "XenVMMXenVMM"
    text = subprocess.run([sys.executable, "-m", "pyxen", "virt-caps"], capture_output=True,
                          text=True, check=True).stdout
    assert "hvm capable          : yes (reason: physinfo)" in text


def test_zz_shutdown_guest_with_reason(xc, guest):
    """Last in the module: shut the shared guest down with a reason. xl's monitor sees the
    shutdown and, as on_poweroff=destroy says, destroys it."""
    domid = guest["domid"]
    seen = []

    def gone_or_shut():
        try:
            d = xc.domain(domid)
        except NoSuchDomainError:
            return True
        if d.shutdown:
            seen.append((d.shutdown_reason, d.state))
        return False

    xc.shutdown(domid, ShutdownReason.POWEROFF)
    assert _wait(gone_or_shut, timeout=60), "guest neither shut down nor destroyed"
    assert all(r is ShutdownReason.POWEROFF and s[3:5] == "s-" for r, s in seen), seen
    assert domid not in xl_list()
