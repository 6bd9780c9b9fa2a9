"""Boot the lab image under QEMU and run one job inside its Xen dom0.

The job travels on a second virtio disk made per run from a copy of the source
checkout. pyxen reaches the dom0 as a user gets it: the checkout's sdist (built here, or
``PYXEN_LAB_SDIST``) is built into a wheel for the dom0's python3 in the image's chroot and
pip-installed into ``.pyxen-lab/site`` on the work disk; the copy of the checkout carries no
``pyxen/`` package, so every job imports (and every test tests) the installed copy.
The dom0 init prints begin/end markers carrying a per-run nonce and the job's exit status
on the Xen console (com1 → our stdout pipe).
"""

from __future__ import annotations

import os
import re
import secrets
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NoReturn, TextIO

from .image import (BUILD_VENV, Image, LabError, Progress, _chroot_env, build_image,
                    recipe_for, require_host_tools)

SOURCE_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
    "*.so", "*.o", ".lab-out", ".hypothesis", ".mypy_cache", ".ruff_cache")
# Where the installed package lives on the work disk (relative to its root, /lab/work).
SITE = ".pyxen-lab/site"

EXIT_TIMEOUT = 124
EXIT_LAB_FAILED = 125


@dataclass(frozen=True)
class Machine:
    accel: str
    cpu: str
    memory_mb: int = 3072
    smp: int = 2
    dom0_mem: str = "1536M,max:1536M"


def _host_has_hw_virt() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return "vmx" in flags or "svm" in flags
    except OSError:
        pass
    return False


def choose_machine(accel: str | None = None) -> Machine:
    """KVM with ``-cpu host`` where the CPU shows vmx/svm and /dev/kvm opens; TCG otherwise."""
    accel = accel or os.environ.get("PYXEN_LAB_ACCEL") or "auto"
    if accel == "auto":
        ok = _host_has_hw_virt() and os.access("/dev/kvm", os.R_OK | os.W_OK)
        accel = "kvm" if ok else "tcg"
    if accel == "kvm":
        return Machine("kvm", "host")
    if accel == "tcg":
        return Machine("tcg", "qemu64,+svm,+npt")
    raise LabError(f"unknown accelerator {accel!r} (auto, kvm or tcg)")


def source_root() -> Path:
    here = Path(__file__).resolve().parents[2]
    if not (here / "setup.py").exists() or not (here / "csrc").is_dir():
        raise LabError(f"the lab runs a source checkout of pyxen; {here} is not one "
                       "(clone the repository and run the lab from there)")
    return here


def qemu_command(image: Image, machine: Machine, work_img: Path | None,
                 interactive: bool = False) -> list[str]:
    xen_args = (f"console=com1 com1=115200,8n1 dom0_mem={machine.dom0_mem} "
                f"dom0_max_vcpus={machine.smp} loglvl=warning guest_loglvl=warning")
    linux_args = "root=/dev/vda rw console=hvc0 init=/sbin/pyxen-lab-init quiet loglevel=3"
    cmd = ["qemu-system-x86_64", "-accel", machine.accel, "-cpu", machine.cpu,
           "-m", str(machine.memory_mb), "-smp", str(machine.smp),
           "-nodefaults", "-display", "none", "-no-reboot", "-net", "none",
           "-kernel", str(image.xen), "-append", xen_args,
           "-initrd", f"{image.vmlinuz} {linux_args},{image.initrd}",
           "-drive", f"file={image.root_img},if=virtio,format=raw,snapshot=on"]
    if work_img is not None:
        cmd += ["-drive", f"file={work_img},if=virtio,format=raw"]
    cmd += ["-serial", "mon:stdio" if interactive else "stdio", "-monitor", "none"]
    return cmd


def _sdist(src: Path, outdir: Path, progress: Progress) -> Path:
    """The sdist of the checkout copy ``src`` (``python -m build --sdist``), or PYXEN_LAB_SDIST."""
    given = os.environ.get("PYXEN_LAB_SDIST")
    if given:
        path = Path(given).resolve()
        if not path.is_file():
            raise LabError(f"PYXEN_LAB_SDIST={given}: no such file")
        return path
    progress.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(outdir), str(src)],
                 "building the sdist (python -m build --sdist; pip install build if missing)")
    found = sorted(outdir.glob("pyxen-*.tar.gz"))
    if len(found) != 1:
        raise LabError(f"python -m build --sdist made {found or 'nothing'} in {outdir}")
    return found[0]


def _install_for_dom0(image: Image, stage: Path, sdist: Path, progress: Progress) -> None:
    """Build the sdist's wheel for the dom0's python3 and install it into the work disk."""
    chroot_stage = "/" + str(stage.relative_to(image.base_root))
    shutil.copy(sdist, stage / sdist.name)
    env = _chroot_env()
    progress.run(["chroot", str(image.base_root), f"{BUILD_VENV}/bin/python", "-m", "pip",
                  "wheel", "-q", "--disable-pip-version-check", "--no-deps", "--no-index",
                  "--no-build-isolation", "-w", f"{chroot_stage}/wheel",
                  f"{chroot_stage}/{sdist.name}"],
                 "building pyxen's wheel for the dom0's python3 (from the sdist)", env=env)
    wheels = sorted((stage / "wheel").glob("pyxen-*.whl"))
    if len(wheels) != 1:
        raise LabError(f"pip wheel made {wheels or 'nothing'} from {sdist.name}")
    progress.run(["chroot", str(image.base_root), "python3", "-m", "pip", "install", "-q",
                  "--disable-pip-version-check", "--no-deps", "--no-index", "--target",
                  f"{chroot_stage}/src/{SITE}", f"{chroot_stage}/wheel/{wheels[0].name}"],
                 "installing pyxen's wheel for the dom0", env=env)


def _job_script(cmd: list[str], relcwd: str, interactive: bool) -> str:
    lines = [f"export PYXEN_LAB=1 PYTHONPATH=/lab/work/{SITE} PYTHONDONTWRITEBYTECODE=1",
             f"export PYTHONUNBUFFERED=1 PATH=/lab/work/{SITE}/bin:$PATH",
             f"cd /lab/work/{shlex.quote(relcwd)} || exit {EXIT_LAB_FAILED}"]
    if interactive:
        lines.append("echo 'pyxen lab: a Xen dom0; this checkout is the working directory "
                     f"(pyxen installed from its sdist into /lab/work/{SITE}), "
                     "`pyxen` and `xl` are on PATH; exit powers the VM off.'")
        lines.append("export PS1='pyxen-lab:\\w# '")
        lines.append("exec /bin/bash --norc -i")
    else:
        lines.append("exec " + " ".join(shlex.quote(c) for c in cmd))
    return "\n".join(lines) + "\n"


def _make_work_disk(image: Image, cmd: list[str], interactive: bool, nonce: str,
                    progress: Progress, workdir: Path, extra_files: dict | None = None) -> Path:
    root = source_root()
    try:
        relcwd = str(Path.cwd().resolve().relative_to(root))
    except ValueError:
        relcwd = "."
    stage = Path(tempfile.mkdtemp(prefix="pyxen-run-", dir=image.base_root / "tmp"))
    try:
        src = stage / "src"
        shutil.copytree(root, src, ignore=SOURCE_IGNORE, symlinks=True)
        sdist = _sdist(src, stage / "dist", progress)
        # The job sees the installed package only: no source package to import by mistake.
        shutil.rmtree(src / "pyxen")
        for leftover in src.glob("*.egg-info"):
            shutil.rmtree(leftover)
        _install_for_dom0(image, stage, sdist, progress)
        meta = src / ".pyxen-lab"
        (meta / "nonce").write_text(nonce + "\n")
        (meta / "job").write_text(_job_script(cmd, relcwd, interactive))
        if interactive:
            (meta / "interactive").write_text("")
        for name, host_path in (extra_files or {}).items():
            dest = meta / "extra" / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(host_path, dest)
        used = sum(f.stat().st_size for f in src.rglob("*") if f.is_file())
        size_mb = max(512, used * 2 // 2**20 + 256)
        img = workdir / "work.img"
        progress.run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "pyxen-work", "-d", str(src),
                      str(img), f"{size_mb}M"], "mke2fs (work disk)")
        return img
    finally:
        shutil.rmtree(stage, ignore_errors=True)


class _Terminated(Exception):
    pass


class _BootFailed(Exception):
    """The VM stopped before the dom0 said it was ready (the console tail is the message)."""


# A boot can die before the job starts (seen: Debian 13's kernel panicking in early boot
# under TCG on a loaded host); the job's disk is untouched then, so it is booted once more.
BOOT_ATTEMPTS = 2


def _on_sigterm(signum: int, frame: object) -> NoReturn:  # pragma: no cover - signal path
    raise _Terminated()


def run(cmd: list[str], *, timeout: float = 3600, accel: str | None = None,
        verbose: bool = False, interactive: bool = False, out: TextIO | None = None,
        xen: str | None = None, extra_files: dict | None = None) -> int:
    """Run ``cmd`` as root in a fresh lab dom0; return its exit status.

    The VM is powered off and every temporary file removed on the way out, also on
    timeout (exit 124), SIGTERM or Ctrl-C. ``extra_files`` ({name: host path}) are copied
    to ``/lab/work/.pyxen-lab/extra/<name>`` in the dom0.
    """
    out = out or sys.stdout
    require_host_tools("qemu-system-x86_64", "mke2fs", "chroot")
    image = build_image(recipe_for(xen))
    machine = choose_machine(accel)
    workdir = Path(tempfile.mkdtemp(prefix="pyxen-lab-"))
    progress = Progress(workdir / "prepare.log")
    nonce = secrets.token_hex(8)
    proc = None
    try:
        old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: the caller owns signal handling
        old_term = None
    try:
        work_img = _make_work_disk(image, cmd, interactive, nonce, progress, workdir,
                                   extra_files)
        qcmd = qemu_command(image, machine, work_img, interactive)
        progress.step(f"booting Xen {image.manifest()['xen']} + dom0 under QEMU "
                      f"({machine.accel}{', ~30 s' if machine.accel == 'tcg' else ''})")
        if interactive:
            proc = subprocess.Popen(qcmd)
            proc.wait()
            return proc.returncode
        t0 = time.monotonic()
        for attempt in range(1, BOOT_ATTEMPTS + 1):
            proc = subprocess.Popen(qcmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT)
            try:
                return _follow(proc, nonce, timeout - (time.monotonic() - t0), verbose, out)
            except _BootFailed as e:
                proc.wait()
                sys.stderr.write("pyxen-lab: the VM stopped before the dom0 was ready "
                                 f"(qemu exit {proc.returncode}); console:\n{e}\n")
                if attempt == BOOT_ATTEMPTS:
                    return EXIT_LAB_FAILED
                # the job has not started (its disk is untouched): boot once more
                sys.stderr.write("pyxen-lab: booting again\n")
        return EXIT_LAB_FAILED
    except _Terminated:
        return 143
    except KeyboardInterrupt:
        return 130
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        progress.close()
        shutil.rmtree(workdir, ignore_errors=True)
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


def _follow(proc: subprocess.Popen, nonce: str, timeout: float, verbose: bool,
            out: TextIO) -> int:
    begin = f"@@PYXEN-LAB-BEGIN {nonce}@@"
    end = re.compile(rf"@@PYXEN-LAB-END {nonce} (\d+)@@")
    boot_log: list[str] = []
    started = False
    t0 = time.monotonic()
    deadline = t0 + timeout
    buf = b""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()

    def emit(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            sys.stderr.write(f"pyxen-lab: timeout after {timeout:.0f}s; powering off\n")
            if not started:
                sys.stderr.write("\n".join(boot_log[-40:]) + "\n")
            return EXIT_TIMEOUT
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip("\r")
            if not started:
                boot_log.append(line)
                if verbose:
                    emit(line)
                if begin in line:
                    started = True
                    sys.stderr.write(f"[lab] dom0 ready after {time.monotonic() - t0:.0f}s\n")
                continue
            m = end.search(line)
            if m:
                pre = line[:m.start()]
                if pre:
                    emit(pre)
                rc = int(m.group(1))
                _drain_until_exit(proc, fd, 20, emit if verbose else None)
                sys.stderr.write(f"[lab] job done after {time.monotonic() - t0:.0f}s\n")
                return rc
            emit(line)
    proc.wait()
    if not started:
        raise _BootFailed("\n".join(boot_log[-60:]))
    sys.stderr.write("pyxen-lab: the VM stopped before the job finished "
                     f"(qemu exit {proc.returncode}); console:\n")
    sys.stderr.write("\n".join(boot_log[-60:]) + "\n")
    return EXIT_LAB_FAILED


def _drain_until_exit(proc: subprocess.Popen, fd: int, grace: float,
                      emit: Callable[[str], None] | None) -> None:
    """After the job: read the console until QEMU exits (the dom0 powers off) or ``grace``."""
    deadline = time.monotonic() + grace
    while proc.poll() is None:
        left = deadline - time.monotonic()
        if left <= 0:
            sys.stderr.write(f"[lab] VM did not power off within {grace:.0f}s; stopping QEMU\n")
            return
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                proc.wait()
                return
            if emit:
                emit(chunk.decode("utf-8", "replace").replace("\r", "").rstrip("\n"))
