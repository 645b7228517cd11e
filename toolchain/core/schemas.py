"""Loading config files (TOML or JSON) and validating them against ``schemas/``."""
from __future__ import annotations

import json
import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from .errors import ConfigError
from .fileio import read_input_bytes
from .package_data import DataFolder, data_folder


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, Any]:
    """``name`` is the file stem, e.g. ``"recluster"`` for ``schemas/recluster.schema.json``."""
    return json.loads(data_folder(DataFolder.SCHEMAS).joinpath(f"{name}.schema.json").read_text(encoding="utf-8"))


def validate(obj: Any, schema_name: str, what: str) -> None:
    """Raise a one-line ConfigError naming the offending key when ``obj`` does not match."""
    schema = load_schema(schema_name)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(obj), key=lambda e: (len(e.path), list(map(str, e.path))))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ConfigError(f"{what}: invalid value at {where}: {err.message}")


def load_config_file(path: str | os.PathLike[str], what: str = "config file") -> dict[str, Any]:
    """Parse a .toml or .json file into a dict, with a one-line error on bad syntax."""
    p = Path(path)
    return parse_config(read_input_bytes(p, what), p.suffix, f"{what} {p}")


def parse_config(raw: bytes, suffix: str, what: str) -> dict[str, Any]:
    """A .json document, or TOML for any other suffix, as a dict; one-line ConfigError otherwise."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{what} is not UTF-8 text") from None
    try:
        if suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{what} is not valid {suffix.lstrip('.').upper() or 'TOML'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must hold a table/object at the top level")
    return data
