"""pyxen.xenstore pure logic: path checks, permission values, error mapping (no Xen)."""

import errno

import pytest

from pyxen import xenstore as X
from pyxen.cli.xenstore import sanitise


@pytest.mark.parametrize("path", ["/", "/local/domain/0/name", "data/x", "a", "/a-b_c@d/9",
                                  b"/bytes/ok", "/" + "a" * 3071, "r" * 2048])
def test_valid_paths(path):
    b = X.check_path(path)
    assert b == (path.encode() if isinstance(path, str) else path)


@pytest.mark.parametrize("path,words", [
    ("", "empty"),
    ("/a\0b", "NUL"),
    (b"/a\0", "NUL"),
    ("/" + "a" * 3072, "XENSTORE_ABS_PATH_MAX"),
    ("r" * 2049, "XENSTORE_REL_PATH_MAX"),
    ("/a//b", "//"),
    ("/a/", "ends in"),
    ("/a b", "invalid character"),
    ("/caf\u00e9", "ASCII"),
    ("@introduceDomain", "only valid for watches"),
])
def test_bad_paths_rejected(path, words):
    with pytest.raises(X.XenStorePathError) as ei:
        X.check_path(path)
    assert words in str(ei.value)
    assert isinstance(ei.value, ValueError)


def test_bad_path_type():
    with pytest.raises(TypeError):
        X.check_path(5)


def test_special_paths_only_for_watches():
    assert X.check_path("@releaseDomain", special=True) == b"@releaseDomain"
    assert X.check_path("@introduceDomain", special=True) == b"@introduceDomain"
    with pytest.raises(X.XenStorePathError):
        X.check_path("@bogus", special=True)


def test_absolute_required():
    assert X.check_absolute("/x") == b"/x"
    with pytest.raises(X.XenStorePathError, match="absolute"):
        X.check_absolute("x")


def test_limits_match_headers():
    import re
    text = open("/usr/include/xen/io/xs_wire.h").read()
    for name in ("XENSTORE_ABS_PATH_MAX", "XENSTORE_REL_PATH_MAX", "XENSTORE_PAYLOAD_MAX"):
        m = re.search(rf"#define {name}\s+(\d+)", text)
        assert int(m.group(1)) == getattr(X, name)


def test_permissions_parse_and_format():
    p = X.Permissions.parse("n0 r5 b7 w9")
    assert p.owner == 0 and p.others == X.Perm.NONE
    assert p.acl == (X.DomainPerm(5, X.Perm.READ), X.DomainPerm(7, X.Perm.BOTH),
                     X.DomainPerm(9, X.Perm.WRITE))
    assert str(p) == "n0 r5 b7 w9"
    assert p.for_domain(0) == X.Perm.BOTH
    assert p.for_domain(5) == X.Perm.READ
    assert p.for_domain(42) == X.Perm.NONE
    assert X.Perm.BOTH == X.Perm.READ | X.Perm.WRITE
    for bad in ("", "x0", "r", "rq"):
        with pytest.raises(ValueError):
            X.Permissions.parse(bad)


@pytest.mark.parametrize("err,cls,bases", [
    (errno.ENOENT, X.XenStoreNotFound, (KeyError, FileNotFoundError)),
    (errno.EACCES, X.XenStorePermissionError, (PermissionError,)),
    (errno.EAGAIN, X.XenStoreAgainError, ()),
    (errno.EINVAL, X.XenStoreInvalidError, ()),
    (errno.E2BIG, X.XenStoreTooBigError, ()),
    (errno.ENOSPC, X.XenStoreQuotaError, ()),
    (errno.EIO, X.XenStoreError, ()),
])
def test_error_mapping(err, cls, bases):
    e = X.error_for(err, "xs_read", b"/some/path")
    assert type(e) is cls
    assert e.errno == err and e.path == "/some/path" and e.call == "xs_read"
    assert isinstance(e, X.XenStoreError) and isinstance(e, OSError)
    for b in bases:
        assert isinstance(e, b)
    assert "/some/path" in str(e) and "xs_read" in str(e)


def test_not_found_is_keyerror_catchable():
    with pytest.raises(KeyError):
        raise X.error_for(errno.ENOENT, "xs_read", "/x")


def test_retries_exhausted_is_a_conflict():
    e = X.TransactionRetriesExhausted(7)
    assert isinstance(e, X.TransactionConflict) and isinstance(e, X.XenStoreAgainError)
    assert e.errno == errno.EAGAIN and e.attempts == 7 and "7" in str(e)


def test_sanitise_like_xenstore_ls():
    assert sanitise(b"plain text") == "plain text"
    assert sanitise(b"a\tb\nc\\") == "a\\tb\\nc\\\\"
    assert sanitise(b"\x01\x1b\xff") == "\\1\\033\\377"


def test_cli_parses_verbs():
    from pyxen.cli import build_parser
    p = build_parser()
    a = p.parse_args(["xenstore", "ls", "-f", "/local"])
    assert a.full and a.paths == ["/local"]
    a = p.parse_args(["xenstore", "watch", "-n", "2", "/a", "@releaseDomain"])
    assert a.count == 2 and a.paths == ["/a", "@releaseDomain"]
    a = p.parse_args(["xenstore", "write", "/a", "1", "/b", "2"])
    assert a.pairs == ["/a", "1", "/b", "2"]
    for verb in ("read", "rm"):
        assert p.parse_args(["xenstore", verb, "/x"]).paths == ["/x"]
