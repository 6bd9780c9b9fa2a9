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


def _tables(blob, base, addr):
    """signature -> bytes of the table at guest address ``addr`` inside ``blob``."""
    import struct
    off = addr - base
    sig, length = struct.unpack_from("<4sI", blob, off)
    return sig, blob[off:off + length]


@pytest.mark.parametrize("vcpus", [1, 2, 7])
def test_pvh_acpi_tables_are_well_formed(vcpus):
    import struct
    base = guest.ACPI_INFO_PHYSICAL_ADDRESS + 4096
    rsdp, blob = guest.pvh_acpi_tables(vcpus, base)
    assert len(rsdp) == 36 and rsdp[:8] == b"RSD PTR " and rsdp[15] == 2
    assert sum(rsdp[:20]) & 0xFF == 0 and sum(rsdp) & 0xFF == 0
    xsdt_addr = struct.unpack_from("<Q", rsdp, 24)[0]
    sig, xsdt = _tables(blob, base, xsdt_addr)
    assert sig == b"XSDT" and sum(xsdt) & 0xFF == 0
    entries = struct.unpack_from(f"<{(len(xsdt) - 36) // 8}Q", xsdt, 36)
    found = {}
    for a in entries:
        assert a % 16 == 0
        s, t = _tables(blob, base, a)
        assert sum(t) & 0xFF == 0, s
        found[s] = t
    assert set(found) == {b"FACP", b"APIC"}
    fadt = found[b"FACP"]
    assert len(fadt) == 268 and fadt[8] == 5
    assert struct.unpack_from("<I", fadt, 112)[0] & (1 << 20)       # HW_REDUCED_ACPI
    dsdt = struct.unpack_from("<Q", fadt, 140)[0]
    assert struct.unpack_from("<I", fadt, 40)[0] == dsdt
    s, t = _tables(blob, base, dsdt)
    assert s == b"DSDT" and len(t) == 36 and sum(t) & 0xFF == 0
    madt = found[b"APIC"]
    assert struct.unpack_from("<I", madt, 36)[0] == guest.LAPIC_BASE_ADDRESS
    lapics = [struct.unpack_from("<BBBBI", madt, o) for o in range(44, len(madt), 8)]
    assert lapics == [(0, 8, c, 2 * c, 1) for c in range(vcpus)]
    assert len(blob) < 16 * 4096  # within libxl's NUM_ACPI_PAGES
