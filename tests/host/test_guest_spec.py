"""Pure parts of pyxen.guest: BuildSpec validation and command line, the typed errors,
the libxenguest declarations, the CLI verbs. No hypervisor needed."""

import uuid

import pytest

import pyxen.guest as guest


def spec(**kw):
    base = dict(name="g", kernel="/boot/vmlinuz", ramdisk="/boot/initrd")
    return guest.BuildSpec(**{**base, **kw})


def test_validated_fills_uuid_and_actions():
    s = spec(on_poweroff="destroy", on_reboot="rename-restart").validated()
    assert uuid.UUID(s.uuid)
    assert s.on_poweroff is guest.Action.DESTROY
    assert s.on_reboot is guest.Action.RENAME_RESTART
    assert s.on_crash is guest.Action.DESTROY
    u = str(uuid.uuid4())
    assert spec(uuid=u.upper()).validated().uuid == u


def test_cmdline_is_root_then_extra():
    assert spec(cmdline="console=hvc0", root="/dev/xvda1").full_cmdline == \
        "root=/dev/xvda1 console=hvc0"
    assert spec().full_cmdline == ""


def test_maxmem_defaults_to_memory():
    assert spec(memory=96).maxmem_mb == 96
    assert spec(memory=96, maxmem=128).maxmem_mb == 128


@pytest.mark.parametrize("bad", [
    dict(name=""), dict(name="a/b"), dict(name="x" * 65), dict(name="a\nb"),
    dict(memory=0), dict(memory=-5), dict(memory=True), dict(memory=1.5),
    dict(vcpus=0), dict(vcpus=1000), dict(maxmem=32, memory=64), dict(maxmem="128"),
    dict(uuid="zzz"), dict(on_crash="explode"), dict(cmdline="a\0b"),
])
def test_bad_specs_raise_spec_error(bad):
    with pytest.raises(guest.SpecError) as ei:
        spec(**bad).validated()
    assert ei.value.step == "spec" and ei.value.domid is None
    assert isinstance(ei.value, ValueError) and isinstance(ei.value, guest.BuildError)


def test_error_classes():
    e = guest.KernelNotFoundError("check_files", "kernel /x: no such file")
    assert isinstance(e, FileNotFoundError) and e.step == "check_files"
    assert "check_files" in str(e) and "/x" in str(e)
    assert issubclass(guest.InsufficientMemoryError, MemoryError)


def test_build_rejects_non_spec():
    with pytest.raises(TypeError):
        guest.build({"name": "x"})


def test_libxenguest_declarations():
    try:
        from pyxen._native import xen
        ffi, lib = xen()
    except Exception as e:  # pragma: no cover - build problem
        pytest.skip(f"pyxen._xen not built: {e}")
    for name in ("xc_dom_allocate", "xc_dom_kernel_file", "xc_dom_module_file",
                 "xc_dom_boot_xen_init", "xc_dom_parse_image", "xc_dom_mem_init",
                 "xc_dom_boot_mem_init", "xc_dom_build_image", "xc_dom_boot_image",
                 "xc_dom_gnttab_init", "xc_dom_release", "xc_dom_p2m",
                 "xc_domain_set_memmap_limit"):
        assert hasattr(lib, name), name
    # the compiler fixed the offsets of the fields pyxen touches
    assert ffi.offsetof("struct xc_dom_image", "console_evtchn") > \
        ffi.offsetof("struct xc_dom_image", "console_pfn")


def test_cli_verbs_parse():
    from pyxen.cli import build_parser
    a = build_parser().parse_args(["build", "--name", "x", "--kernel", "k", "-p",
                                   "--on-reboot", "preserve"])
    assert a.paused and a.on_reboot == "preserve" and a.on_poweroff == "destroy"
    assert build_parser().parse_args(["console", "7"]).domain == "7"


def _bzimage(elf: bytes, tmp_path):
    """A minimal x86 bzImage: boot sector + setup header (2.08) + xz payload."""
    import lzma
    import struct
    payload = lzma.compress(elf, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    setup_sects = 1
    head = bytearray(512 * (setup_sects + 1))
    head[0x1F1] = setup_sects
    head[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", head, 0x206, 0x20F)
    struct.pack_into("<II", head, 0x248, 16, len(payload))
    path = tmp_path / "vmlinuz"
    path.write_bytes(bytes(head) + b"\0" * 16 + payload + b"trailer")
    return path


def test_kernel_image_extracts_and_caches(tmp_path):
    elf = b"\x7fELF" + bytes(range(256)) * 40
    path = _bzimage(elf, tmp_path)
    guest.clear_kernel_cache()
    assert guest.kernel_image(str(path)) == elf
    assert guest.kernel_image(str(path)) is guest.kernel_image(str(path))  # cached
    plain = tmp_path / "vmlinux"
    plain.write_bytes(elf)
    assert guest.kernel_image(str(plain)) is None       # already ELF: libxenguest reads it
    notelf = _bzimage(b"MZ not an elf", tmp_path)
    assert guest.kernel_image(str(notelf)) is None
    guest.clear_kernel_cache()
