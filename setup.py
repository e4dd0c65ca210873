"""Builds the optional C extension; without a compiler tbexport installs pure Python."""

from setuptools import Extension, setup

# csrc/module.c includes the other files (one translation unit: see its header)
PARTS = ["crc32c.c", "wire.c", "buffers.c", "tags.c", "events.c", "records.c", "render.c"]

setup(
    ext_modules=[
        Extension(
            "tbexport._codec",
            ["csrc/module.c"],
            depends=[f"csrc/{part}" for part in PARTS],
            optional=True,
        ),
    ]
)
