"""The package a user installs: what the sdist and the wheel carry, the metadata, the version's
one source of truth, and the CLI's exit statuses (xl's: 1 for a failed operation, 2 for usage).

``make test`` builds ``dist/`` first (``make dist``) and passes it as ``PYXEN_DIST``; run
alone, these tests build the sdist and wheel themselves.
"""

from __future__ import annotations

import email
import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    given = os.environ.get("PYXEN_DIST")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def sdist_names(dist: Path) -> set[str]:
    with tarfile.open(dist / f"pyxen-{VERSION}.tar.gz") as t:
        return {n.split("/", 1)[1] for n in t.getnames() if "/" in n}


@pytest.fixture(scope="module")
def wheel(dist: Path) -> zipfile.ZipFile:
    (path,) = dist.glob(f"pyxen-{VERSION}-*.whl")
    return zipfile.ZipFile(path)


def _packages() -> list[str]:
    return sorted(str(p.parent.relative_to(ROOT)) for p in (ROOT / "pyxen").rglob("__init__.py"))


def test_sdist_carries_what_the_build_needs(sdist_names):
    for name in ("LICENSE", "README.md", "pyproject.toml", "setup.py", "pyxen/_ffi_build.py",
                 "pyxen/py.typed", "pyxen/lab/files/dom0-init"):
        assert name in sdist_names, name
    for header in (ROOT / "csrc").iterdir():
        assert f"csrc/{header.name}" in sdist_names, header.name
    for pkg in _packages():
        assert f"{pkg}/__init__.py" in sdist_names, pkg
    assert not any(n.endswith((".so", ".o")) for n in sdist_names)


def test_wheel_carries_extensions_subpackages_and_marker(wheel):
    names = set(wheel.namelist())
    assert "pyxen/py.typed" in names
    for mod in ("_xen", "_cpuid", "_linux"):
        assert any(n.startswith(f"pyxen/{mod}.") and n.endswith(".so") for n in names), mod
        assert f"pyxen/{mod}.pyi" in names, mod
    for pkg in _packages():
        assert f"{pkg}/__init__.py" in names, pkg
    assert f"pyxen-{VERSION}.dist-info/licenses/LICENSE" in names


def test_metadata(wheel):
    meta = email.message_from_bytes(wheel.read(f"pyxen-{VERSION}.dist-info/METADATA"))
    assert meta["Name"] == "pyxen" and meta["Version"] == VERSION
    assert meta["License-Expression"] == "LGPL-2.1-only"
    license_text = (ROOT / "LICENSE").read_text()
    assert "GNU LESSER GENERAL PUBLIC LICENSE" in license_text and "Version 2.1" in license_text
    classifiers = meta.get_all("Classifier")
    assert "Typing :: Typed" in classifiers
    assert "Programming Language :: Python :: 3.11" in classifiers  # Debian 12's python3
    assert "Programming Language :: Python :: 3.13" in classifiers  # Debian 13's python3
    assert meta.get_all("Requires-Dist")[0].startswith("cffi")
    test_extra = [r for r in meta.get_all("Requires-Dist") if 'extra == "test"' in r]
    for needed in ("pytest", "hypothesis", "mypy", "ruff", "types-cffi", "build"):
        assert any(r.startswith(needed) for r in test_extra), needed
    ep = wheel.read(f"pyxen-{VERSION}.dist-info/entry_points.txt").decode()
    assert "pyxen = pyxen.cli:main" in ep


def test_version_has_one_source():
    import pyxen
    assert pyxen.__version__ == VERSION
    out = subprocess.run([sys.executable, "-m", "pyxen", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == f"pyxen {VERSION}"
    assert VERSION not in (ROOT / "pyxen" / "__init__.py").read_text()


@pytest.mark.skipif(os.path.exists("/dev/xen/privcmd"), reason="this host runs Xen")
def test_cli_exit_statuses_are_xls():
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pyxen", *args], capture_output=True,
                              text=True, cwd="/")
    no_xen = run("list")
    assert no_xen.returncode == 1, no_xen
    assert len(no_xen.stderr.strip().splitlines()) == 1
    assert no_xen.stderr.startswith("pyxen: ")
    usage = run("no-such-verb")
    assert usage.returncode == 2
    assert run("virt-caps", "--json").returncode == 0


def test_cli_failure_is_one_error_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pyxen", "create", str(tmp_path / "nope.cfg")],
                       capture_output=True, text=True, cwd="/")
    assert r.returncode == 1, r
    errors = [line for line in r.stderr.splitlines() if line.startswith("pyxen: ")]
    assert len(errors) == 1 and "nope.cfg" in errors[0], r.stderr  # (xl's "Parsing config")
