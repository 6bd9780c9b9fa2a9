# Stub for the compiled CFFI module (built by pyxen/_ffi_build.py from csrc/): mypy cannot
# read the extension itself, and must not need it (CI may type-check before building).
from typing import Any

from _cffi_backend import FFI

ffi: FFI
lib: Any  # the cdefs in csrc/*.h; attribute set depends on the Xen release built against
