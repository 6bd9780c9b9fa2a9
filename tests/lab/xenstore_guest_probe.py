"""Runs INSIDE a lab guest domain (not collected by pytest): pyxen.xenstore over the
guest's own /dev/xen/xenbus, i.e. as an unprivileged domain. test_xenstore_guest.py boots
it; it reports a JSON object to /local/domain/<self>/data/pyxen-result.

``--list-files`` (run in the dom0) prints the files this script imports, to pack them."""

import errno
import json
import sys

import pyxen.xenstore as X


def main(base: str) -> dict:
    out = {}
    with X.open() as xs:
        out["domid"] = int(xs.read("domid"))                 # relative: own home
        home = xs.get_domain_path(out["domid"])
        out["home"] = home

        def attempt(name, fn):
            try:
                out[name] = ["ok", fn()]
            except X.XenStoreError as e:
                out[name] = [type(e).__name__, e.errno, e.path,
                             isinstance(e, PermissionError), isinstance(e, KeyError)]

        attempt("read_secret", lambda: xs.read(f"{base}/secret").decode())
        attempt("read_shared", lambda: xs.read(f"{base}/shared").decode())
        attempt("write_shared", lambda: xs.write(f"{base}/shared", b"guest"))
        attempt("write_rw", lambda: xs.write(f"{base}/rw", b"guest-was-here"))
        attempt("ls_secret", lambda: xs.ls(f"{base}/secret"))
        attempt("perms_shared", lambda: str(xs.get_permissions(f"{base}/shared")))
        attempt("read_missing", lambda: xs.read(f"{base}/rw/missing"))
        attempt("write_dom0", lambda: xs.write("/local/domain/0/pyxen-guest", b"x"))
        attempt("own_data", lambda: xs.write("data/pyxen-own", b"mine"))
        out["errnos"] = {"EACCES": errno.EACCES, "ENOENT": errno.ENOENT}
        xs.write("data/pyxen-result", json.dumps(out))
    return out


if __name__ == "__main__":
    if sys.argv[1] == "--list-files":
        import pyxen._native
        pyxen._native.xen()          # the compiled extension loads lazily: load it here
        for m in list(sys.modules.values()):
            f = getattr(m, "__file__", None)
            if f:
                print(f)
    else:
        main(sys.argv[1])
