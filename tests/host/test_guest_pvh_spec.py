"""Pure parts of pyxen.guest's PVH build: spec validation and the CLI's type options.
No hypervisor needed."""

import argparse

import pytest

import pyxen.guest as guest
from pyxen.cli import guest as cli_guest


def pvh(**kw):
    base = dict(name="p", type="pvh", kernel="/boot/vmlinuz", ramdisk="/boot/initrd",
                cmdline="console=hvc0", memory=128)
    return guest.BuildSpec(**{**base, **kw})


def test_pvh_spec_validates():
    s = pvh().validated()
    assert s.pvh and not s.hvm and s.type in guest.GUEST_TYPES
    assert s.video_mb == 0 and s.full_cmdline == "console=hvc0"
    assert pvh(hap=False, vcpus=4, maxmem=128, serial="none").validated().hap is False
    assert not guest.BuildSpec(name="x", kernel="/k").pvh


@pytest.mark.parametrize("bad", [
    dict(maxmem=256), dict(features="!writable_page_tables"), dict(vnc=True),
    dict(sdl=True), dict(vga="stdvga"), dict(videoram=8), dict(boot="c"),
    dict(firmware="/hvmloader"), dict(system_firmware="/bios.bin"), dict(bios="ovmf"),
    dict(device_model="/qemu"), dict(device_model_args=("-S",)), dict(serial="pty"),
    dict(hap="yes"), dict(memory=0), dict(vcpus=0), dict(cmdline="a\0b"),
])
def test_bad_pvh_specs_raise_spec_error(bad):
    with pytest.raises(guest.SpecError) as ei:
        pvh(**bad).validated()
    assert ei.value.step == "spec"


def test_hvm_only_options_are_named():
    with pytest.raises(guest.SpecError) as ei:
        pvh(vnc=True, boot="c").validated()
    assert "vnc" in str(ei.value) and "boot" in str(ei.value)


def parser():
    p = argparse.ArgumentParser()
    cli_guest.register(p.add_subparsers())
    return p


@pytest.mark.parametrize("flags", [["--pvh"], ["--type", "pvh"]])
def test_cli_build_pvh(flags):
    args = parser().parse_args(["build", "--name", "p", "--kernel", "/k", *flags])
    assert cli_guest._hvm_options(args) == {"type": "pvh", "hap": None}
    args = parser().parse_args(["build", "--name", "p", "--kernel", "/k", "--no-hap", *flags])
    assert cli_guest._hvm_options(args) == {"type": "pvh", "hap": False}


def test_cli_type_flags_exclusive():
    with pytest.raises(SystemExit):
        parser().parse_args(["build", "--name", "p", "--pvh", "--hvm"])
    args = parser().parse_args(["build", "--name", "h", "--type", "hvm"])
    assert cli_guest._hvm_options(args)["type"] == "hvm"


def test_cli_pvh_without_kernel_is_usage_error(capsys):
    args = parser().parse_args(["build", "--name", "p", "--pvh"])
    assert cli_guest.cmd_build(args) == 2
    assert "--kernel is required for a PVH guest" in capsys.readouterr().err
