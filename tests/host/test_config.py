"""pyxen.config on the host: libxlutil's parser is pure logic (no Xen needed)."""

import glob
import os
import warnings
from pathlib import Path

import pytest

config = pytest.importorskip("pyxen.config")
from pyxen.config import (  # noqa: E402 - after the importorskip above
                          ConfigError, ConfigWarning, DiskSpec, DomainConfig, DomainType,
                          NicSpec, ShutdownAction, parse_disk, parse_file, parse_nic,
                          parse_raw, parse_string)

DATA = Path(__file__).parent / "data"
DEBIAN_EXAMPLES = ["xlexample.hvm", "xlexample.pvlinux", "xlexample.pvhlinux"]

# The two configs of issue 7, verbatim.
HVM = """kernel='/usr/lib/xen/boot/hvmloader' builder='hvm' device_model='/usr/lib/xen/bin/qemu-dm'
memory='1024' vcpus='2' disk=['phy:/dev/vg01/winxp0,hda,w','phy:/dev/loop0,ioemu:hdc:cdrom,r']
name='winxp' dhcp='dhcp' vif=['bridge=eth0,mac=00:16:3e:38:d4:15'] on_poweroff='destroy'
on_reboot='restart' on_crash='restart' boot='c' vnc=1 vncviewer=0 vnclisten='' sdl=0"""
PV = """kernel='/mnt/xen/linux/vmlinux' memory='256' vcpus='2' root='/dev/xvda1'
disk=['phy:/dev/vg01/linux0,xvda,w'] name='linux' vif=['bridge=eth0,mac=00:16:3e:38:d4:07']
on_poweroff='destroy' on_reboot='restart' on_crash='restart'
extra='console=hvc0 init=/sbin/init rootfstype=ext4 rootflags=nobarrier'"""


def one_per_line(text: str) -> str:
    """The issue quotes each config as whitespace-separated settings; xl.cfg needs a newline
    (or ';') between settings, so the file form has one setting per line, values verbatim."""
    import re
    items = re.findall(r"(\w+=(?:'[^']*'|\[[^\]]*\]|\S+))", text)
    assert re.sub(r"\s", "", "".join(items)) == re.sub(r"\s", "", text)  # nothing lost
    return "\n".join(items) + "\n"


def parse_quiet(text, **kw):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        cfg = parse_string(text, **kw)
    return cfg, [str(x.message) for x in w if issubclass(x.category, ConfigWarning)]


def test_issue_hvm_config():
    cfg, warned = parse_quiet(one_per_line(HVM), filename="winxp.cfg")
    with pytest.warns(ConfigWarning):
        assert cfg == parse_file(DATA / "winxp.cfg")
    assert cfg.name == "winxp" and cfg.type is DomainType.HVM
    assert cfg.memory == 1024 and cfg.vcpus == 2 and cfg.maxmem is None
    assert cfg.kernel is None  # hvmloader: libxl's default firmware
    assert cfg.on_poweroff is ShutdownAction.DESTROY
    assert cfg.on_reboot is cfg.on_crash is ShutdownAction.RESTART
    assert cfg.boot == "c" and cfg.vnc is True and cfg.vnclisten == "" and cfg.sdl is False
    assert cfg.disks == (
        DiskSpec(vdev="hda", pdev_path="/dev/vg01/winxp0", format="raw", readwrite=True),
        DiskSpec(vdev="hdc", pdev_path="/dev/loop0", format="raw", readwrite=False,
                 is_cdrom=True, removable=True))
    assert cfg.nics == (NicSpec(mac="00:16:3e:38:d4:15", bridge="eth0"),)
    # every legacy xm key is reported, never silently dropped
    keys = {i.key for i in cfg.ignored}
    assert keys == {"builder", "device_model", "dhcp", "vncviewer", "kernel"}
    for k in keys:
        assert any(f": {k}: " in w for w in warned), (k, warned)
    assert all(w.startswith("winxp.cfg:") for w in warned)


def test_issue_pv_config():
    cfg, warned = parse_quiet(one_per_line(PV))
    assert cfg == parse_file(DATA / "linux.cfg")
    assert warned == [] and cfg.ignored == ()
    assert cfg.name == "linux" and cfg.type is DomainType.PV
    assert cfg.kernel == "/mnt/xen/linux/vmlinux"
    assert cfg.memory == 256 and cfg.vcpus == 2
    # xl: cmdline = "root=<root> <extra>"
    assert cfg.cmdline == ("root=/dev/xvda1 console=hvc0 init=/sbin/init rootfstype=ext4 "
                           "rootflags=nobarrier")
    assert cfg.disks == (DiskSpec(vdev="xvda", pdev_path="/dev/vg01/linux0", format="raw"),)
    assert cfg.nics == (NicSpec(mac="00:16:3e:38:d4:07", bridge="eth0"),)


def debian_examples():
    found = sorted(glob.glob("/etc/xen/xlexample*"))
    vendored = [str(DATA / n) for n in DEBIAN_EXAMPLES]
    return vendored + found


@pytest.mark.parametrize("path", debian_examples())
def test_debian_examples(path):
    cfg, warned = parse_quiet(Path(path).read_text(), filename=path)
    again = parse_file(path)
    assert again.nics[0].mac != cfg.nics[0].mac  # no mac= in the file: a random one each time
    assert cfg == again.replace(nics=tuple(n.__class__(**{**n.__dict__, "mac": cfg.nics[0].mac})
                                           for n in again.nics))
    assert cfg.name.startswith("example.")
    assert cfg.memory in (128, 512) and cfg.vcpus in (2, 4)
    assert len(cfg.disks) == 1 and cfg.disks[0].vdev == "xvda"
    assert cfg.disks[0].format == "raw" and cfg.disks[0].readwrite
    assert len(cfg.nics) == 1 and cfg.nics[0].mac.startswith("00:16:3e:")
    assert warned == []
    expected = {"xlexample.hvm": DomainType.HVM, "xlexample.pvhlinux": DomainType.PVH,
                "xlexample.pvlinux": DomainType.PV}[os.path.basename(path)]
    assert cfg.type is expected


def test_vendored_examples_match_etc_xen():
    for n in DEBIAN_EXAMPLES:
        if os.path.exists(f"/etc/xen/{n}"):
            assert Path(f"/etc/xen/{n}").read_text() == (DATA / n).read_text()


@pytest.mark.parametrize("path", [DATA / "winxp.cfg", DATA / "linux.cfg"] +
                         [DATA / n for n in DEBIAN_EXAMPLES])
def test_libxl_json_round_trip_pure(path):
    """config → libxl JSON → config (Python side; the lab checks it through libxl)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        cfg = parse_file(path)
    js = cfg.to_libxl_json()
    assert js["c_info"]["name"] == cfg.name
    assert js["b_info"]["target_memkb"] == cfg.memory * 1024
    assert f"type.{cfg.type.value}" in js["b_info"]
    assert DomainConfig.from_libxl_json(js, like=cfg) == cfg


# ---- errors: typed, with file, line and key -------------------------------------------

def err(text, **kw) -> ConfigError:
    with pytest.raises(ConfigError) as ei, warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        parse_string(text, filename="bad.cfg", **kw)
    return ei.value


def test_unknown_key():
    e = err("name='a'\nmemory=128\nfrobnicate=1\n")
    assert (e.file, e.line, e.key) == ("bad.cfg", 3, "frobnicate")
    assert "bad.cfg:3: frobnicate: unknown key" in str(e)


def test_unknown_key_not_strict_warns():
    with pytest.warns(ConfigWarning, match=r"bad.cfg:2: frobnicate"):
        cfg = parse_string("name='a'\nfrobnicate=1\n", filename="bad.cfg", strict=False)
    assert cfg.uninterpreted == {"frobnicate": "1"}


def test_known_but_uninterpreted_key_warns():
    with pytest.warns(ConfigWarning, match=r"x.cfg:2: pci: "):
        cfg = parse_string("name='a'\npci=['01:00.0']\n", filename="x.cfg")
    assert cfg.uninterpreted == {"pci": ["01:00.0"]}


def test_type_error_number():
    e = err("name='a'\n\nmemory='lots'\n")
    assert (e.file, e.line, e.key) == ("bad.cfg", 3, "memory")
    assert "memory" in str(e) and "valid number" in str(e)


def test_type_error_list_for_string():
    e = err("name=['a','b']\n")
    assert (e.file, e.line, e.key) == ("bad.cfg", 1, "name")


def test_type_error_string_for_list():
    e = err("name='a'\ndisk='xvda'\n")
    assert (e.line, e.key) == (2, "disk")


def test_syntax_error_line():
    e = err("name='a'\nmemory=128\nvcpus = = 2\n")
    assert (e.file, e.line) == ("bad.cfg", 3)
    assert "syntax error" in str(e)


def test_unterminated_string():
    e = err("name='a\nmemory=1\n")
    assert e.file == "bad.cfg" and e.line in (1, 2)


def test_missing_name():
    e = err("memory=128\n")
    assert e.key == "name"


@pytest.mark.parametrize("text,key", [
    ("name='a'\ndisk=['']\n", "disk"),
    ("name='a'\ndisk=['/dev/x,raw,xvda,rw,bogus=1']\n", "disk"),
    ("name='a'\nvif=['mac=zz:16:3e:00:00:00']\n", "vif"),
    ("name='a'\nvif=['colour=blue']\n", "vif"),
    ("name='a'\nvif=['rate=fast']\n", "vif"),
    ("name='a'\non_crash='explode'\n", "on_crash"),
    ("name='a'\ntype='xen'\n", "type"),
    ("name='a'\nbuilder='xyz'\n", "builder"),
    ("name='a'\nmemory=0\n", "memory"),
    ("name='a'\nvcpus='-1'\n", "vcpus"),
    ("name='a'\nvcpus=4\nmaxvcpus=2\n", "maxvcpus"),
    ("name='a'\nuuid='nope'\n", "uuid"),
    ("name='a'\ntype='hvm'\nboot='z'\n", "boot"),
])
def test_bad_values(text, key):
    e = err(text)
    assert e.key == key and e.file == "bad.cfg" and e.line is not None, str(e)


def test_missing_file():
    with pytest.raises(ConfigError) as ei:
        parse_file("/nonexistent/dom.cfg")
    assert ei.value.file == "/nonexistent/dom.cfg"
    assert "No such file" in str(ei.value)


def test_nic_parsing():
    n = parse_nic("bridge=xenbr0, mac=00:16:3E:0:1:2, ip=10.0.0.2, script=vif-bridge,"
                  "vifname=v1, model=e1000, rate=10Mb/s@20ms, type=ioemu, mtu=1400")
    assert n == NicSpec(mac="00:16:3e:00:01:02", bridge="xenbr0", ip="10.0.0.2",
                        script="vif-bridge", vifname="v1", model="e1000",
                        rate="10Mb/s@20ms", type="vif_ioemu", mtu=1400,
                        rate_bytes_per_interval=25000, rate_interval_usecs=20000)
    a, b = parse_nic(""), parse_nic("")
    assert a.mac.startswith("00:16:3e:") and a.mac != b.mac


def test_disk_parsing():
    d = parse_disk("format=qcow2, vdev=xvdb, access=ro, target=/var/lib/a b.qcow2")
    assert d == DiskSpec(vdev="xvdb", pdev_path="/var/lib/a b.qcow2", format="qcow2",
                         readwrite=False)
    assert parse_disk(",,hdc:cdrom,r").is_cdrom


def test_root_extra_cmdline():
    cfg = parse_string("name='a'\nroot='/dev/xvda1'\n")
    assert cfg.cmdline == "root=/dev/xvda1"
    cfg = parse_string("name='a'\nextra='quiet'\n")
    assert cfg.cmdline == "quiet"
    with pytest.warns(ConfigWarning, match="cmdline= given"):
        cfg = parse_string("name='a'\nextra='quiet'\ncmdline='x'\n")
    assert cfg.cmdline == "x"


def test_parse_raw_and_continuation():
    raw = parse_raw("# comment\nname = 'a' # trailing\ndisk = [ 'x',\n   'y', ]\n"
                    "vif = [ 'a' ]\nvif += [ 'b' ]\nmemory = 1; vcpus = 2\n")
    assert raw["name"] == ("a", 2)
    assert raw["disk"] == (["x", "y"], 3)
    assert raw["memory"][0] == "1" and raw["vcpus"][0] == "2"
    assert raw["vif"][0] == ["a", "b"]


# -- libxlutil's private list of settings (csrc/pyxen_xen.c mirrors its layout) -----------

def test_layout_probe_matches_the_real_libxlutil():
    """The mirror of XLU_Config lists the probe's names and lines as the library stored them."""
    config.check_layout()
    assert config._layout_ok


def test_layout_drift_is_refused(monkeypatch):
    """A listing that differs from the expected one (as a changed layout would read) stops
    pyxen with a typed error before any config is read."""
    from pyxen.errors import XenFeatureUnavailable
    monkeypatch.setattr(config, "_layout_ok", False)
    monkeypatch.setattr(config, "_PROBE_WANT", [("pyxen_probe_a", 1)])
    with pytest.raises(XenFeatureUnavailable, match="XLU_Config layout"):
        config.parse_raw("a = 1\n")
    monkeypatch.setattr(config, "_PROBE_WANT", list(reversed(config._PROBE_WANT)))
    with pytest.raises(XenFeatureUnavailable):
        config.check_layout()


def test_settings_listed_in_one_walk_newest_first():
    """Every setting, with its line, in file order; a repeated key keeps its last value and
    the line of its first appearance (as before the listing became one walk)."""
    text = "\n".join(f"k{i} = {i}" for i in range(3000)) + "\nk7 = 'again'\n"
    raw = config.parse_raw(text)
    assert list(raw)[:3] == ["k0", "k1", "k2"] and len(raw) == 3000
    assert raw["k2999"] == ("2999", 3000)
    assert raw["k7"][0] == "again"
