"""Every pyxen parser, fuzzed with hypothesis in child processes (tests/host/fuzz.py).

A bounded campaign runs on every host test run: PYXEN_FUZZ_EXAMPLES examples per target
(default 1000; slow targets get fewer), with the fixed seed PYXEN_FUZZ_SEED, two children at
a time. Every case of fuzz_corpus.py, the inputs that ever broke a parser, is replayed too.
A longer campaign: ``python -m tests.host.fuzz --examples 100000 --save``."""

from __future__ import annotations

import ast
import os
import runpy
import sys
from pathlib import Path

import pytest

pytest.importorskip("hypothesis")
pytest.importorskip("pyxen.config")  # the Xen extension is built

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzz
import fuzz_corpus

EXAMPLES = int(os.environ.get("PYXEN_FUZZ_EXAMPLES", "1000"))
SEED = int(os.environ.get("PYXEN_FUZZ_SEED", "20250601"))
JOBS = int(os.environ.get("PYXEN_FUZZ_JOBS", "2"))
TARGETS = fuzz.default_targets()


@pytest.fixture(scope="module")
def campaign() -> dict[str, fuzz.Result]:
    results = fuzz.run(TARGETS, EXAMPLES, SEED, jobs=JOBS, hang=60)
    return {r.target: r for r in results}


@pytest.fixture(scope="module")
def corpus() -> dict[str, fuzz.Result]:
    names = sorted({c.target for c in fuzz_corpus.CORPUS})
    results = fuzz.run(names, 0, 0, jobs=JOBS, corpus=True, hang=60)
    return {r.target: r for r in results}


@pytest.mark.parametrize("name", TARGETS)
def test_fuzz(campaign: dict[str, fuzz.Result], name: str) -> None:
    r = campaign[name]
    if not r.ok:
        pytest.fail(r.report(), pytrace=False)
    assert r.examples >= 10


@pytest.mark.parametrize("name", sorted({c.target for c in fuzz_corpus.CORPUS}))
def test_corpus(corpus: dict[str, fuzz.Result], name: str) -> None:
    r = corpus[name]
    if not r.ok:
        pytest.fail(r.report(), pytrace=False)
    assert r.examples == len([c for c in fuzz_corpus.CORPUS if c.target == name])


def test_corpus_is_well_formed() -> None:
    """Each case names a target, and survives the repr() that --save writes."""
    assert len(fuzz_corpus.CORPUS) >= 50
    for case in fuzz_corpus.CORPUS:
        assert case.target in fuzz.TARGETS, case
        assert ast.literal_eval(repr(case.value)) == case.value, case


def test_every_target_is_covered_by_the_corpus() -> None:
    assert set(TARGETS) - {"config_model"} <= {c.target for c in fuzz_corpus.CORPUS}


# ---- the harness itself ------------------------------------------------------------------

def test_harness_reports_exit_with_its_input() -> None:
    """libxlutil without pyxen's guards: flex's exit(2) is caught, with the input."""
    (r,) = fuzz.run(["_unguarded_disk"], 50, 1, jobs=1)
    assert not r.ok and r.kind == "exit 2" and r.input == "=\n", r.report()
    assert "flex scanner jammed" in r.output


def test_harness_reports_a_hang() -> None:
    (r,) = fuzz.run(["_hang"], 50, 1, jobs=1, hang=1.5)
    assert not r.ok and r.kind.startswith("hang") and r.input >= 3, r.report()


def test_harness_shrinks_a_wrong_result() -> None:
    (r,) = fuzz.run(["_wrong"], 300, 1, jobs=1)
    assert not r.ok and r.kind == "check failed" and r.input == 500, r.report()
    assert "AssertionError: a wrong result" in r.output


def test_save_appends_a_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "corpus.py"
    target.write_text(fuzz.CORPUS_FILE.read_text())
    monkeypatch.setattr(fuzz, "CORPUS_FILE", target)
    fuzz.save(fuzz.Result("parse_disk", False, 1, 0.1, "exit 2", "=\n"), 7)
    ns = runpy.run_path(str(target))
    assert ns["CORPUS"][-1].value == "=\n" and "seed 7" in ns["CORPUS"][-1].note


def test_models_of_the_c_code() -> None:
    """The fuzz oracles' models of libxl against known answers."""
    assert fuzz.libxl_vdev("xvda") == 202 << 8
    assert fuzz.libxl_vdev("xvdq") == (1 << 28) | (16 << 8)
    assert fuzz.libxl_vdev("d010p1") == (202 << 8) | (8 << 4) | 1  # %i: octal
    assert fuzz.libxl_vdev("010") == 8 and fuzz.libxl_vdev("0x10") == 16
    assert fuzz.libxl_vdev("xvda+1") == (202 << 8) | 1             # strtoul takes "+1"
    assert fuzz.libxl_vdev("hdc") == 22 << 8 and fuzz.libxl_vdev("hde") is None
    assert fuzz.libxl_vdev("xvda0") is None and fuzz.libxl_vdev("2147483648") is None
    assert fuzz.libxlu_rate("10Mb/s") == (62500, 50000)
    assert fuzz.libxlu_rate("10Mb/s@20ms") == (25000, 20000)
    assert fuzz.libxlu_rate("018Mb/s") == (0, 50000)
    assert fuzz.libxlu_rate("010Mb/s") == (50000, 50000)
    assert fuzz.libxlu_rate("0Mb/s") is None
