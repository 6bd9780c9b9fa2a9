from setuptools import setup

setup(
    cffi_modules=[
        "pyxen/_ffi_build.py:cpuid_ffi",
        "pyxen/_ffi_build.py:linux_ffi",
        "pyxen/_ffi_build.py:ring_ffi",
        "pyxen/_ffi_build.py:xen_ffi",
    ],
)
