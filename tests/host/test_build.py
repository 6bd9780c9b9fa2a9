"""The CFFI builder: version detection and the version-gated declaration preprocessor."""

import pytest

from pyxen import _ffi_build as fb


def test_preprocess_selects_by_version():
    text = "a;\n#if XEN >= 4.18\nnew;\n#else\nold;\n#endif\nb;"
    assert fb.preprocess(text, (4, 17)).split() == ["a;", "old;", "b;"]
    assert fb.preprocess(text, (4, 20)).split() == ["a;", "new;", "b;"]


def test_preprocess_keeps_line_numbers():
    text = "x;\n#if XEN < 4.18\ny;\n#endif\nz;"
    assert fb.preprocess(text, (4, 19)).splitlines() == ["x;", "", "", "", "z;"]


@pytest.mark.parametrize("bad", ["#if XEN >= 4.18\nx;", "#endif", "#else"])
def test_preprocess_rejects_unbalanced(bad):
    with pytest.raises(ValueError):
        fb.preprocess(bad, (4, 17))


def test_detected_version_is_the_installed_one():
    import glob
    libs = glob.glob("/usr/lib/x86_64-linux-gnu/libxenctrl.so.*.*")
    assert libs, "libxen-dev is installed by make test"
    assert fb.xen_version() == (4, 17)


def test_extension_records_build_version():
    from pyxen._xen import lib
    assert (lib.pyxen_built_xen_major, lib.pyxen_built_xen_minor) == fb.xen_version()


def test_feature_gate_names_the_release():
    from pyxen import _native
    from pyxen.errors import XenFeatureUnavailable
    assert _native.has("xc_physinfo")
    with pytest.raises(XenFeatureUnavailable, match=r"needs Xen 9\.9"):
        _native.need("xc_no_such_call", "9.9")


def test_hypervisor_of_another_release_is_refused():
    from pyxen import _native
    from pyxen.errors import XenUnavailableError
    major, minor = _native.built_version()
    _native.check_hypervisor(major, minor)
    with pytest.raises(XenUnavailableError, match="rebuild pyxen"):
        _native.check_hypervisor(major, minor + 1)
