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

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO_ROOT / "schemas"


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, Any]:
    """``name`` is the file stem, e.g. ``"recluster"`` for ``schemas/recluster.schema.json``."""
    path = SCHEMA_DIR / f"{name}.schema.json"
    return json.loads(path.read_text(encoding="utf-8"))


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
    raw = read_input_bytes(p, what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {p} is not UTF-8 text") from None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{what} {p} is not valid {p.suffix.lstrip('.').upper() or 'TOML'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {p} must hold a table/object at the top level")
    return data
