"""The lab itself: pure logic on the host, and real boots checking exit status, cleanup and
that a build for one Xen release refuses to run on another."""

import glob
import os
import subprocess
import sys

import pytest

from pyxen.lab import image, vm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_mirror_from_deb822(tmp_path):
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\nTypes: deb\nURIs: http://mirror.example/debian/\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n")
    assert image.find_mirror("bookworm", str(tmp_path)) == "http://mirror.example/debian"


def test_mirror_from_one_line_format(tmp_path):
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://m.example/debian bookworm main\n")
    assert image.find_mirror("bookworm", str(tmp_path)) == "http://m.example/debian"


def test_no_mirror_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("PYXEN_LAB_MIRROR", raising=False)
    with pytest.raises(image.LabError, match="PYXEN_LAB_MIRROR"):
        image.find_mirror("bookworm", str(tmp_path))


def test_missing_tool_names_the_package(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    if os.geteuid() != 0:
        pytest.skip("root check comes first")
    with pytest.raises(image.LabError, match="apt-get install debootstrap qemu-system-x86"):
        image.require_host_tools("debootstrap", "qemu-system-x86_64")


def test_recipe_keys_change_with_recipe():
    r = image.Recipe()
    assert r.base_key() == image.Recipe().base_key()
    other = image.Recipe(packages=r.packages + ("strace",))
    assert other.base_key() != r.base_key()
    assert other.image_key() != r.image_key()


def test_accelerator_choice():
    assert vm.choose_machine("tcg").cpu == "qemu64,+svm,+npt"
    assert vm.choose_machine("kvm").cpu == "host"
    auto = vm.choose_machine("auto")
    flags = open("/proc/cpuinfo").read()
    hw = " vmx" in flags or " svm" in flags
    assert auto.accel == ("kvm" if hw and os.access("/dev/kvm", os.W_OK) else "tcg")
    with pytest.raises(image.LabError):
        vm.choose_machine("hax")


def _qemus():
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if l.startswith("qemu-system-x86_64") and "pyxen" in l]


@pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")
def test_run_returns_exit_status_and_cleans_up(tmp_path):
    before = set(glob.glob("/tmp/pyxen-lab-*"))
    r = subprocess.run([sys.executable, "-m", "pyxen.lab", "run", "--timeout", "600", "--",
                        "sh", "-c", "echo hello-from-dom0 $(cat /proc/xen/capabilities); "
                        "test -e /dev/xen/privcmd && exit 7"],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 7, r.stderr[-3000:]
    assert "hello-from-dom0 control_d" in r.stdout
    assert not _qemus()
    assert set(glob.glob("/tmp/pyxen-lab-*")) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")
def test_extension_built_for_417_refuses_to_load_on_420(tmp_path):
    """Never a silent ABI mismatch: this host's 4.17 build, dropped into a 4.20 dom0."""
    import io
    import pyxen
    built = glob.glob(os.path.join(os.path.dirname(pyxen.__file__), "_xen*.so"))
    assert built, "make test builds the extension in place first"
    probe = ("import shutil, sys; shutil.copytree('pyxen', '/tmp/p/pyxen'); "
             "shutil.copy('.pyxen-lab/extra/_xen.so', '/tmp/p/pyxen/_xen.abi3.so'); "
             "[__import__('os').remove(f) for f in __import__('glob').glob('/tmp/p/pyxen/_xen.cpython*')]; "
             "sys.path.insert(0, '/tmp/p'); import pyxen.ctrl, pyxen.errors\n"
             "try:\n    pyxen.ctrl.open()\nexcept pyxen.errors.XenUnavailableError as e:\n"
             "    print('REFUSED:', e); sys.exit(0)\nsys.exit(1)")
    out = io.StringIO()
    rc = vm.run(["python3", "-c", probe], xen="4.20", timeout=900, out=out,
                extra_files={"_xen.so": built[0]})
    assert rc == 0, out.getvalue()[-3000:]
    assert "REFUSED: pyxen was built against Xen 4.17" in out.getvalue()
