# Stub for the compiled CFFI module pyxen._cpuid (built by pyxen/_ffi_build.py from csrc/):
# mypy cannot read the extension, and must not need it (CI may type-check before building).
from typing import Any

from _cffi_backend import FFI

ffi: FFI
lib: Any  # the helpers csrc/pyxen_cpuid.h declares
