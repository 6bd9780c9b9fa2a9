"""Build and cache the lab's dom0 image: a Debian root with Xen, booted under QEMU.

Two cached layers, each keyed by a hash of what makes it:

* ``base-<key>/root``: debootstrap minbase + the recipe's packages (minutes, once);
  also the chroot in which pyxen is compiled for the dom0's python3.
* ``image-<key>/``: the bootable set made from the base in seconds: ``root.img`` (ext4),
  ``xen`` (the gunzipped hypervisor), ``vmlinuz``, ``initrd.img``, plus the guest kit
  inside the image under ``/usr/share/pyxen-lab/guest``.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from . import cpio

FILES = Path(__file__).with_name("files")

# Bump when a build step changes in a way the lists below do not show.
BASE_REVISION = 2
IMAGE_REVISION = 1


COMMON_PACKAGES = (
    "linux-image-amd64", "libxen-dev", "gcc", "libc6-dev", "python3-dev", "python3-cffi",
    "python3-setuptools", "python3-pytest", "python3-pyxs", "qemu-system-xen", "seabios",
    "busybox-static", "kmod", "udev", "iproute2", "bridge-utils", "procps", "initramfs-tools",
    "python3-pip", "python3-venv", "python3-hypothesis", "pkg-config",
)

# pyxen's build backend needs setuptools >= 77 (PEP 639 license expressions), which needs
# packaging >= 24.2; Debian 12 ships 66. The base layer carries a venv that sees Debian's
# cffi and adds only those, so a lab run builds the sdist's wheel offline
# (--no-build-isolation) against the dom0's own cffi.
BUILD_VENV = "/opt/pyxen-build"
BUILD_REQUIRES = ("setuptools>=77", "packaging>=24.2")


@dataclass(frozen=True)
class Recipe:
    """What goes into one lab image: a Debian release and its Xen."""

    xen: str = "4.17"
    suite: str = "bookworm"
    packages: tuple[str, ...] = ("xen-utils-4.17", "xen-hypervisor-4.17-amd64") + COMMON_PACKAGES
    image_size_mb: int = 6144

    def base_key(self) -> str:
        text = json.dumps([BASE_REVISION, self.suite, sorted(self.packages), BUILD_REQUIRES])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def image_key(self) -> str:
        h = hashlib.sha256(f"{self.base_key()}:{IMAGE_REVISION}:{self.image_size_mb}".encode())
        for name in sorted(os.listdir(FILES)):
            h.update(name.encode() + b"\0" + (FILES / name).read_bytes())
        return h.hexdigest()[:16]


RECIPES = {
    "4.17": Recipe(),
    "4.20": Recipe(xen="4.20", suite="trixie",
                   packages=("xen-utils-4.20", "xen-hypervisor-4.20-amd64") + COMMON_PACKAGES),
}
DEFAULT_XEN = "4.17"


def recipe_for(xen: str | None) -> Recipe:
    xen = xen or os.environ.get("PYXEN_LAB_XEN") or DEFAULT_XEN
    try:
        return RECIPES[xen]
    except KeyError:
        raise LabError(f"no lab for Xen {xen!r}; choose one of {', '.join(RECIPES)}") from None


class LabError(RuntimeError):
    """The lab cannot do what was asked; the message says why and how to fix it."""


def version_cache(recipe: Recipe) -> Path:
    """Each Xen version's images live apart, so building one never evicts another."""
    return cache_root() / f"xen-{recipe.xen}"


def cache_root() -> Path:
    env = os.environ.get("PYXEN_LAB_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "pyxen" / "lab"


def require_host_tools(*tools: str) -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (debootstrap, chroot, mke2fs -d keep ownership): "
                       "run it as root, e.g. with sudo")
    fixes = {"debootstrap": "debootstrap", "mke2fs": "e2fsprogs", "chroot": "coreutils",
             "qemu-system-x86_64": "qemu-system-x86", "debugfs": "e2fsprogs"}
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pkgs = " ".join(sorted({fixes.get(t, t) for t in missing}))
        raise LabError(f"missing host tool(s) {', '.join(missing)}: apt-get install {pkgs}")


def find_mirror(suite: str = "bookworm", etc_apt: str = "/etc/apt") -> str:
    """The Debian mirror this machine's apt already uses (never a hard-coded host)."""
    env = os.environ.get("PYXEN_LAB_MIRROR")
    if env:
        return env
    candidates: list[str] = []
    for path in sorted(glob.glob(f"{etc_apt}/sources.list.d/*.sources")):
        with open(path) as f:
            for stanza in f.read().split("\n\n"):
                fields = {}
                for line in stanza.splitlines():
                    if ":" in line and not line.startswith((" ", "#")):
                        k, v = line.split(":", 1)
                        fields[k.strip().lower()] = v.strip()
                if (fields.get("enabled", "yes") != "no"
                        and "deb" in fields.get("types", "").split()
                        and suite in fields.get("suites", "").split()):
                    candidates += fields.get("uris", "").split()
    for path in [f"{etc_apt}/sources.list", *sorted(glob.glob(f"{etc_apt}/sources.list.d/*.list"))]:
        with contextlib.suppress(OSError), open(path) as f:
            for line in f:
                m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s", line)
                if m and m.group(2) == suite:
                    candidates.append(m.group(1))
    for uri in candidates:
        if "security" not in uri:
            return uri.rstrip("/")
    if suite != "bookworm" and not candidates:
        # A Debian mirror serves every release: reuse the one apt uses for bookworm.
        with contextlib.suppress(LabError):
            return find_mirror("bookworm", etc_apt)
    raise LabError(f"no apt source for Debian {suite} found in /etc/apt/sources.list(.d); "
                   "set PYXEN_LAB_MIRROR to a Debian mirror URL")


class Progress:
    """Prints a build step's progress: every line to the log, a running summary to the terminal."""

    def __init__(self, log: Path):
        self.log = open(log, "a", buffering=1)
        self.tty = sys.stderr.isatty()
        self.t0 = time.monotonic()

    def step(self, msg: str) -> None:
        self.log.write(f"=== {msg}\n")
        if self.tty:
            sys.stderr.write("\r\033[K")
        sys.stderr.write(f"[lab {time.monotonic() - self.t0:5.0f}s] {msg}\n")
        sys.stderr.flush()

    def run(self, cmd: list[str], what: str, **kw: Any) -> None:
        self.log.write(f"$ {' '.join(cmd)}\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, errors="replace", **kw)
        n, last_print = 0, time.monotonic()
        assert proc.stdout
        for line in proc.stdout:
            self.log.write(line)
            n += 1
            now = time.monotonic()
            notable = re.match(r"(I: Retrieving|I: Extracting|I: Unpacking|I: Configuring|"
                               r"Unpacking|Setting up|Get:|update-initramfs)", line)
            if (self.tty and notable) or now - last_print > 15:
                last_print = now
                text = f"[lab {now - self.t0:5.0f}s]   {what}: {line.strip()[:90]}"
                sys.stderr.write(("\r\033[K" + text) if self.tty else text + "\n")
                sys.stderr.flush()
        rc = proc.wait()
        if self.tty:
            sys.stderr.write("\r\033[K")
        if rc:
            self.log.flush()
            tail = Path(self.log.name).read_text(errors="replace").splitlines()[-25:]
            raise LabError(f"{what} failed (exit {rc}); last lines of {self.log.name}:\n"
                           + "\n".join(tail))

    def close(self) -> None:
        self.log.close()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _proc_mounted(root: Path) -> Iterator[None]:
    proc = root / "proc"
    subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(proc)], check=False)


@dataclass(frozen=True)
class Image:
    """A built, bootable lab image."""

    dir: Path
    base_root: Path

    @property
    def root_img(self) -> Path:
        return self.dir / "root.img"

    @property
    def xen(self) -> Path:
        return self.dir / "xen"

    @property
    def vmlinuz(self) -> Path:
        return self.dir / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.img"

    def manifest(self) -> dict:
        return json.loads((self.dir / "manifest.json").read_text())


def _chroot_env() -> dict:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
            "DEBIAN_FRONTEND": "noninteractive"}


def build_base(recipe: Recipe, progress: Progress) -> Path:
    final = version_cache(recipe) / f"base-{recipe.base_key()}"
    if (final / "ok").exists():
        return final / "root"
    require_host_tools("debootstrap", "chroot")
    tmp = final.with_name(final.name + ".tmp")
    if tmp.exists():
        with contextlib.suppress(Exception):
            subprocess.run(["umount", "-l", str(tmp / "root" / "proc")],
                           stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(tmp)
    root = tmp / "root"
    root.mkdir(parents=True)
    mirror = find_mirror(recipe.suite)
    progress.step(f"debootstrap {recipe.suite} (minbase) from {mirror} — about 2 minutes")
    progress.run(["debootstrap", "--variant=minbase", recipe.suite, str(root), mirror],
                 "debootstrap")
    (root / "etc/apt/sources.list").write_text(f"deb {mirror} {recipe.suite} main\n")
    (root / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
    os.chmod(root / "usr/sbin/policy-rc.d", 0o755)
    progress.step(f"installing {len(recipe.packages)} packages (Xen {recipe.xen}, kernel, "
                  "qemu-xen, toolchain) — about 2 minutes")
    env = _chroot_env()
    with _proc_mounted(root):
        progress.run(["chroot", str(root), "apt-get", "update"], "apt-get update", env=env)
        progress.run(["chroot", str(root), "apt-get", "install", "-y", "--no-install-recommends",
                      *recipe.packages], "apt-get install", env=env)
        progress.run(["chroot", str(root), "apt-get", "clean"], "apt-get clean", env=env)
        progress.step(f"build venv {BUILD_VENV} ({', '.join(BUILD_REQUIRES)})")
        progress.run(["chroot", str(root), "python3", "-m", "venv", "--system-site-packages",
                      BUILD_VENV], "python3 -m venv", env=env)
        # The host's pip fetches the (pure-Python) wheels with the host's index and CA
        # settings; the chroot installs them from files, offline.
        wheels = root / "tmp" / "pyxen-build-wheels"
        wheels.mkdir()
        progress.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                      "--only-binary", ":all:", "-d", str(wheels), *BUILD_REQUIRES],
                     "pip download (build venv)")
        progress.run(["chroot", str(root), f"{BUILD_VENV}/bin/pip", "install", "-q",
                      "--disable-pip-version-check", "--no-index", "--no-deps",
                      *sorted(f"/tmp/{wheels.name}/{w.name}" for w in wheels.iterdir())],
                     "pip install (build venv)", env=env)
        shutil.rmtree(wheels)
    tmp.rename(final)
    (final / "ok").write_text(json.dumps({"recipe": recipe.packages, "mirror": mirror}))
    return final / "root"


def _guest_initrd(root: Path, kver: str) -> bytes:
    """The busybox guest initramfs: /init, busybox, and xen-blkfront/netfront modules."""
    entries = [cpio.Entry.dir(d) for d in ("bin", "sbin", "dev", "proc", "sys", "modules",
                                           "usr", "usr/bin", "usr/sbin", "tmp")]
    entries.append(cpio.Entry.file("bin/busybox", (root / "bin/busybox").read_bytes(), 0o755))
    entries.append(cpio.Entry.symlink("bin/sh", "busybox"))
    entries.append(cpio.Entry.file("init", (FILES / "guest-init").read_bytes(), 0o755))
    moddir = root / "lib/modules" / kver / "kernel"
    for name in ("xen-blkfront", "xen-netfront"):
        found = sorted(moddir.rglob(f"{name}.ko*"))
        if not found:
            raise LabError(f"guest kit: module {name} not found under {moddir}")
        data = found[0].read_bytes()
        if found[0].name.endswith(".xz"):
            data = lzma.decompress(data)
        elif found[0].name.endswith(".zst"):
            raise LabError(f"guest kit: cannot unpack {found[0]} (zstd)")
        entries.append(cpio.Entry.file(f"modules/{name}.ko", data))
    return cpio.write_gz(entries)


def build_image(recipe: Recipe | None = None) -> Image:
    """Return the cached image for ``recipe``, building what is missing (with progress)."""
    recipe = recipe or recipe_for(None)
    cache = version_cache(recipe)
    cache.mkdir(parents=True, exist_ok=True)
    final = cache / f"image-{recipe.image_key()}"
    base_root = cache / f"base-{recipe.base_key()}" / "root"
    if (final / "manifest.json").exists():
        return Image(final, base_root)
    with _locked(cache / "build.lock"):
        if (final / "manifest.json").exists():
            return Image(final, base_root)
        require_host_tools("mke2fs")
        cache.joinpath("logs").mkdir(exist_ok=True)
        progress = Progress(cache / "logs" / f"build-{recipe.image_key()}.log")
        t0 = time.monotonic()
        try:
            progress.step(f"building the Xen {recipe.xen} lab image into {cache} "
                          "(once; later runs reuse it)")
            root = build_base(recipe, progress)
            tmp = final.with_name(final.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            progress.step("configuring the dom0 (init, guest kit)")
            shutil.copy(FILES / "dom0-init", root / "sbin/pyxen-lab-init")
            os.chmod(root / "sbin/pyxen-lab-init", 0o755)
            (root / "etc/hostname").write_text("pyxen-lab\n")
            (root / "etc/fstab").write_text("")
            for d in ("lab/work", "var/lib/xen", "var/log/xen"):
                (root / d).mkdir(parents=True, exist_ok=True)
            xen_gz = sorted(root.glob(f"boot/xen-{recipe.xen}-amd64.gz"))
            kernels = sorted(root.glob("boot/vmlinuz-*"))
            initrds = sorted(root.glob("boot/initrd.img-*"))
            if not (xen_gz and kernels and initrds):
                raise LabError(f"image root lacks boot files (xen {xen_gz}, kernel {kernels}, "
                               f"initrd {initrds}); see {progress.log.name}")
            kver = kernels[-1].name[len("vmlinuz-"):]
            (tmp / "xen").write_bytes(gzip.decompress(xen_gz[-1].read_bytes()))
            shutil.copy(kernels[-1], tmp / "vmlinuz")
            shutil.copy(initrds[-1], tmp / "initrd.img")
            guest = root / "usr/share/pyxen-lab/guest"
            guest.mkdir(parents=True, exist_ok=True)
            shutil.copy(kernels[-1], guest / "vmlinuz")
            (guest / "initrd.cpio.gz").write_bytes(_guest_initrd(root, kver))
            progress.step(f"writing root.img ({recipe.image_size_mb} MiB ext4, sparse)")
            progress.run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "pyxen-root", "-d", str(root),
                          str(tmp / "root.img"), f"{recipe.image_size_mb}M"], "mke2fs")
            (tmp / "manifest.json").write_text(json.dumps({
                "xen": recipe.xen, "suite": recipe.suite, "kernel": kver,
                "base": recipe.base_key(), "image": recipe.image_key(),
                "built": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1))
            tmp.rename(final)
            for old in [*cache.glob("image-*"), *cache.glob("base-*")]:
                if (old not in (final, base_root.parent) and old.is_dir()
                        and not old.name.endswith(".tmp")):
                    shutil.rmtree(old, ignore_errors=True)
            progress.step(f"lab image ready in {time.monotonic() - t0:.0f}s: {final}")
        finally:
            progress.close()
    return Image(final, base_root)
