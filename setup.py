"""The C decoder, the one extension module; everything else is in pyproject.toml.

``optional=True``: when it cannot be compiled (no compiler, no Python headers) the install
goes on and ``tokenrelay.sse.Decoder`` is the pure-Python decoder, which behaves the same.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "tokenrelay.sse._cdecoder",
            ["src/tokenrelay/sse/_cdecoder.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
