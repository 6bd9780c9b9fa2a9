"""pyxen.devices pure logic: vdev <-> devid, struct layouts of the ioctls, spec checks that
need no Xen (the parser is libxlutil's own, linked in)."""

import errno
import os
import socket

import pytest

import pyxen.devices as D


@pytest.mark.parametrize("vdev,devid", [
    ("xvda", 51712), ("xvdb", 51728), ("xvde", 51776), ("xvdg", 51808), ("xvdp", 51952),
    ("xvda1", 51713), ("xvdp15", 51967),
    # the extended encoding past 15 disks or 15 partitions
    ("xvdq", (1 << 28) | (16 << 8)), ("xvdz", (1 << 28) | (25 << 8)),
    ("xvdaa", (1 << 28) | (26 << 8)), ("xvdab3", (1 << 28) | (27 << 8) | 3),
    ("xvda16", (1 << 28) | 16),
    ("hda", 768), ("hdb", 832), ("hdc", 5632), ("hdd", 5696), ("hda1", 769),
    ("sda", 2048), ("sdb", 2064), ("sdp15", 2303),
])
def test_vdev_devid(vdev, devid):
    assert D.vdev_to_devid(vdev) == devid
    assert D.devid_to_vdev(devid) == vdev


def test_dnpm_and_numbers():
    assert D.vdev_to_devid("d0p0") == 51712
    assert D.vdev_to_devid("d4p1") == 51777
    assert D.vdev_to_devid("d16p0") == (1 << 28) | (16 << 8)
    assert D.vdev_to_devid("51712") == 51712
    assert D.devid_to_vdev(12345) == "12345"


@pytest.mark.parametrize("bad", ["", "xvd", "xyz", "hde", "sdq", "hda64", "sda16",
                                 "xvda0", "xvda256", "xvdA", "xvda-1", "99999999999"])
def test_bad_vdev(bad):
    with pytest.raises(D.DeviceSpecError):
        D.vdev_to_devid(bad)


def test_letters_round_trip():
    for i in range(0, 2000):
        assert D._letters_to_index(D._index_to_letters(i)) == i


def test_loop_structs_are_the_compilers():
    """Layouts and request numbers come from the kernel headers (pyxen._linux), matching
    Linux's stable uapi: struct loop_info64 232 bytes, struct loop_config 304."""
    ffi, lib = D._lx()
    assert ffi.sizeof("struct loop_info64") == 232 and ffi.sizeof("struct loop_config") == 304
    assert ffi.offsetof("struct loop_info64", "lo_flags") == 52
    assert ffi.offsetof("struct loop_config", "info") == 8
    assert (lib.LOOP_SET_FD, lib.LOOP_CONFIGURE, lib.LOOP_CTL_GET_FREE) == (0x4C00, 0x4C0A,
                                                                          0x4C82)
    assert (lib.SIOCBRADDIF, lib.SIOCBRDELIF, lib.IFNAMSIZ) == (0x89A2, 0x89A3, 16)
    info = D._loop_info("/x/" + "f" * 100, 5)
    assert info.lo_flags == 5
    name = bytes(ffi.buffer(info.lo_file_name))
    assert len(name) == 64 and name.startswith(b"/x/fff") and name[-1:] == b"\0"


def test_interface_ioctls_on_this_host():
    """The struct ifreq helpers against the host's own kernel: loopback is up and has index
    1; a missing interface is ENODEV; a name too long for IFNAMSIZ never reaches the kernel."""
    assert D.if_is_up("lo")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        assert D._ifindex(s, "lo") == 1
        with pytest.raises(OSError) as e:
            D._flags(s, "pyxen-none0")
        assert e.value.errno == errno.ENODEV
        with pytest.raises(D.DeviceSpecError):
            D._flags(s, "a" * 16)


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/loop-control"),
                    reason="needs root and the loop driver")
def test_loop_device_round_trip_on_this_host(tmp_path):
    """LOOP_CTL_GET_FREE + LOOP_CONFIGURE through pyxen._linux bind a file read-only; the
    kernel reports the file's st_dev:st_ino back; LOOP_CLR_FD frees it."""
    f = tmp_path / "disk.img"
    f.write_bytes(b"\xab" * 65536)
    loop, fd = D.LoopDevice.attach(str(f), readonly=True, autoclear=False)
    try:
        st = f.stat()
        assert loop.backing_id == f"{st.st_dev}:{st.st_ino}"
        assert D.LoopDevice.backing_id_of(loop.path) == loop.backing_id
        assert D.LoopDevice.backing_file_of(loop.path) == str(f)
        with open(f"/sys/block/loop{loop.number}/ro") as ro:
            assert ro.read().strip() == "1"
        assert os.pread(fd, 4, 0) == b"\xab" * 4
        assert D.Devices._read_only(loop.path, os.stat(loop.path))
    finally:
        os.close(fd)
        assert D.LoopDevice.release(loop.path)
    assert D.LoopDevice.backing_id_of(loop.path) is None
    assert not D.LoopDevice.release(loop.path)


def test_states():
    assert D.XenbusState.parse(b"4") is D.XenbusState.CONNECTED
    assert D.XenbusState.parse(None) is None and D.XenbusState.parse(b"x") is None


def test_errors_are_typed():
    assert issubclass(D.DeviceSpecError, ValueError)
    assert issubclass(D.DomainNotFoundError, LookupError)
    assert issubclass(D.BackendDomainError, LookupError)
    assert issubclass(D.DeviceTimeout, TimeoutError)
    from pyxen.errors import PyxenError
    for e in (D.DeviceSpecError, D.DeviceBusyError, D.DeviceTimeout, D.HotplugError):
        assert issubclass(e, PyxenError)


def test_rows_match_xl_format():
    from pyxen.config import DiskSpec, NicSpec
    d = D.DiskInfo(domid=1, devid=51776, vdev="xvde", backend_id=0, frontend_id=1,
                   state=D.XenbusState.CONNECTED, backend_state=D.XenbusState.CONNECTED,
                   evtch=8, rref=8, backend="/local/domain/0/backend/vbd/1/51776",
                   frontend="/local/domain/1/device/vbd/51776", disk=DiskSpec(vdev="xvde"))
    # as printed by `xl block-list` (Xen 4.17, seen in the lab)
    assert d.row().rstrip() == "51776 0   1      4     8      8        " \
        "/local/domain/0/backend/vbd/1/51776"
    n = D.NicInfo(domid=1, devid=0, backend_id=0, mac="00:16:3e:70:f1:91",
                  state=D.XenbusState.CONNECTED, backend_state=None, evtch=-1, rref_tx=525,
                  rref_rx=526, backend="/local/domain/0/backend/vif/1/0",
                  frontend="/local/domain/1/device/vif/0", bridge="xenbr0", ifname="vif1.0",
                  nic=NicSpec(mac="00:16:3e:70:f1:91"))
    assert n.row().rstrip() == "0   0  00:16:3e:70:f1:91     0     4     -1   525/526" \
        "         /local/domain/0/backend/vif/1/0"
    assert D.DISK_HEADER.rstrip() == "Vdev  BE  handle state evt-ch ring-ref BE-path"
