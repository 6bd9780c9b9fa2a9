"""The HVM verdict and the firmware-MSR decoding as pure functions, over table inputs."""

import pytest

from pyxen.cpuid import Firmware, decide, firmware_from_msr


@pytest.mark.parametrize("tech,value,want", [
    # IA32_FEATURE_CONTROL: bit 0 lock, bit 2 VMXON outside SMX
    ("vmx", 0x0, Firmware.ENABLED),      # unlocked: the OS may still enable it
    ("vmx", 0x1, Firmware.DISABLED),     # locked with VMX off
    ("vmx", 0x3, Firmware.DISABLED),     # locked, only inside SMX (TXT)
    ("vmx", 0x5, Firmware.ENABLED),      # locked with VMX on
    ("vmx", 0x4, Firmware.ENABLED),
    ("vmx", 0xFF00005, Firmware.ENABLED),
    # VM_CR: bit 4 SVMDIS (bit 3 LOCK)
    ("svm", 0x0, Firmware.ENABLED),
    ("svm", 0x8, Firmware.ENABLED),
    ("svm", 0x10, Firmware.DISABLED),
    ("svm", 0x18, Firmware.DISABLED),
])
def test_firmware_from_msr(tech, value, want):
    assert firmware_from_msr(tech, value) == want


def test_firmware_from_msr_rejects_unknown_tech():
    with pytest.raises(ValueError):
        firmware_from_msr("sev", 0)


ALL_CAPS = frozenset({"pv", "hvm", "hap", "shadow", "gnttab-v1", "gnttab-v2"})
NO_HVM = frozenset({"pv", "gnttab-v1", "gnttab-v2"})

TABLE = [
    # vmx, svm, hypervisor, xen_guest, xen caps, firmware -> capable, reason, tech, hap
    # a PV dom0: CPUID and MSRs are not trusted, Xen's physinfo decides
    (False, False, "XenVMMXenVMM", "PV", ALL_CAPS, Firmware.UNKNOWN, True, "physinfo", None, True),
    (False, True, "XenVMMXenVMM", "PV", ALL_CAPS, Firmware.DISABLED, True, "physinfo", "svm", True),
    (True, False, "XenVMMXenVMM", "PV", NO_HVM, Firmware.ENABLED, False, "physinfo", "vmx", False),
    (False, False, "XenVMMXenVMM", "PV", ALL_CAPS - {"hap"}, Firmware.UNKNOWN, True, "physinfo",
     None, False),
    # a PVH dom0 also asks Xen
    (True, False, "XenVMMXenVMM", "PVH", ALL_CAPS, Firmware.UNKNOWN, True, "physinfo", "vmx", True),
    # a PV domU: cannot know
    (False, True, "XenVMMXenVMM", "PV", None, Firmware.UNKNOWN, None, "unknown", "svm", None),
    (False, False, None, "PV", None, Firmware.UNKNOWN, None, "unknown", None, None),
    # bare metal / HVM guest: CPUID, then the firmware MSR
    (False, False, None, None, None, Firmware.NOT_APPLICABLE, False, "cpuid", None, None),
    (False, False, "KVMKVMKVM", None, None, Firmware.UNKNOWN, False, "cpuid", None, None),
    (False, False, "XenVMMXenVMM", "HVM", None, Firmware.UNKNOWN, False, "cpuid", None, None),
    (True, False, None, None, None, Firmware.ENABLED, True, "firmware", "vmx", None),
    (True, False, None, None, None, Firmware.DISABLED, False, "firmware", "vmx", None),
    (True, False, None, None, None, Firmware.UNKNOWN, None, "unknown", "vmx", None),
    (False, True, None, None, None, Firmware.ENABLED, True, "firmware", "svm", None),
    (False, True, None, None, None, Firmware.DISABLED, False, "firmware", "svm", None),
    (False, True, "KVMKVMKVM", None, None, Firmware.UNKNOWN, None, "unknown", "svm", None),
]


@pytest.mark.parametrize("vmx,svm,hv,guest,caps,fw,capable,reason,tech,hap", TABLE)
def test_decide(vmx, svm, hv, guest, caps, fw, capable, reason, tech, hap):
    v = decide(vmx=vmx, svm=svm, hypervisor=hv, xen_guest=guest, xen_virt_caps=caps,
               firmware=fw, firmware_detail="MSR detail")
    assert (v.capable, v.reason, v.technology, v.hap) == (capable, reason, tech, hap)
    assert v.xen_guest == guest
    assert v.detail
    if reason == "firmware":
        assert "MSR detail" in v.detail
    if reason == "cpuid" and hv:
        assert hv in v.detail


def test_decide_never_guesses_without_msr():
    for vmx, svm in ((True, False), (False, True)):
        v = decide(vmx=vmx, svm=svm, hypervisor=None, xen_guest=None)
        assert v.capable is None and v.firmware == "unknown"
