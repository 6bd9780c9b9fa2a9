# Stub for the compiled CFFI module pyxen._xen (built by pyxen/_ffi_build.py from csrc/):
# mypy cannot read the extension, and must not need it (CI may type-check before building).
from typing import Any, type_check_only

import _cffi_backend

@type_check_only
class FFI(_cffi_backend.FFI):
    """``_cffi_backend.FFI`` (types-cffi) as pyxen's C declarations use it.

    types-cffi's CData is opaque (no struct fields), so what ``new`` and ``cast`` return is
    ``Any``; ``string`` is only given ``char`` pointers and arrays (csrc/ declares no
    ``wchar_t`` and pyxen never asks for an enum's name), so it returns ``bytes``.
    """

    def new(self, cdecl: str | _cffi_backend.CType, init: Any = ...) -> Any: ...
    def cast(self, cdecl: str | _cffi_backend.CType, value: Any) -> Any: ...
    def string(self, cdata: Any, maxlen: int = -1) -> bytes: ...

ffi: FFI
lib: Any  # the functions and constants csrc/*.h declare (which ones: see _native.has/need)
