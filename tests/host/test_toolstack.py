"""pyxen.toolstack's config → build spec (pure logic): what the direct builder takes from an
xl.cfg, and every key it does not build refused by name, never dropped."""

import warnings

import pytest

from pyxen import config, toolstack
from pyxen.errors import PyxenError, SpecError, UnsupportedConfigError

BASE = "name = 'ts'\nkernel = '/k'\nramdisk = '/r'\nmemory = 96\nvcpus = 2\n"


def cfg(extra: str = "") -> config.DomainConfig:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", config.ConfigWarning)
        return config.parse_string(BASE + extra)


def test_pv_spec_takes_what_xl_would():
    s = toolstack.spec_from_config(cfg("root = '/dev/xvda1'\nextra = 'console=hvc0'\n"
                                       "on_poweroff = 'preserve'\non_reboot = 'destroy'\n"
                                       "maxmem = 128\n"))
    assert (s.name, s.kernel, s.ramdisk, s.memory, s.maxmem, s.vcpus) == \
        ("ts", "/k", "/r", 96, 128, 2)
    assert s.full_cmdline == "root=/dev/xvda1 console=hvc0"
    assert s.on_poweroff.xl == "preserve" and s.on_reboot.xl == "destroy"
    assert s.type == "pv" and s.uuid


def test_hvm_spec_options():
    s = toolstack.spec_from_config(config.parse_string(
        "name='w'\ntype='hvm'\nmemory=256\nvnc=1\nvnclisten='0.0.0.0'\nvncdisplay=3\n"
        "boot='dc'\nstdvga=1\nserial='pty'\n"))
    assert s.hvm and s.vnc and s.vnclisten == "0.0.0.0" and s.vncdisplay == 3
    assert s.boot == "dc" and s.vga == "stdvga" and s.serial == "pty"


@pytest.mark.parametrize("extra,key", [
    ("cpus = '0'\n", "cpus"),
    ("bootloader = 'pygrub'\n", "bootloader"),
    ("maxvcpus = 4\n", "maxvcpus"),
    ("on_watchdog = 'preserve'\n", "on_watchdog"),
    ("disk = ['format=qcow2, vdev=xvda, target=/x.qcow2']\n", "disk"),
    ("disk = ['backendtype=qdisk, vdev=xvda, target=/x.img']\n", "disk"),
    ("disk = ['vdev=xvda, script=block-iscsi, target=iqn']\n", "disk"),
    ("disk = [',xvdc:cdrom,r']\n", "disk"),
    ("vif = ['bridge=xenbr0, script=vif-route']\n", "vif"),
    ("vif = ['type=ioemu']\n", "vif"),
    ("device_model_version = 'qemu-xen-traditional'\n", "device_model_version"),
])
def test_unbuilt_keys_refused_by_name(extra, key):
    with pytest.raises(UnsupportedConfigError) as ei:
        toolstack.spec_from_config(cfg(extra))
    assert ei.value.key == key and key in str(ei.value)
    assert isinstance(ei.value, (SpecError, PyxenError))


def test_hvm_devices_refused_not_dropped():
    c = config.parse_string("name='w'\ntype='hvm'\ndisk=['phy:/dev/loop0,hda,w']\n")
    with pytest.raises(UnsupportedConfigError, match="emulated disks"):
        toolstack.spec_from_config(c)


def test_pv_without_kernel_and_wrong_types():
    with pytest.raises(SpecError, match="kernel"):
        toolstack.spec_from_config(config.parse_string("name='x'\n"))
    with pytest.raises(SpecError):
        toolstack.spec_from_config("name='x'")  # type: ignore[arg-type]


def test_extra_config_lines_win_as_in_xl(tmp_path):
    p = tmp_path / "a.cfg"
    p.write_text(BASE)
    c = config.parse_file(p, extra=["memory=200", "name='other'"])
    assert (c.name, c.memory) == ("other", 200)
    with pytest.raises(config.ConfigTypeError):
        config.parse_file(p, extra="memory=1")  # type: ignore[arg-type]
    with pytest.raises(config.ConfigTypeError):
        config.parse_file(p, extra=["a=1\nb=2"])
    with pytest.raises(config.ConfigError):
        config.parse_file(p, extra=["memory="])
