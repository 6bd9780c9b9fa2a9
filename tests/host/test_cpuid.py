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
