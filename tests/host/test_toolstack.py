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


def test_hvm_drives_and_nics_as_libxl_passes_them_to_qemu():
    from pyxen import guest
    c = config.parse_string(
        "name='winxp'\ntype='hvm'\nmemory=256\nboot='d'\nvnc=1\n"
        "disk=['phy:/dev/loop0,hda,w', 'phy:/dev/loop1,ioemu:hdc:cdrom,r', ',hdd:cdrom,r']\n"
        "vif=['bridge=xenbr0,mac=00:16:3E:38:D4:07', 'model=e1000']\n")
    s = toolstack.spec_from_config(c)
    assert [(d.index, d.devid, d.path, d.cdrom) for d in s.disks] == [
        (0, 768, "/dev/loop0", False), (2, 5632, "/dev/loop1", True), (3, 5696, None, True)]
    assert [(n.devid, n.mac, n.model) for n in s.nics] == [
        (0, "00:16:3e:38:d4:07", "rtl8139"), (1, s.nics[1].mac, "e1000")]
    argv = guest.device_model_argv(s, 7, "/qemu")
    j = " ".join(argv)
    assert "-drive file=/dev/loop0,if=ide,index=0,media=disk,format=raw,cache=writeback" in j
    assert ("-drive if=none,readonly=on,id=ide-5632,file=/dev/loop1,format=raw -device "
            "ide-cd,id=ide-5632,drive=ide-5632,bus=ide.1,unit=0") in j
    assert "-drive if=none,readonly=on,id=ide-5696 -device ide-cd,id=ide-5696," in j
    assert ("-device rtl8139,id=nic0,netdev=net0,mac=00:16:3e:38:d4:07 -netdev "
            "type=tap,id=net0,ifname=vif7.0-emu,br=xenbr0,script=no,downscript=no") in j
    assert "-device e1000,id=nic1,netdev=net1" in j and "-boot order=d" in j


@pytest.mark.parametrize("disk", ["phy:/dev/loop0,xvda,w", "phy:/dev/loop0,sda,w",
                                  "format=raw, vdev=hda, target=/dev/a,b"])
def test_hvm_drives_it_cannot_build_refused(disk):
    c = config.parse_string(f"name='w'\ntype='hvm'\ndisk=['{disk}']\n")
    with pytest.raises((UnsupportedConfigError, SpecError, config.ConfigError)):
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
