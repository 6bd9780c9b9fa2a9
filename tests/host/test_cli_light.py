"""Pure logic behind the libxl verbs and the demo: cpu lists, memory sizes, the demo's
adapted configs through the real libxlutil parser (no Xen needed)."""

import warnings

import pytest

from pyxen.cli.host import GUEST_KIT, HVM_CFG, PV_CFG
from pyxen.cli.light import UsageError, _cpulist, parse_mem_kb
from pyxen.config import ConfigError, ConfigWarning, DomainType, parse_string
from pyxen.light import LibxlInvalid, parse_cpus


@pytest.mark.parametrize("text,want", [
    ("all", {0, 1, 2, 3}), ("0", {0}), ("1-3", {1, 2, 3}), ("0,2", {0, 2}),
    ("all,^1", {0, 2, 3}), ("0-3,^0-1", {2, 3}), (" 2 ", {2}),
])
def test_parse_cpus(text, want):
    assert parse_cpus(text, 4) == frozenset(want)


@pytest.mark.parametrize("text", ["", "x", "4", "3-1", "-1", "0,,1", "^all", "1-x"])
def test_parse_cpus_rejects(text):
    with pytest.raises(LibxlInvalid):
        parse_cpus(text, 4)


def test_cpulist_like_xl():
    assert _cpulist({0, 1, 2, 3}, 4) == "all"
    assert _cpulist({1}, 4) == "1"
    assert _cpulist({0, 1, 3}, 4) == "0-1,3"


def test_parse_mem_kb():
    assert parse_mem_kb("256") == 256 * 1024
    assert parse_mem_kb("1g") == 1 << 20
    assert parse_mem_kb("512k") == 512
    with pytest.raises(UsageError):
        parse_mem_kb("lots")


def _demo(text):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConfigWarning)
        cfg = parse_string(text.format(kit=GUEST_KIT, work="/tmp/w", marker="M"))
    return cfg, [str(w.message) for w in caught]


def test_demo_pv_config():
    cfg, _ = _demo(PV_CFG)
    assert cfg.name == "linux" and cfg.type == DomainType.PV
    assert cfg.memory == 256 and cfg.vcpus == 2
    assert cfg.cmdline.startswith("root=/dev/xvda1 console=hvc0")
    assert [d.pdev_path for d in cfg.disks] == ["/tmp/w/linux0.img"]
    assert cfg.nics[0].mac == "00:16:3e:38:d4:07" and cfg.nics[0].bridge == "xenbr0"


def test_demo_hvm_config_maps_legacy_keys():
    cfg, warned = _demo(HVM_CFG)
    assert cfg.name == "winxp" and cfg.type == DomainType.HVM
    assert cfg.vnc is True and cfg.vnclisten == "127.0.0.1" and cfg.sdl is False
    assert cfg.device_model_version == "qemu-xen"
    assert cfg.to_libxl_json()["b_info"]["device_model_version"] == "qemu_xen"
    assert {i.key for i in cfg.ignored} >= {"device_model", "dhcp", "vncviewer", "builder"}
    assert any("device_model" in w for w in warned)


def test_device_model_keys():
    cfg = parse_string("name='x'\ntype='hvm'\ndevice_model_version='qemu-xen-traditional'\n"
                       "device_model_override='/opt/qemu'\n")
    b = cfg.to_libxl_json()["b_info"]
    assert b["device_model_version"] == "qemu_xen_traditional"
    assert b["device_model"] == "/opt/qemu"
    with pytest.raises(ConfigError) as ei:
        parse_string("name='x'\ntype='hvm'\ndevice_model_version='qemu-dm'\n")
    assert ei.value.key == "device_model_version" and ei.value.line == 3
