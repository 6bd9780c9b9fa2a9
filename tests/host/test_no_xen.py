"""On a machine without Xen: import works; opening a handle names what is missing."""

import os

import pytest

import pyxen
import pyxen.ctrl
import pyxen.xenstore
from pyxen.errors import PyxenError, XenUnavailableError

pytestmark = pytest.mark.skipif(os.path.exists("/dev/xen/privcmd"),
                                reason="this host runs Xen")


def test_import_needs_no_xen():
    assert pyxen.ctrl.VirtCaps.HVM == 1


def test_ctrl_open_raises_typed_error():
    with pytest.raises(XenUnavailableError) as ei:
        pyxen.ctrl.open()
    assert "privcmd" in str(ei.value)
    assert isinstance(ei.value, PyxenError)


def test_xenstore_open_raises_typed_error():
    with pytest.raises(XenUnavailableError) as ei:
        pyxen.xenstore.open()
    assert "xenstored" in str(ei.value)


def test_cli_reports_missing_xen(capsys):
    from pyxen.cli import main
    assert main(["info"]) == 1  # a failed operation, as xl: 2 is for usage errors only
    assert "privcmd" in capsys.readouterr().err


def test_hypfs_open_raises_typed_error():
    import pyxen.hypfs
    with pytest.raises(XenUnavailableError, match="hypfs"):
        pyxen.hypfs.open()


@pytest.mark.parametrize("bad", ["relative", "/a\0b", "/é", "/" + "a" * 1024, b"/x", None])
def test_hypfs_paths_checked_before_c(bad):
    import pyxen.hypfs
    with pytest.raises(pyxen.hypfs.HypfsPathError):
        pyxen.hypfs._path(bad)
