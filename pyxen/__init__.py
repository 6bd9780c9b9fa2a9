"""pyxen: Python bindings to Xen's C libraries, built with CFFI in API mode."""

from __future__ import annotations

from importlib import metadata as _metadata

try:
    # One source of truth: the version in pyproject.toml, as the installed metadata has it.
    __version__: str = _metadata.version("pyxen")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
