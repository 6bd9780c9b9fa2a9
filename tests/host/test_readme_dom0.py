"""The README's "On a real Xen dom0" commands, run as written in a Debian 12 and a Debian 13
root (the lab images' base layers, which carry the packages the README names).

The chroot has no hypervisor, so the block's last command (``pyxen info``) must fail as xl
does without Xen: exit status 1 and one line. pip reaches the package index with the host's
CA bundle (this workplace's index sits behind a TLS proxy whose CA the chroot lacks).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from pyxen.lab import image, vm

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")


def _readme_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"^## On a real Xen dom0.*?```sh\n(.*?)```", text, re.S | re.M)
    assert m, "README has an 'On a real Xen dom0' section with a sh block"
    return [re.sub(r"\s+#.*$", "", line).strip() for line in m.group(1).splitlines()
            if line.strip()]


def test_readme_block_is_what_this_test_runs():
    lines = _readme_block()
    assert lines[0].startswith("apt-get install ")
    assert lines[1] == "python3 -m venv /opt/pyxen"
    assert "/opt/pyxen/bin/pip install ." in lines
    assert lines[-1] == "/opt/pyxen/bin/pyxen info"


@pytest.mark.parametrize("xen", sorted(image.RECIPES))
def test_readme_dom0_commands_work_as_written(xen):
    recipe = image.recipe_for(xen)
    root = image.build_image(recipe).base_root
    lines = _readme_block()
    wanted = lines[0].split()[2:]
    missing = set(wanted) - set(recipe.packages)
    assert not missing, f"the {xen} base lacks {missing}"
    stage = Path(tempfile.mkdtemp(prefix="pyxen-readme-", dir=root / "tmp"))
    inside = "/" + str(stage.relative_to(root))
    try:
        shutil.copytree(ROOT, stage / "src", ignore=vm.SOURCE_IGNORE, symlinks=True)
        env = image._chroot_env()
        ca = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
        if os.path.exists(ca):
            shutil.copy(ca, stage / "ca.crt")
            env["PIP_CERT"] = f"{inside}/ca.crt"
        if os.environ.get("PIP_INDEX_URL"):
            env["PIP_INDEX_URL"] = os.environ["PIP_INDEX_URL"]
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        # the commands after apt-get, as written, with the venv in this test's folder
        script = [f"cd {shlex.quote(inside)}/src"]
        script += [line.replace("/opt/pyxen", f"{inside}/venv") for line in lines[1:-1]]
        run = subprocess.run(["chroot", str(root), "/bin/sh", "-ec", "\n".join(script)],
                             env=env, capture_output=True, text=True, timeout=900)
        assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
        assert re.search(r"^pyxen \d+\.\d+", run.stdout, re.M), run.stdout
        last = lines[-1].replace("/opt/pyxen", f"{inside}/venv")
        info = subprocess.run(["chroot", str(root), "/bin/sh", "-c", f"cd / && {last}"],
                              env=env, capture_output=True, text=True, timeout=120)
        assert info.returncode == 1, info
        assert len(info.stderr.strip().splitlines()) == 1, info.stderr
        assert "privcmd" in info.stderr
    finally:
        shutil.rmtree(stage, ignore_errors=True)
