"""pyxen: Python bindings to Xen's C libraries, built with CFFI in API mode."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # ``__version__`` on first use (importlib.metadata costs an import most users of the
    # bindings never need). One source of truth: pyproject.toml, as installed metadata.
    if name == "__version__":
        from importlib import metadata
        try:
            version = metadata.version("pyxen")
        except metadata.PackageNotFoundError:  # a source tree that was never installed
            version = "0+unknown"
        globals()["__version__"] = version
        return version
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
