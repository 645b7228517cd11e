"""The toolchain's version: one place, read by pyproject.toml and written into every output that names its maker."""

__version__ = "0.1.0"
