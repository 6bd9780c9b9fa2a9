"""pyxen.vchan without Xen: arguments are checked before any C call, and a host with no
Xen devices gets XenUnavailableError (never a crash)."""

import pytest

from pyxen import vchan
from pyxen.errors import (ArgumentError, ArgumentTypeError, PyxenError, VchanError,
                          VchanPeerClosedError, XenUnavailableError, check_vchan)


@pytest.mark.parametrize("args", [(-1, "data/v"), (0x7FF0, "data/v"), (0, ""), (0, "a//b"),
                                  (0, "a/"), (0, "sp ace"), (0, "x" * 50), (0, b"\xff")])
def test_bad_arguments(args):
    for cls in (vchan.Client, vchan.Server):
        with pytest.raises(ArgumentError):
            cls(*args)


@pytest.mark.parametrize("args", [("0", "data/v"), (True, "data/v"), (0, 5), (0, None)])
def test_bad_types(args):
    with pytest.raises(ArgumentTypeError):
        vchan.Client(*args)


def test_ring_sizes_checked():
    with pytest.raises(ArgumentError):
        vchan.Server(0, "data/v", vchan.MAX_RING + 1)
    with pytest.raises(ArgumentError):
        vchan.Server(0, "data/v", 0, -5)
    with pytest.raises(ArgumentTypeError):
        vchan.Server(0, "data/v", 1.5)


def test_no_xen_is_unavailable(tmp_path):
    import os
    if os.path.exists("/dev/xen/evtchn"):
        pytest.skip("this host has Xen devices")
    with pytest.raises(XenUnavailableError):
        vchan.Server(0, "data/v")
    with pytest.raises(XenUnavailableError):
        vchan.Client(0, "/local/domain/0/data/v")


def test_checker():
    import errno
    assert check_vchan(5, 0, "libxenvchan_read") == 5
    with pytest.raises(VchanPeerClosedError) as e:
        check_vchan(-1, 0, "libxenvchan_read", peer_open=False, domid=3, path="p")
    assert e.value.errno == errno.EPIPE and isinstance(e.value, BrokenPipeError)
    with pytest.raises(vchan.VchanNotFoundError) as e2:
        check_vchan(-1, errno.ENOENT, "libxenvchan_client_init", path="data/v")
    assert isinstance(e2.value, FileNotFoundError) and "data/v" in str(e2.value)
    with pytest.raises(VchanError) as e3:
        check_vchan(-1, 0, "libxenvchan_server_init")
    assert e3.value.errno == errno.EIO and isinstance(e3.value, PyxenError)
