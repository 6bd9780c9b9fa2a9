"""pyxen.config on malformed input, fuzzed with hypothesis: typed errors, never a crash."""

import warnings

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pyxen import config  # noqa: E402
from pyxen.config import ConfigError, ConfigWarning, DomainConfig, parse_string  # noqa: E402



KEYS = sorted(config._INTERPRETED | set(config.XM_KEYS_IGNORED)) + ["pci", "bogus"]
ATOMS = st.one_of(
    st.integers(-5, 5000).map(str),
    st.text(st.characters(blacklist_characters="'\\\n\x00"), max_size=30).map(
        lambda s: f"'{s}'"),
    st.sampled_from(["'phy:/dev/a,xvda,w'", "'bridge=br0'", "'mac=00:16:3e:1:2:3'", "''",
                     "'hvm'", "'destroy'", "'c'", "'10Mb/s'", "'bridge'", "'rate=x'"]),
)
VALUES = st.one_of(ATOMS, st.lists(ATOMS, max_size=3).map(lambda x: "[" + ",".join(x) + "]"))
LINES = st.tuples(st.sampled_from(KEYS), st.sampled_from(["=", "+="]), VALUES).map(
    lambda t: f"{t[0]} {t[1]} {t[2]}")


def check(text):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        try:
            cfg = parse_string(text, filename="fuzz.cfg")
        except ConfigError as e:
            assert e.file == "fuzz.cfg" and str(e)
            return
    assert isinstance(cfg, DomainConfig) and cfg.name
    assert DomainConfig.from_libxl_json(cfg.to_libxl_json(), like=cfg) == cfg


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LINES, max_size=12))
def test_fuzz_structured(lines):
    check("\n".join(["name='fz'"] + lines) + "\n")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_bytes(data):
    check(data)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="name=' []\n,#;+\"x0123\\-:", max_size=120))
def test_fuzz_syntax(text):
    check(text)
