"""CPUID through our C helper agrees with what the kernel reports in /proc/cpuinfo."""

import pyxen.cpuid as cpuid


def _proc():
    info = {}
    with open("/proc/cpuinfo") as f:
        for line in f:
            if ":" in line:
                k, v = line.split(":", 1)
                info.setdefault(k.strip(), v.strip())
    return info


def test_vendor_matches():
    assert cpuid.vendor() == _proc()["vendor_id"]


def test_flags_match():
    flags = set(_proc()["flags"].split())
    ci = cpuid.info()
    assert ci.vmx == ("vmx" in flags)
    assert ci.svm == ("svm" in flags)
    assert ci.hypervisor_present == ("hypervisor" in flags)


def test_family_model_match():
    p = _proc()
    ci = cpuid.info()
    assert ci.family == int(p["cpu family"])
    assert ci.model == int(p["model"])
    assert ci.stepping == int(p["stepping"])


def test_hypervisor_signature_only_when_present():
    ci = cpuid.info()
    if not ci.hypervisor_present:
        assert ci.hypervisor_signature is None
    if ci.hypervisor_signature is not None:
        assert 0x40000000 <= ci.hypervisor_leaf <= 0x4000FF00
        assert ci.hypervisor_leaf % 0x100 == 0


def test_xen_pv_view_absent_off_xen_pv():
    # Off a Xen PV domain the forced-emulation prefix faults; the helper catches the
    # SIGILL and says "not here" instead of killing the process.
    if cpuid.xen_guest_type() == "PV":
        assert cpuid.xen_pv_cpuid(0x40000000) is not None
    else:
        assert cpuid.xen_pv_cpuid(0x40000000) is None
        assert cpuid.xen_pv_cpuid(0) is None
        assert cpuid.info().view == "native"


def test_verdict_consistent_with_cpuid():
    ci = cpuid.info()
    v = cpuid.verdict()
    assert v.reason in {"physinfo", "cpuid", "firmware", "unknown"}
    if v.reason == "cpuid":
        assert not ci.vmx and not ci.svm and v.capable is False
    if ci.vmx or ci.svm:
        assert v.reason != "cpuid"
    assert v.detail
