# Stub for the compiled CFFI module pyxen._ring (built by pyxen/_ffi_build.py from csrc/):
# mypy cannot read the extension, and must not need it (CI may type-check before building).
from typing import Any

from ._xen import FFI  # the same view of _cffi_backend.FFI (C data as Any)

ffi: FFI
lib: Any  # the helpers and constants csrc/ring.h declares
