"""pyxen.devices pure logic: vdev <-> devid, struct layouts of the ioctls, spec checks that
need no Xen (the parser is libxlutil's own, linked in)."""

import struct

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


def test_loop_structs_match_linux_abi():
    # struct loop_info64 is 232 bytes and struct loop_config 304 on every Linux ABI
    assert D._LOOP_INFO64.size == 232
    assert D._LOOP_CONFIG.size == 304


def test_ifreq_layout():
    r = D._ifreq("xenbr0", "i", 7)
    assert len(r) == 40 and r[:6] == b"xenbr0" and struct.unpack_from("i", r, 16)[0] == 7
    with pytest.raises(D.DeviceSpecError):
        D._ifreq("a" * 16)


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
