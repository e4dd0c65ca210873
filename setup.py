"""Builds the optional C fast path; without a compiler tbexport installs pure Python."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("tbexport._fastscan", ["tbexport/_fastscan.c"], optional=True),
    ]
)
