"""The repository's top-level ``schemas/`` and ``hw_profiles/`` folders, wherever the toolchain runs from.

A wheel carries them as package data (``toolchain.schemas``, ``toolchain.hw_profiles``:
setup.py maps the folders there) and they are read with ``importlib.resources``. An
editable install or a plain checkout has no such packages; the folders are then read
where they live, beside the ``toolchain`` package.
"""
from __future__ import annotations

from enum import Enum
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path


class DataFolder(Enum):
    SCHEMAS = "schemas"
    HW_PROFILES = "hw_profiles"


def data_folder(folder: DataFolder) -> Traversable:
    try:
        return files(f"toolchain.{folder.value}")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / folder.value


def data_files(folder: DataFolder, suffix: str) -> dict[str, Traversable]:
    """File stem -> file, for every file of the folder with that suffix (empty when the folder is missing)."""
    root = data_folder(folder)
    if not root.is_dir():
        return {}
    return {p.name.removesuffix(suffix): p for p in root.iterdir() if p.name.endswith(suffix) and p.is_file()}
