"""pyxen.xspath: the xenstore layout's paths (pure), and the lookup's argument checks."""

import pytest

from pyxen import xspath
from pyxen.errors import DomainNotFoundError


def test_paths():
    assert xspath.domain(7) == "/local/domain/7"
    assert xspath.libxl(7) == "/libxl/7"
    assert xspath.record(7, "dm-pid") == "/libxl/7/pyxen/dm-pid"
    assert xspath.device_model(7) == "/local/domain/0/device-model/7"
    assert xspath.device(7, "vbd", 51712) == ("/local/domain/7/device/vbd/51712",
                                              "/local/domain/0/backend/vbd/7/51712",
                                              "/libxl/7/device/vbd/51712")
    assert xspath.backend(0, "vif", 7) == "/local/domain/0/backend/vif/7"
    assert xspath.backend(0, "vif") == "/local/domain/0/backend/vif"
    assert xspath.console(7) == "/local/domain/7/console"
    assert xspath.console(7, 2) == "/local/domain/7/device/console/2"


@pytest.mark.parametrize("path,want", [
    ("/local/domain/0/backend/vbd/7/51712", (0, "vbd", 7, 51712)),
    ("/local/domain/3/backend/qdisk/12/768", (3, "qdisk", 12, 768)),
    ("/local/domain/0/backend/vbd/7/51712/", None),
    ("/local/domain/0/backend/vbd/07/51712", None),
    ("/local/domain/0/backend/../vbd/7/1", None),
    ("/local/domain/0/backend/vbd/7/1\n", None),
    ("/local/domain/0/backend/VBD/7/1", None),
    ("/local/domain/100000/backend/vbd/7/1", None),
    (b"/local/domain/0/backend/vbd/7/1", None),
    (None, None),
])
def test_parse_backend_only_the_exact_form(path, want):
    assert xspath.parse_backend(path) == want


@pytest.mark.parametrize("bad", [None, 1.5, b"3", True, [], -1, 0x7FF0, "", "99999"])
def test_resolve_refuses_what_is_no_domid_before_asking_xenstore(bad):
    """No xenstore handle is needed to refuse these: xs is never touched (None here)."""
    with pytest.raises(DomainNotFoundError):
        xspath.resolve(None, bad)  # type: ignore[arg-type]


def test_resolve_takes_an_id_without_xenstore():
    assert xspath.resolve(None, 5) == 5  # type: ignore[arg-type]
    assert xspath.resolve(None, "5") == 5  # type: ignore[arg-type]
    with pytest.raises(DomainNotFoundError, match="invalid domain identifier"):
        xspath.resolve(None, 5, alive=lambda d: False)  # type: ignore[arg-type]
