"""The lab itself: pure logic on the host, and real boots checking exit status, cleanup and
that a build for one Xen release refuses to run on another."""

import glob
import re
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


def _children_qemu(pid: int) -> set:
    """PIDs of QEMU processes whose parent is ``pid``."""
    found = set()
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)
        except OSError:
            continue
        comm = fields[0].split("(", 1)[1]
        ppid = int(fields[1].split()[1])
        if ppid == pid and comm.startswith("qemu-system"):
            found.add(int(stat.split("/")[2]))
    return found


def _alive(pids: set) -> set:
    return {p for p in pids if os.path.exists(f"/proc/{p}")}


def _workdirs(pids: set) -> set:
    """The run's temporary folders, read from its QEMU command line (the work disk)."""
    dirs = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        for a in args:
            m = re.search(r"file=(/\S+?/pyxen-lab-[^/,]+)/work\.img", a)
            if m:
                dirs.add(m.group(1))
    return dirs


def _watch(args, *, interrupt_after_qemu: bool = False, timeout: float = 1200):
    """Run ``python -m pyxen.lab ARGS``; return (rc, output, QEMU pids, their temp folders)."""
    import signal
    import threading
    import time
    # The child gets a default SIGINT whatever this process inherited (a background job of
    # a shell starts with SIGINT ignored, and the Ctrl-C test would then wait forever).
    p = subprocess.Popen([sys.executable, "-m", "pyxen.lab", *args], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    chunks, seen, dirs = [], set(), set()
    reader = threading.Thread(target=lambda: chunks.append(p.stdout.read()), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while p.poll() is None and time.monotonic() < deadline:
        new = _children_qemu(p.pid) - seen
        seen |= new
        dirs |= _workdirs(new)
        if interrupt_after_qemu and seen:
            time.sleep(2)
            p.send_signal(signal.SIGINT)
            interrupt_after_qemu = False
        time.sleep(0.2)
    p.wait(timeout=60)
    reader.join(10)
    assert len(dirs) == len(seen), "each QEMU runs from a temporary folder"
    return p.returncode, "".join(chunks), seen, dirs


@pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")
def test_run_returns_exit_status_and_cleans_up(tmp_path):
    rc, out, qemus, dirs = _watch(["run", "--timeout", "600", "--", "sh", "-c",
                             "echo hello-from-dom0 $(cat /proc/xen/capabilities); "
                             "test -e /dev/xen/privcmd && exit 7"])
    assert rc == 7, out[-3000:]
    assert "hello-from-dom0 control_d" in out
    assert len(qemus) == 1 and not _alive(qemus)
    assert dirs and not any(os.path.exists(d) for d in dirs)


@pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")
def test_extension_built_for_417_refuses_to_load_on_420(tmp_path):
    """Never a silent ABI mismatch: this host's 4.17 build, dropped into a 4.20 dom0."""
    import io
    import pyxen
    built = glob.glob(os.path.join(os.path.dirname(pyxen.__file__), "_xen*.so"))
    assert built, "make test builds the extension in place first"
    # The dom0 has pyxen installed from the sdist; copy that package and swap in this
    # host's 4.17-built extension.
    probe = ("import importlib.util, shutil, sys; "
             "shutil.copytree(importlib.util.find_spec('pyxen').submodule_search_locations[0], "
             "'/tmp/p/pyxen'); "
             "shutil.copy('.pyxen-lab/extra/_xen.so', '/tmp/p/pyxen/_xen.abi3.so'); "
             "[__import__('os').remove(f) "
             "for f in __import__('glob').glob('/tmp/p/pyxen/_xen.cpython*')]; "
             "sys.path.insert(0, '/tmp/p'); import pyxen.ctrl, pyxen.errors\n"
             "try:\n    pyxen.ctrl.open()\nexcept pyxen.errors.XenUnavailableError as e:\n"
             "    print('REFUSED:', e); sys.exit(0)\nsys.exit(1)")
    out = io.StringIO()
    rc = vm.run(["python3", "-c", probe], xen="4.20", timeout=900, out=out,
                extra_files={"_xen.so": built[0]})
    assert rc == 0, out.getvalue()[-3000:]
    assert "REFUSED: pyxen was built against Xen 4.17" in out.getvalue()


@pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")
def test_timeout_powers_off_and_cleans_up():
    rc, out, qemus, dirs = _watch(["run", "--timeout", "8", "--", "sleep", "1000"])
    assert rc == 124, out[-2000:]
    assert "timeout after 8s" in out
    assert len(qemus) == 1 and not _alive(qemus)
    assert dirs and not any(os.path.exists(d) for d in dirs)


@pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")
def test_ctrl_c_powers_off_and_cleans_up():
    rc, out, qemus, dirs = _watch(["run", "--", "sleep", "1000"], interrupt_after_qemu=True)
    assert rc == 130, out[-2000:]
    assert len(qemus) == 1 and not _alive(qemus)
    assert dirs and not any(os.path.exists(d) for d in dirs)
