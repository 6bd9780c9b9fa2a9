"""One ``except DomainNotFoundError`` catches every layer's "no such domain"."""

import pytest

import pyxen.ctrl as ctrl
import pyxen.devices as devices
import pyxen.light as light
from pyxen.errors import DomainNotFoundError, PyxenError


@pytest.mark.parametrize("cls", [ctrl.NoSuchDomainError, light.DomainNotFound,
                                 devices.DomainNotFoundError])
def test_every_not_found_is_one_family(cls):
    assert issubclass(cls, DomainNotFoundError)
    assert issubclass(cls, LookupError) and issubclass(cls, PyxenError)


def test_layer_errors_keep_their_own_bases():
    assert issubclass(ctrl.NoSuchDomainError, ctrl.XenCtrlError)
    assert issubclass(light.DomainNotFound, light.LibxlError)
    assert issubclass(devices.DomainNotFoundError, devices.DeviceError)
    e = ctrl.NoSuchDomainError(3, call="xc_domain_pause", domid=77)  # ESRCH
    assert e.errno == 3 and e.domid == 77 and "77" in str(e)
