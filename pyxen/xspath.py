"""The xenstore layout pyxen reads and writes, in one place.

Xen's toolstack keeps a domain's state in four trees (see xen.git docs/misc/xenstore-paths):

* ``/local/domain/<domid>``: the domain's home. The guest owns most of it and can write
  anything under it, so dom0 never trusts a value read there as a path, a number or a
  command argument (XSA-175).
* ``/local/domain/<bdom>/backend/<kind>/<domid>/<devid>``: a device's backend, owned by the
  backend domain (dom0 here).
* ``/libxl/<domid>``: libxl's dom0-only mirror (``device/<kind>/<devid>`` with the exact
  backend and frontend paths), plus pyxen's own records under ``/libxl/<domid>/pyxen``.
* ``/vm/<uuid>``: the domain's VM directory.

Every path pyxen builds comes from here; :func:`domids`, :func:`names` and :func:`resolve`
are the one name ↔ domid lookup that guest, devices, light and the CLI share.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ._text import printable
from .errors import DomainNotFoundError, PyxenError

if TYPE_CHECKING:
    from typing import Callable

    from .xenstore import XenStore

DOMAINS = "/local/domain"
LIBXL = "/libxl"
VMS = "/vm"
DOMID_MAX = 0x7FEF            # DOMID_FIRST_RESERVED - 1

#: a domid as xenstore lists it: decimal, no sign, no leading zero
DOMID_RE = re.compile(r"0|[1-9][0-9]{0,4}")
#: a devid: decimal, no leading zero, at most 2^31 - 1
DEVID_RE = re.compile(r"0|[1-9][0-9]{0,9}")
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                     r"[0-9a-fA-F]{12}")
#: the exact form of a backend directory: bdom, kind, domid, devid
BACKEND_RE = re.compile(r"/local/domain/(0|[1-9][0-9]{0,4})/backend/([a-z0-9]+)/"
                        r"(0|[1-9][0-9]{0,4})/(0|[1-9][0-9]{0,9})")


# -- a domain's trees ----------------------------------------------------------------------

def domain(domid: int) -> str:
    """``/local/domain/<domid>``: the domain's home (guest-writable)."""
    return f"{DOMAINS}/{domid}"


def libxl(domid: int) -> str:
    """``/libxl/<domid>``: libxl's dom0-only mirror of the domain."""
    return f"{LIBXL}/{domid}"


def vm(uuid: str) -> str:
    """``/vm/<uuid>``: the domain's VM directory."""
    return f"{VMS}/{uuid}"


def record(domid: int, key: str) -> str:
    """``/libxl/<domid>/pyxen/<key>``: what pyxen records for dom0 to trust later (the
    device model's pid, the serial, ...)."""
    return f"{LIBXL}/{domid}/pyxen/{key}"


def device_model(domid: int, dm_domid: int = 0) -> str:
    """``/local/domain/<dm_domid>/device-model/<domid>``: where qemu reports its state."""
    return f"{DOMAINS}/{dm_domid}/device-model/{domid}"


# -- devices -------------------------------------------------------------------------------

def frontend(domid: int, kind: str, devid: int | None = None) -> str:
    """``/local/domain/<domid>/device/<kind>[/<devid>]`` (guest-writable)."""
    base = f"{DOMAINS}/{domid}/device/{kind}"
    return base if devid is None else f"{base}/{devid}"


def backend(bdom: int, kind: str, domid: int | None = None, devid: int | None = None) -> str:
    """``/local/domain/<bdom>/backend/<kind>[/<domid>[/<devid>]]``."""
    base = f"{DOMAINS}/{bdom}/backend/{kind}"
    if domid is None:
        return base
    return f"{base}/{domid}" if devid is None else f"{base}/{domid}/{devid}"


def mirror(domid: int, kind: str, devid: int | None = None) -> str:
    """``/libxl/<domid>/device/<kind>[/<devid>]``: libxl's record of a device (dom0's)."""
    base = f"{LIBXL}/{domid}/device/{kind}"
    return base if devid is None else f"{base}/{devid}"


def device(domid: int, kind: str, devid: int, bdom: int = 0) -> tuple[str, str, str]:
    """(frontend, backend, libxl mirror) paths of one device."""
    return frontend(domid, kind, devid), backend(bdom, kind, domid, devid), \
        mirror(domid, kind, devid)


def parse_backend(path: str) -> tuple[int, str, int, int] | None:
    """(bdom, kind, domid, devid) of a path of exactly the backend form, else None."""
    m = BACKEND_RE.fullmatch(path) if isinstance(path, str) else None
    if not m:
        return None
    return int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))


def console(domid: int, devid: int = 0) -> str:
    """The primary console's frontend (``.../console``) or a secondary one's
    (``.../device/console/<devid>``)."""
    return f"{DOMAINS}/{domid}/console" if devid == 0 else frontend(domid, "console", devid)


# -- name <-> domid ------------------------------------------------------------------------

def domids(xs: XenStore) -> list[int]:
    """The domids xenstore lists under ``/local/domain`` (entries of the domid form only)."""
    from .xenstore import XenStoreNotFound
    try:
        ids = xs.ls(DOMAINS)
    except XenStoreNotFound:
        return []
    return [int(d) for d in ids if DOMID_RE.fullmatch(d) and int(d) <= DOMID_MAX]


def name(xs: XenStore, domid: int) -> str | None:
    """What ``/local/domain/<domid>/name`` says (the guest can rewrite it: for display and
    lookup only), or None."""
    raw = xs.get(f"{domain(domid)}/name")
    return None if raw is None else raw.decode("utf-8", "replace")


def _raw_names(xs: XenStore, ids: list[int]) -> dict[int, bytes]:
    """domid → raw ``name`` node for those of ``ids`` that have one: one pipelined batch
    (a round trip per window of requests, not per domain)."""
    from .xenstore import XenStoreNotFound
    b = xs.batch()
    replies = [(d, b.read(f"{domain(d)}/name")) for d in ids]
    try:
        b.run()
    except XenStoreNotFound:
        pass
    out: dict[int, bytes] = {}
    for d, r in replies:
        if r.error is None:
            out[d] = r.value
        elif not isinstance(r.error, XenStoreNotFound):
            raise r.error
    return out


def names(xs: XenStore) -> dict[int, str]:
    """domid → name of every domain xenstore knows a name of."""
    return {d: n.decode("utf-8", "replace") for d, n in _raw_names(xs, domids(xs)).items()}


def resolve(xs: XenStore, dom: int | str, *, alive: Callable[[int], bool] | None = None,
            error: type[PyxenError] = DomainNotFoundError,
            what: str = "domain") -> int:
    """A domid from a domid (int or decimal text) or a name, as ``xl`` accepts either.

    Names live in the domains' own directories, so two domains claiming one name are
    refused (after dropping those ``alive`` says are gone, when it is given), never
    resolved to whichever is listed first. ``alive``, when given, must also hold for the
    result. Raises ``error`` (DomainNotFoundError by default) naming ``what``, in xl's words
    ("NAME is an invalid domain identifier").
    """
    if isinstance(dom, bool) or not isinstance(dom, (int, str)) or dom == "":
        raise error(f"{what} {dom!r} is not a domid or a name")
    if isinstance(dom, int) or DOMID_RE.fullmatch(dom):
        domid = int(dom)
        if not 0 <= domid <= DOMID_MAX or (alive is not None and not alive(domid)):
            raise error(f"{printable(str(dom))} is an invalid {what} identifier")
        return domid
    want = dom.encode()
    claims = [d for d, n in _raw_names(xs, domids(xs)).items() if n == want]
    if len(claims) > 1 and alive is not None:
        claims = [d for d in claims if alive(d)]
    if len(claims) > 1:
        raise error(f"{what} name {printable(dom)!r} is ambiguous: domains "
                    f"{', '.join(map(str, claims))} all claim it; use a domid")
    if not claims or (alive is not None and not alive(claims[0])):
        raise error(f"{printable(dom)} is an invalid {what} identifier")
    return claims[0]
