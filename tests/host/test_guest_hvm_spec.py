"""Pure parts of pyxen.guest's HVM build: spec validation, qemu-xen's command line (as
libxl builds it), the CLI options. No hypervisor needed."""

import pytest

import pyxen.guest as guest
from pyxen.cli import guest as cli_guest

DM = "/usr/libexec/xen-qemu-system-i386"


def hvm(**kw):
    base = dict(name="h", type="hvm", kernel="/boot/vmlinuz", ramdisk="/boot/initrd",
                cmdline="console=ttyS0", memory=128)
    return guest.BuildSpec(**{**base, **kw})


def pairs(argv):
    return list(zip(argv, argv[1:]))


def test_hvm_spec_validates_and_defaults():
    s = hvm().validated()
    assert s.hvm and s.serial == "file" and s.video_mb == 0 and not s.vnc
    assert guest.BuildSpec(name="h", type="hvm").validated().kernel is None
    assert hvm(vga="stdvga").video_mb == 16 and hvm(vga="cirrus", videoram=4).video_mb == 4
    assert not guest.BuildSpec(name="p", kernel="/k").hvm


@pytest.mark.parametrize("bad", [
    dict(type="hvm2"), dict(maxmem=256), dict(bios="ovmf"), dict(vga="qxl"),
    dict(videoram=0), dict(boot="x"), dict(boot=""), dict(kernel=None),
    dict(vncdisplay=100), dict(vncdisplay=True), dict(device_model_args="-S"),
    dict(device_model_args=("a\0b",)), dict(vnclisten="0.0.0.0,x"), dict(serial="a\0"),
])
def test_bad_hvm_specs_raise_spec_error(bad):
    with pytest.raises(guest.SpecError):
        hvm(**bad).validated()


def test_device_model_argv_like_libxl():
    a = guest.device_model_argv(hvm(vcpus=2).validated(), 7, DM)
    assert a[:4] == [DM, "-xen-domid", "7", "-no-shutdown"]
    assert ("-chardev", "socket,id=libxl-cmd,path=/var/run/xen/qmp-libxl-7,"
            "server=on,wait=off") in pairs(a)
    assert ("-mon", "chardev=libxl-cmd,mode=control") in pairs(a)
    assert "-nodefaults" in a and "-no-user-config" in a
    assert ("-vnc", "none") in pairs(a) and ("-display", "none") in pairs(a)
    assert ("-kernel", "/boot/vmlinuz") in pairs(a) and ("-initrd", "/boot/initrd") in pairs(a)
    assert ("-append", "console=ttyS0") in pairs(a)
    assert ("-serial", "file:/var/run/xen/pyxen-serial-7.log") in pairs(a)
    assert ("-smp", "2") in pairs(a)
    assert a[-4:] == ["-machine", "xenfv,suppress-vmdesc=on", "-m", "128"]
    assert "-device" not in a and "-boot" not in a


def test_device_model_argv_display_options():
    a = guest.device_model_argv(hvm(vnc=True, vncdisplay=3, sdl=True, vga="stdvga",
                                    boot="dc", serial="pty", kernel=None, ramdisk=None,
                                    cmdline="", device_model_args=("-S",)).validated(), 1, DM)
    assert ("-vnc", "127.0.0.1:3,to=99") in pairs(a)
    assert ("-display", "sdl") in pairs(a)
    assert ("-device", "VGA,vgamem_mb=16") in pairs(a)
    assert ("-boot", "order=dc") in pairs(a) and ("-serial", "pty") in pairs(a)
    assert "-kernel" not in a and "-append" not in a and "-S" in a
    b = guest.device_model_argv(hvm(vnc=True, vnclisten="0.0.0.0:5", vncunused=False,
                                    serial="none").validated(), 1, DM)
    assert ("-vnc", "0.0.0.0:5") in pairs(b) and "-serial" not in b


def test_cli_build_hvm_options():
    import argparse
    p = argparse.ArgumentParser()
    cli_guest.register(p.add_subparsers())
    args = p.parse_args(["build", "--name", "h", "--hvm", "--kernel", "/k", "--vnc",
                         "--serial", "pty", "--boot", "c", "--dm-arg=-S",
                         "--firmware", "/fw"])
    opts = cli_guest._hvm_options(args)
    assert opts["type"] == "hvm" and opts["vnc"] and opts["serial"] == "pty"
    assert opts["boot"] == "c" and opts["device_model_args"] == ("-S",)
    assert opts["firmware"] == "/fw"
    assert cli_guest._hvm_options(p.parse_args(["build", "--name", "p", "--kernel", "/k"])) == {}


def test_qmp_unreachable_is_typed():
    with pytest.raises(guest.QmpError):
        guest.qmp(1, "query-vnc", path="/nonexistent/qmp", timeout=0.5)
