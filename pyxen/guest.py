"""pyxen.guest: build and run guest domains in-process, without libxl.

PV guests are built through libxenguest the way libxl's PV path does it in Xen 4.17
(``libxl__build_pre`` → ``libxl__build_pv``/``libxl__build_dom`` → ``libxl__build_post``):

    create domain → max vcpus → max mem / memmap limit → event channels → xc_dom_allocate →
    kernel file → ramdisk module → xc_dom_boot_xen_init → parse image → mem init →
    boot mem init → build image → boot image → gnttab init → release → xenstore entries
    (one transaction) → introduce to xenstored → unpause

Any failure rolls back: the half-built domain is destroyed and its xenstore entries
removed; :class:`BuildError` says which ``step`` failed and why.

Also here: reading a guest's console through xenconsoled's pty (:func:`console_output`,
:func:`open_console`) and a :class:`Supervisor` that applies on_poweroff / on_reboot /
on_crash when xenstored fires ``@releaseDomain``.
"""

from __future__ import annotations

import enum
import errno as _errno
import lzma
import os
import struct
import threading
import zlib
import select
import termios
import time
import uuid as _uuid
from dataclasses import dataclass, field, replace

from . import ctrl as _ctrl
from . import xenstore as _xenstore
from ._native import xen
from .errors import PyxenError

#: what libxl adds to a domain's max memory on x86 (LIBXL_MAXMEM_CONSTANT, kB)
MAXMEM_CONSTANT_KB = 1024
#: xenconsoled's buffer limit libxl writes in console/limit (LIBXL_XENCONSOLE_LIMIT)
XENCONSOLE_LIMIT = 1048576
#: headroom pyxen wants above the guest's memory before it builds: page tables, p2m,
#: grant and event-channel frames, and Xen's own per-domain structures (kB)
BUILD_OVERHEAD_KB = 4096


class Action(str, enum.Enum):
    """What to do when a guest powers off, reboots or crashes (xl's on_* values)."""

    DESTROY = "destroy"
    RESTART = "restart"
    PRESERVE = "preserve"
    RENAME_RESTART = "rename-restart"


class BuildError(PyxenError):
    """A guest build failed at ``step``; the half-built domain was rolled back.

    ``domid`` is the id the domain had (None if none was created), ``cause`` the
    underlying exception (a XenCtrlError, XenStoreError, OSError ...) if any.
    """

    def __init__(self, step: str, reason: str, *, domid: int | None = None,
                 cause: BaseException | None = None):
        super().__init__(f"build failed at {step}: {reason}")
        self.step, self.reason, self.domid, self.cause = step, reason, domid, cause


class KernelNotFoundError(BuildError, FileNotFoundError):
    """The kernel or ramdisk file is missing or unreadable (checked before creating)."""


class InsufficientMemoryError(BuildError, MemoryError):
    """The hypervisor has not enough free memory for the guest."""


class UnsupportedGuestError(BuildError):
    """This host cannot run that kind of guest (physinfo virt_caps)."""


class SpecError(BuildError, ValueError):
    """The build spec itself is invalid (nothing was created)."""


@dataclass(frozen=True)
class BuildSpec:
    """A PV guest, in xl's terms: ``memory``/``maxmem`` in MiB, ``cmdline`` is xl's
    ``extra`` (``root`` is prepended as ``root=...`` the way xl does)."""

    name: str
    kernel: str
    ramdisk: str | None = None
    memory: int = 64
    maxmem: int | None = None
    vcpus: int = 1
    cmdline: str = ""
    root: str | None = None
    uuid: str | None = None
    on_poweroff: Action = Action.DESTROY
    on_reboot: Action = Action.RESTART
    on_crash: Action = Action.DESTROY
    paused: bool = False
    features: str | None = None

    @property
    def full_cmdline(self) -> str:
        parts = []
        if self.root:
            parts.append(f"root={self.root}")
        if self.cmdline:
            parts.append(self.cmdline)
        return " ".join(parts)

    @property
    def maxmem_mb(self) -> int:
        return self.maxmem if self.maxmem is not None else self.memory

    def validated(self) -> "BuildSpec":
        """A copy with a uuid and the on_* values as Actions; SpecError if invalid."""
        def bad(reason):
            return SpecError("spec", reason)

        if not isinstance(self.name, str) or not self.name or "/" in self.name \
                or len(self.name) > 64 or not self.name.isprintable():
            raise bad(f"invalid domain name {self.name!r}")
        for f in ("memory", "vcpus"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise bad(f"{f} must be a positive int, not {v!r}")
        if self.vcpus > 128:
            raise bad(f"vcpus {self.vcpus} > 128")
        if self.maxmem is not None and (isinstance(self.maxmem, bool)
                                        or not isinstance(self.maxmem, int)
                                        or self.maxmem < self.memory):
            raise bad(f"maxmem {self.maxmem!r} must be an int >= memory ({self.memory})")
        if self.memory > (1 << 22):
            raise bad(f"memory {self.memory} MiB is beyond any host")
        try:
            uid = str(_uuid.UUID(str(self.uuid))) if self.uuid else str(_uuid.uuid4())
        except ValueError:
            raise bad(f"invalid uuid {self.uuid!r}") from None
        try:
            acts = {k: Action(getattr(self, k)) for k in ("on_poweroff", "on_reboot",
                                                           "on_crash")}
        except ValueError as e:
            raise bad(str(e)) from None
        if "\0" in self.full_cmdline:
            raise bad("cmdline contains NUL")
        return replace(self, uuid=uid, **acts)


@dataclass(frozen=True)
class Guest:
    """A built domain: what the build handed to xenstored and xenconsoled."""

    domid: int
    spec: BuildSpec
    store_port: int
    store_mfn: int
    console_port: int
    console_mfn: int
    store_domid: int = 0
    console_domid: int = 0
    timings: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def uuid(self) -> str:
        return self.spec.uuid  # type: ignore[return-value]

    @property
    def dompath(self) -> str:
        return f"/local/domain/{self.domid}"


# -- helpers -----------------------------------------------------------------------------


def _readable(path: str | None, what: str) -> str:
    if not path:
        raise KernelNotFoundError("check_files", f"no {what} given")
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise KernelNotFoundError("check_files", f"{what} {p}: no such file")
    if not os.access(p, os.R_OK):
        raise KernelNotFoundError("check_files", f"{what} {p}: not readable")
    return p


def _tool_domid(xs, path: str) -> int:
    raw = xs.get(path)
    try:
        return int(raw) if raw else 0
    except ValueError:
        return 0


def domain_names(xs) -> dict[str, int]:
    """name → domid of every domain xenstore knows a name of."""
    out = {}
    try:
        ids = xs.ls("/local/domain")
    except _xenstore.XenStoreNotFound:
        return out
    for d in ids:
        raw = xs.get(f"/local/domain/{d}/name")
        if raw is not None and d.isdigit():
            out[raw.decode("utf-8", "replace")] = int(d)
    return out


def resolve(domain: str | int, xs=None) -> int:
    """A domid from a domid or a domain name (as ``xl`` accepts either)."""
    if isinstance(domain, int):
        return domain
    if str(domain).isdigit():
        return int(domain)
    own = xs is None
    xs = xs or _xenstore.open()
    try:
        names = domain_names(xs)
    finally:
        if own:
            xs.close()
    if domain not in names:
        raise LookupError(f"no domain named {domain!r}")
    return names[domain]


def _rm_quiet(xs, path: str) -> None:
    try:
        xs.rm(path)
    except _xenstore.XenStoreNotFound:
        pass


def remove_xenstore_entries(xs, domid: int, uuid: str | None = None) -> None:
    """Remove what a build (or libxl) wrote for ``domid``: its home, vm and libxl paths."""
    vm = None
    try:
        raw = xs.get(f"/local/domain/{domid}/vm")
        vm = raw.decode() if raw else None
    except _xenstore.XenStoreError:
        pass
    paths = [f"/local/domain/{domid}", f"/libxl/{domid}"]
    try:
        raw = xs.get(f"/local/domain/{domid}/console/backend")
        be = raw.decode() if raw else ""
    except _xenstore.XenStoreError:
        be = ""
    if be.startswith("/local/domain/") and "/backend/console/" in be:
        paths.append(be.rsplit("/", 1)[0])  # .../backend/console/<domid>
    paths.append(f"/local/domain/0/backend/console/{domid}")
    if vm and vm.startswith("/vm/"):
        paths.append(vm)
    if uuid:
        paths.append(f"/vm/{uuid}")
    for p in dict.fromkeys(paths):
        _rm_quiet(xs, p)


def wait_gone(xc, domid: int, timeout: float = 10.0) -> bool:
    """Wait until the hypervisor no longer lists ``domid`` (dying domains linger until
    the last mapping of their memory goes); True if it is gone."""
    end = time.monotonic() + timeout
    while True:
        try:
            xc.domain(domid)
        except _ctrl.NoSuchDomainError:
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(0.05)


def destroy(domid: int, *, xc=None, xs=None, uuid: str | None = None) -> None:
    """Destroy a domain and remove its xenstore entries (what ``xl destroy`` does for a
    guest without devices)."""
    own_xc, own_xs = xc is None, xs is None
    xc = xc or _ctrl.open()
    xs = xs or _xenstore.open()
    try:
        try:
            xc.destroy(domid)
        except _ctrl.NoSuchDomainError:
            pass
        remove_xenstore_entries(xs, domid, uuid)
    finally:
        if own_xc:
            xc.close()
        if own_xs:
            xs.close()


# -- decompressed kernels ----------------------------------------------------------------

_KERNELS: dict[tuple, bytes] = {}
_KERNELS_LOCK = threading.Lock()


def _bzimage_payload(data: bytes) -> bytes | None:
    """The compressed ELF inside an x86 bzImage (boot protocol >= 2.08), else None."""
    if len(data) < 0x250 or data[0x202:0x206] != b"HdrS":
        return None
    if struct.unpack_from("<H", data, 0x206)[0] < 0x208:
        return None
    setup_sects = data[0x1F1] or 4
    offset, length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + offset
    return data[start:start + length] if start + length <= len(data) else None


def _decompress(payload: bytes) -> bytes | None:
    try:
        if payload[:6] == b"\xfd7zXZ\x00":
            return lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(payload)
        if payload[:2] == b"\x1f\x8b":
            return zlib.decompressobj(31).decompress(payload)
        if payload[:3] == b"\x5d\x00\x00":
            return lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(payload)
    except (lzma.LZMAError, zlib.error, EOFError):
        return None
    return None  # zstd, lz4, lzo, bzip2: libxenguest decompresses those itself


def kernel_image(path: str) -> bytes | None:
    """The ELF kernel inside the bzImage at ``path``, decompressed once per file version
    and kept in memory; None when libxenguest should read the file itself (an ELF
    already, or a compression this does not handle). libxenguest's bzImage loader does
    the same extraction on every build; handing it the ELF (``xc_dom_kernel_mem``)
    skips that, which under emulation is most of a build's time."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    with _KERNELS_LOCK:
        if key in _KERNELS:
            return _KERNELS[key]
    with open(path, "rb") as f:
        data = f.read()
    payload = _bzimage_payload(data)
    elf = _decompress(payload) if payload else None
    if elf is not None and elf[:4] != b"\x7fELF":
        elf = None
    if elf is not None:
        with _KERNELS_LOCK:
            for k in [k for k in _KERNELS if k[0] == key[0]]:
                del _KERNELS[k]  # an older version of the same file
            _KERNELS[key] = elf
    return elf


def clear_kernel_cache() -> None:
    with _KERNELS_LOCK:
        _KERNELS.clear()


# -- the builder -------------------------------------------------------------------------


class _Build:
    """One build attempt; ``run()`` returns a Guest or raises BuildError after rollback."""

    def __init__(self, spec: BuildSpec, xc, xs, check_memory: bool = True,
                 kernel_cache: bool = True):
        self.spec, self.xc, self.xs = spec, xc, xs
        self.check_memory, self.kernel_cache = check_memory, kernel_cache
        self.domid: int | None = None
        self.step = "spec"
        self.wrote_xenstore = False
        self.timings: dict[str, float] = {}
        self._last: float | None = None

    def _fail(self, reason: str, cause: BaseException | None = None,
              cls: type[BuildError] = BuildError) -> BuildError:
        return cls(self.step, reason, domid=self.domid, cause=cause)

    def _xc_check(self, rc: int, call: str) -> int:
        return _ctrl._check(self.xc, rc, call, self.domid)

    def run(self) -> "Guest":
        try:
            return self._run()
        except BaseException as e:
            self._rollback()
            if isinstance(e, BuildError):
                e.domid = self.domid if e.domid is None else e.domid
                raise
            if isinstance(e, (_ctrl.XenOutOfMemoryError, MemoryError)) and \
                    not isinstance(e, KeyboardInterrupt):
                raise self._fail(f"not enough memory: {e}", e, InsufficientMemoryError) from e
            if isinstance(e, PyxenError) or isinstance(e, OSError):
                raise self._fail(str(e), e) from e
            raise

    def _rollback(self) -> None:
        if self.domid is None:
            return
        try:
            self.xc.destroy(self.domid)
        except _ctrl.XenCtrlError:
            pass
        try:
            remove_xenstore_entries(self.xs, self.domid, self.spec.uuid)
        except _xenstore.XenStoreError:
            pass
        wait_gone(self.xc, self.domid, 5.0)

    def _mark(self, step: str) -> None:
        """Enter ``step``; ``timings`` collects each step's duration (seconds)."""
        now = time.monotonic()
        if self._last is not None:
            self.timings[self.step] = self.timings.get(self.step, 0.0) + now - self._last
        self.step, self._last = step, now

    def _run(self) -> "Guest":
        spec = self.spec
        t0 = time.monotonic()
        self._mark("check_files")
        kernel = _readable(spec.kernel, "kernel")
        ramdisk = _readable(spec.ramdisk, "ramdisk") if spec.ramdisk else None

        self._mark("check_host")
        info = self.xc.physinfo()
        if _ctrl.VirtCaps.PV not in info.virt_caps:
            raise self._fail(f"this host cannot run PV guests (virt_caps: "
                             f"{' '.join(info.virt_caps.xl_names()) or 'none'})",
                             cls=UnsupportedGuestError)
        need_kb = spec.memory * 1024 + BUILD_OVERHEAD_KB
        if self.check_memory and info.free_memory_kb < need_kb:
            raise self._fail(f"guest needs {spec.memory} MiB (+{BUILD_OVERHEAD_KB // 1024} "
                             f"MiB overhead) but the hypervisor has only "
                             f"{info.free_memory_kb // 1024} MiB free",
                             cls=InsufficientMemoryError)
        if spec.name in domain_names(self.xs):
            raise self._fail(f"a domain named {spec.name!r} already exists",
                             cls=SpecError)

        # libxl__domain_make
        self._mark("create_domain")
        self.domid = self.xc.create_domain(hvm=False, max_vcpus=spec.vcpus, uuid=spec.uuid)
        domid = self.domid
        # libxl__build_pre
        self._mark("max_vcpus")
        self.xc.max_vcpus(domid, spec.vcpus)
        self._mark("set_max_memory")
        self.xc.set_max_memory(domid, spec.memory * 1024 + MAXMEM_CONSTANT_KB)
        ffi, lib = xen()
        self._mark("set_memmap_limit")
        self._xc_check(lib.xc_domain_set_memmap_limit(self.xc._p(), domid,
                                                      spec.maxmem_mb * 1024),
                       "xc_domain_set_memmap_limit")
        store_domid = _tool_domid(self.xs, "/tool/xenstored/domid")
        console_domid = _tool_domid(self.xs, "/tool/xenconsoled/domid")
        self._mark("evtchn_alloc_unbound")
        store_port = self.xc.evtchn_alloc_unbound(domid, store_domid)
        console_port = self.xc.evtchn_alloc_unbound(domid, console_domid)

        # libxl__build_pv / libxl__build_dom
        store_mfn, console_mfn = self._libxenguest(kernel, ramdisk, store_port, store_domid,
                                                   console_port, console_domid)

        # libxl__domain_make's skeleton + libxl__build_post + the primary console
        self._mark("xenstore_write")
        guest = Guest(domid=domid, spec=spec, store_port=store_port, store_mfn=store_mfn,
                      console_port=console_port, console_mfn=console_mfn,
                      store_domid=store_domid, console_domid=console_domid,
                      timings=self.timings)
        self.xs.transact(lambda t: _write_entries(t, guest))
        self._mark("introduce_domain")
        self.xs.introduce_domain(domid, store_mfn, store_port)
        if not spec.paused:
            self._mark("unpause")
            self.xc.unpause(domid)
        self._mark("done")
        guest.timings.update(self.timings)
        guest.timings["total"] = time.monotonic() - t0
        return guest

    def _libxenguest(self, kernel, ramdisk, store_port, store_domid, console_port,
                     console_domid) -> tuple[int, int]:
        spec, domid = self.spec, self.domid
        ffi, lib = xen()
        xch = self.xc._p()
        self._mark("xc_dom_allocate")
        features = spec.features.encode() if spec.features else ffi.NULL
        dom = lib.xc_dom_allocate(xch, spec.full_cmdline.encode(), features)
        if dom == ffi.NULL:
            self._xc_check(-1, "xc_dom_allocate")
        try:
            elf = None
            if self.kernel_cache:
                self._mark("kernel_image")
                elf = kernel_image(kernel)
            if elf is not None:
                self._mark("xc_dom_kernel_mem")
                blob = ffi.from_buffer("char[]", elf)  # must outlive the build: not copied
                self._xc_check(lib.xc_dom_kernel_mem(dom, blob, len(elf)), "xc_dom_kernel_mem")
            else:
                self._mark("xc_dom_kernel_file")
                self._xc_check(lib.xc_dom_kernel_file(dom, kernel.encode()),
                               "xc_dom_kernel_file")
            if ramdisk:
                self._mark("xc_dom_module_file")
                self._xc_check(lib.xc_dom_module_file(dom, ramdisk.encode(), ffi.NULL),
                               "xc_dom_module_file")
            dom.flags = 0
            dom.console_evtchn = console_port
            dom.console_domid = console_domid
            dom.xenstore_evtchn = store_port
            dom.xenstore_domid = store_domid
            dom.claim_enabled = 0
            dom.max_vcpus = spec.vcpus
            for step, call in (
                    ("xc_dom_boot_xen_init", lambda: lib.xc_dom_boot_xen_init(dom, xch, domid)),
                    ("xc_dom_parse_image", lambda: lib.xc_dom_parse_image(dom)),
                    ("xc_dom_mem_init", lambda: lib.xc_dom_mem_init(dom, spec.memory)),
                    ("xc_dom_boot_mem_init", lambda: lib.xc_dom_boot_mem_init(dom)),
                    ("xc_dom_build_image", lambda: lib.xc_dom_build_image(dom)),
                    ("xc_dom_boot_image", lambda: lib.xc_dom_boot_image(dom)),
                    ("xc_dom_gnttab_init", lambda: lib.xc_dom_gnttab_init(dom))):
                self._mark(step)
                try:
                    self._xc_check(call(), step)
                except _ctrl.XenCtrlError as e:
                    if e.errno == _errno.ENOMEM or step == "xc_dom_boot_mem_init" or \
                            "out of memory" in (e.detail or "").lower():
                        raise self._fail(f"not enough memory for {spec.memory} MiB: {e}", e,
                                         InsufficientMemoryError) from e
                    raise self._fail(str(e), e) from e
            if lib.xc_dom_translated(dom):
                return int(dom.xenstore_pfn), int(dom.console_pfn)
            return (int(lib.xc_dom_p2m(dom, dom.xenstore_pfn)),
                    int(lib.xc_dom_p2m(dom, dom.console_pfn)))
        finally:
            lib.xc_dom_release(dom)


RO = "n0 r{d}"     # libxl's roperm: dom0 owns, the guest reads
RW = "n{d}"        # libxl's rwperm: the guest owns
NO = "n0"          # libxl's noperm: dom0 only


def _write_entries(t, g: Guest) -> None:
    """The xenstore entries libxl (4.17) writes for a PV guest with only its primary
    console (libxl__domain_make, libxl__build_post, libxl__device_console_add): same
    paths, values and permissions as ``xl create`` of the same guest.

    xenstored gives a node created by dom0 its parent's permissions, so permissions are
    set only where they differ from the parent's (each xenstore request costs a round
    trip to xenstored, which dominates this step)."""
    d, spec = g.domid, g.spec
    dom, vm, lx = f"/local/domain/{d}", f"/vm/{spec.uuid}", f"/libxl/{d}"
    cdom = g.console_domid
    be = f"/local/domain/{cdom}/backend/console/{d}/0"

    def node(path, value="", perms=None):
        t.write(path, str(value))
        if perms is not None:
            t.set_permissions(path, perms.format(d=d, c=cdom))

    for p in (dom, vm, lx, f"/local/domain/{cdom}/backend/console/{d}"):
        try:
            t.rm(p)
        except _xenstore.XenStoreNotFound:
            pass
    node(dom, perms=RO)                    # everything below inherits n0 r<domid>
    node(vm, perms=RO)
    node(lx, perms=NO)
    for k, v in (("vm", vm), ("name", spec.name), ("domid", d),
                 ("control/platform-feature-multiprocessor-suspend", 1),
                 ("control/platform-feature-xs_reset_watches", 1),
                 # libxl__build_post
                 ("memory/static-max", spec.maxmem_mb * 1024),
                 ("memory/target", spec.memory * 1024), ("memory/videoram", 0),
                 ("store/port", g.store_port), ("store/ring-ref", g.store_mfn)):
        node(f"{dom}/{k}", v)
    for i in range(spec.vcpus):
        node(f"{dom}/cpu/{i}/availability", "online")
    for k in ("control/shutdown", "control/feature-poweroff", "control/feature-reboot",
              "control/feature-suspend", "control/sysrq", "device/suspend/event-channel",
              "data", "drivers", "feature", "attr", "error"):
        node(f"{dom}/{k}", perms=RW)       # the guest's own nodes
    for k, v in (("name", spec.name), ("uuid", spec.uuid),
                 ("start_time", f"{time.time():.2f}"), ("image/ostype", "linux"),
                 ("image/kernel", spec.kernel), ("image/cmdline", spec.full_cmdline)):
        node(f"{vm}/{k}", v)
    if spec.ramdisk:
        node(f"{vm}/image/ramdisk", spec.ramdisk)
    for k in ("on_poweroff", "on_reboot", "on_crash"):
        node(f"{lx}/pyxen/{k}", Action(getattr(spec, k)).value)
    # the primary console: frontend (xenconsoled reads it and writes tty), backend,
    # and libxl's record of the device (so xl destroy cleans it up as its own)
    c = f"{dom}/console"
    node(f"{c}/backend-id", cdom, perms="n{d} r{c}")
    for k, v in (("backend", be), ("limit", XENCONSOLE_LIMIT), ("type", "xenconsoled"),
                 ("output", "pty"), ("tty", ""), ("port", g.console_port),
                 ("ring-ref", g.console_mfn)):
        node(f"{c}/{k}", v)
    dev = (("frontend", c), ("frontend-id", d), ("online", 1), ("protocol", "vt100"),
           ("state", 1))
    node(be, perms="n{c} r{d}")
    for k, v in dev:
        node(f"{be}/{k}", v)
    for k, v in (("type", "pv"), ("dm-version", "qemu_xen"),
                 ("device/console/0/backend", be)) + tuple(
                     (f"device/console/0/{k}", v) for k, v in dev):
        node(f"{lx}/{k}", v)


def build(spec: BuildSpec, *, xc=None, xs=None, check_memory: bool = True,
          kernel_cache: bool = True) -> Guest:
    """Build (and unless ``spec.paused`` start) a PV guest in-process; returns a Guest.

    ``xc``/``xs``: open :mod:`pyxen.ctrl` / :mod:`pyxen.xenstore` handles to use (opened
    and closed here when omitted). ``check_memory=False`` skips the comparison with the
    hypervisor's free memory (the hypervisor's own refusal is then mapped to
    InsufficientMemoryError). ``kernel_cache``: hand libxenguest the bzImage's ELF
    decompressed once per kernel file (:func:`kernel_image`) instead of the file, which
    it would decompress on every build. Raises BuildError (``.step``, ``.reason``) after
    destroying whatever was built.
    """
    if not isinstance(spec, BuildSpec):
        raise TypeError(f"build() takes a BuildSpec, not {type(spec).__name__}")
    spec = spec.validated()
    own_xc, own_xs = xc is None, xs is None
    xc = xc or _ctrl.open()
    try:
        xs = xs or _xenstore.open()
    except BaseException:
        if own_xc:
            xc.close()
        raise
    try:
        return _Build(spec, xc, xs, check_memory, kernel_cache).run()
    finally:
        if own_xc:
            xc.close()
        if own_xs:
            xs.close()


# -- console -----------------------------------------------------------------------------


def console_tty(domid: int, *, xs=None, timeout: float = 10.0) -> str:
    """The pty xenconsoled serves ``domid``'s console on (``console/tty`` in xenstore),
    waiting up to ``timeout`` seconds for xenconsoled to publish it."""
    own = xs is None
    xs = xs or _xenstore.open()
    path = f"/local/domain/{domid}/console/tty"
    end = time.monotonic() + timeout
    try:
        while True:
            raw = xs.get(path)
            if raw:
                return raw.decode()
            if time.monotonic() >= end:
                why = "no console node" if raw is None else "xenconsoled has not opened it"
                raise TimeoutError(f"domain {domid}: no console tty after {timeout:g}s ({why})")
            time.sleep(0.05)
    finally:
        if own:
            xs.close()


def _open_pty(tty: str) -> int:
    fd = os.open(tty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        attrs = termios.tcgetattr(fd)
        # cfmakeraw, as xl console does
        attrs[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
                      | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON)
        attrs[1] &= ~termios.OPOST
        attrs[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG
                      | termios.IEXTEN)
        attrs[2] &= ~(termios.CSIZE | termios.PARENB)
        attrs[2] |= termios.CS8
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except termios.error:
        pass
    return fd


def open_console(domid: int, *, xs=None, timeout: float = 10.0) -> int:
    """A raw, non-blocking fd on ``domid``'s console pty (read output, write input)."""
    return _open_pty(console_tty(domid, xs=xs, timeout=timeout))


def console_output(domid: int, timeout: float = 30.0, until: str | bytes | None = None,
                   *, xs=None) -> str:
    """Read ``domid``'s console for up to ``timeout`` seconds, or until ``until`` appears
    (then return at once). Returns what was read; TimeoutError only if the tty never
    appeared. Reading stops early if the console goes away (the domain died)."""
    end = time.monotonic() + timeout
    fd = open_console(domid, xs=xs, timeout=timeout)
    marker = until.encode() if isinstance(until, str) else until
    buf = bytearray()
    try:
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([fd], [], [], min(left, 0.5))
            if not r:
                continue
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except OSError as e:
                if e.errno == _errno.EIO:  # xenconsoled closed the master
                    break
                raise
            if not chunk:
                break
            buf += chunk
            if marker and marker in buf:
                break
    finally:
        os.close(fd)
    return buf.decode("utf-8", "replace")


# -- lifecycle ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LifecycleEvent:
    """The supervisor acted on a guest: ``reason`` (poweroff/reboot/crash/...) led to
    ``action``; ``new_domid`` is set when it restarted the guest."""

    domid: int
    name: str
    reason: str
    action: Action
    new_domid: int | None = None
    error: str | None = None


_REASON_FIELD = {_ctrl.ShutdownReason.POWEROFF: "on_poweroff",
                 _ctrl.ShutdownReason.REBOOT: "on_reboot",
                 _ctrl.ShutdownReason.CRASH: "on_crash",
                 _ctrl.ShutdownReason.WATCHDOG: "on_crash"}


class Supervisor:
    """Watches ``@releaseDomain`` and applies each supervised guest's on_poweroff /
    on_reboot / on_crash: destroy, restart (rebuild from the same spec; at most
    ``max_restarts`` times per guest), preserve (leave it), rename-restart (rename the
    old one ``<name>--incoming``-style and build a fresh one).

    ``with Supervisor() as sup: sup.add(guest); sup.poll(timeout)``.
    """

    def __init__(self, *, xc=None, xs=None, max_restarts: int = 1):
        self._own_xc, self._own_xs = xc is None, xs is None
        self.xc = xc or _ctrl.open()
        self.xs = xs or _xenstore.open()
        self.max_restarts = max_restarts
        self.guests: dict[int, Guest] = {}
        self.restarts: dict[str, int] = {}
        self.events: list[LifecycleEvent] = []
        self._token = f"pyxen-supervisor-{id(self)}"
        self.xs.watch("@releaseDomain", self._token)

    def add(self, guest: Guest) -> None:
        self.guests[guest.domid] = guest

    def close(self) -> None:
        try:
            self.xs.unwatch("@releaseDomain", self._token)
        except (PyxenError, ValueError):
            pass
        if self._own_xs:
            self.xs.close()
        if self._own_xc:
            self.xc.close()

    def __enter__(self) -> "Supervisor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def poll(self, timeout: float = 0.0) -> list[LifecycleEvent]:
        """Wait up to ``timeout`` s for @releaseDomain; act on every supervised guest that
        has shut down or vanished; return the events of this call."""
        ev = self.xs.read_watch(timeout)
        while ev is not None:  # drain
            ev = self.xs.read_watch(0)
        return self.check()

    def run(self, until=None, timeout: float = 60.0) -> list[LifecycleEvent]:
        """Poll until ``until(events)`` is true or ``timeout`` passes (or nothing is left
        to supervise); returns the events seen during the call."""
        end = time.monotonic() + timeout
        seen: list[LifecycleEvent] = []
        while self.guests:
            left = end - time.monotonic()
            if left <= 0:
                break
            seen += self.poll(min(left, 1.0))
            if until is not None and until(seen):
                break
        return seen

    def check(self) -> list[LifecycleEvent]:
        out = []
        for domid, g in list(self.guests.items()):
            try:
                info = self.xc.domain(domid)
            except _ctrl.NoSuchDomainError:
                del self.guests[domid]
                remove_xenstore_entries(self.xs, domid, g.uuid)
                out.append(LifecycleEvent(domid, g.name, "gone", Action.DESTROY))
                continue
            if info.dying or not info.shutdown:
                continue
            try:
                reason = _ctrl.ShutdownReason(info.shutdown_reason)
            except ValueError:
                continue
            if reason == _ctrl.ShutdownReason.SUSPEND:
                continue
            action = Action(getattr(g.spec, _REASON_FIELD.get(reason, "on_crash")))
            out.append(self._apply(g, reason.name.lower(), action))
        self.events += out
        return out

    def _apply(self, g: Guest, reason: str, action: Action) -> LifecycleEvent:
        del self.guests[g.domid]
        if action == Action.PRESERVE:
            return LifecycleEvent(g.domid, g.name, reason, action)
        if action == Action.RENAME_RESTART:
            self.xs.write(f"/local/domain/{g.domid}/name", f"{g.name}-{g.domid}")
            self.xs.write(f"/vm/{g.uuid}/name", f"{g.name}-{g.domid}")
        else:
            destroy(g.domid, xc=self.xc, xs=self.xs, uuid=g.uuid)
            wait_gone(self.xc, g.domid, 10.0)
        if action == Action.DESTROY:
            return LifecycleEvent(g.domid, g.name, reason, action)
        n = self.restarts.get(g.name, 0)
        if n >= self.max_restarts:
            if action == Action.RESTART:
                pass
            return LifecycleEvent(g.domid, g.name, reason, action,
                                  error=f"restart limit {self.max_restarts} reached")
        self.restarts[g.name] = n + 1
        spec = g.spec if action == Action.RESTART else replace(g.spec, uuid=None)
        try:
            new = build(replace(spec, paused=False), xc=self.xc, xs=self.xs)
        except BuildError as e:
            return LifecycleEvent(g.domid, g.name, reason, action, error=str(e))
        self.guests[new.domid] = new
        return LifecycleEvent(g.domid, g.name, reason, action, new_domid=new.domid)
