"""Pure parts of pyxen.ctrl: enum values equal the compiled header constants (the host has
libxen-dev, so pyxen._xen loads without a hypervisor), xl's State letters, domid checks."""

import errno

import pytest

import pyxen.ctrl as ctrl


def _lib():
    try:
        from pyxen._native import xen
        return xen()[1]
    except Exception as e:  # pragma: no cover - build problem
        pytest.skip(f"pyxen._xen not built: {e}")


def test_python_constants_match_compiled_headers():
    lib = _lib()
    for name, value in ctrl.HEADER_CONSTANTS.items():
        assert getattr(lib, name) == value, name


def test_shutdown_letters():
    assert [r.xl_letter for r in ctrl.ShutdownReason] == list("-rscwS")


def _dom(**kw):
    base = dict(domid=5, uuid="0" * 36, flags=ctrl.DomainFlags(0), hvm=False, hap=False,
                dying=False, shutdown=False, paused=False, blocked=False, running=False,
                shutdown_reason=None, memory_kb=0, max_memory_kb=0, outstanding_kb=0,
                shared_kb=0, online_vcpus=0, max_vcpu_id=None, cpu_time_ns=0, cpupool=0,
                ssidref=0)
    base.update(kw)
    return ctrl.DomainInfo(**base)


@pytest.mark.parametrize("kw,state", [
    ({}, "------"),
    ({"running": True}, "r-----"),
    ({"blocked": True}, "-b----"),
    ({"paused": True, "blocked": True}, "-bp---"),
    ({"shutdown": True, "shutdown_reason": ctrl.ShutdownReason.POWEROFF}, "---s--"),
    ({"shutdown": True, "shutdown_reason": ctrl.ShutdownReason.REBOOT}, "---sr-"),
    ({"shutdown": True, "shutdown_reason": ctrl.ShutdownReason.CRASH, "paused": True},
     "--psc-"),
    ({"shutdown": True, "shutdown_reason": ctrl.ShutdownReason.WATCHDOG}, "---sw-"),
    ({"shutdown": True, "shutdown_reason": ctrl.ShutdownReason.SOFT_RESET}, "---sS-"),
    ({"shutdown": True, "shutdown_reason": 77}, "---s?-"),
    ({"dying": True}, "-----d"),
])
def test_state_letters_as_xl(kw, state):
    assert _dom(**kw).state == state


def test_domid_checked_before_c():
    for bad in (-1, 0x7FF0, 0x7FF4, 0x10000, 1 << 40):
        with pytest.raises(ctrl.XenInvalidArgumentError) as ei:
            ctrl._domid(bad, "xc_domain_pause")
        assert ei.value.domid == bad and ei.value.errno == errno.EINVAL
        assert str(bad) in str(ei.value)
    with pytest.raises(TypeError):
        ctrl._domid("1", "xc_domain_pause")
    assert ctrl._domid(0x7FEF, "x") == 0x7FEF


def test_error_classes():
    e = ctrl._error(errno.ESRCH, "xc_domain_pause", 42)
    assert isinstance(e, ctrl.NoSuchDomainError) and isinstance(e, LookupError)
    assert isinstance(e, OSError) and e.domid == 42 and e.call == "xc_domain_pause"
    assert isinstance(ctrl._error(errno.EPERM, "c"), PermissionError)
    assert isinstance(ctrl._error(errno.EACCES, "c"), ctrl.XenPermissionError)
    assert isinstance(ctrl._error(errno.EINVAL, "c"), ValueError)
    assert isinstance(ctrl._error(errno.ENOMEM, "c"), ctrl.XenOutOfMemoryError)
    assert type(ctrl._error(errno.EBUSY, "c")) is ctrl.XenCtrlError


def test_light_state_letters_as_xl():
    """light.DomainInfo prints the same State column as ctrl's (it showed only 'c' as a
    reason letter: a rebooting domain printed ---s-- where xl prints ---sr-)."""
    import pyxen.light as light
    R = light.ShutdownReason
    base = dict(domid=5, name="g", uuid="0" * 36, type=None, running=False, blocked=False,
                paused=False, shutdown=False, dying=False, shutdown_reason=None,
                current_memkb=0, outstanding_memkb=0, max_memkb=0, cpu_time=0,
                vcpu_online=1, vcpu_max_id=0, cpupool=0)
    for reason, state in ((R.POWEROFF, "---s--"), (R.REBOOT, "---sr-"), (R.SUSPEND, "---ss-"),
                          (R.CRASH, "---sc-"), (R.WATCHDOG, "---sw-"),
                          (R.SOFT_RESET, "---sS-"), (None, "---s?-")):
        assert light.DomainInfo(**dict(base, shutdown=True, shutdown_reason=reason)).state \
            == state
    assert light.DomainInfo(**dict(base, running=True, shutdown_reason=R.POWEROFF)).state \
        == "r-----"
