"""Loading config files (TOML or JSON) and validating them against ``schemas/``.

Stricter than JSON Schema as ``jsonschema`` implements it, because configs come from TOML
and from people: an ``"integer"`` is an int, never ``1e9`` or ``1.0`` (TOML and JSON give
those as floats, and truncating them silently would hide a typo); a ``"number"`` is finite
(TOML has ``nan`` and ``inf``, Python's JSON reader accepts ``NaN``; ``minimum`` and
``maximum`` never fire on NaN); a ``"pattern"`` ending in ``$`` does not accept a final
newline (Python's ``$`` matches before one, ECMA-262's does not). Documents nested deeper
than ``MAX_NESTING`` are refused before anything walks them, and so are documents Python parses
but cannot use: an integer past Python's 4,300-digit conversion limit (the parsers raise a plain
``ValueError``), a string holding a lone surrogate (JSON's ``"\\ud800"``, which no UTF-8 writer
can encode).
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from .errors import ConfigError, InputError
from .fileio import CONFIG_LIMIT_BYTES, read_input_bytes
from .package_data import DataFolder, data_folder

MAX_NESTING = 32  # tables and arrays within each other; our schemas need 4


def _is_integer(checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


def _is_finite_number(checker: Any, instance: Any) -> bool:
    if isinstance(instance, bool) or not isinstance(instance, (int, float)):
        return False
    return isinstance(instance, int) or math.isfinite(instance)


@cache
def _ecma_pattern(pattern: str) -> re.Pattern[str]:
    # ECMA-262 '$' (no multiline flag) matches only at the very end; Python's also before a final '\n'.
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any):
    if validator.is_type(instance, "string") and not _ecma_pattern(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


StrictValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    validators={"pattern": _pattern},
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"integer": _is_integer, "number": _is_finite_number}
    ),
)


def strict_validator(schema: dict[str, Any], registry: Any = None) -> Any:
    """A Draft 2020-12 validator with the strict integer, number and pattern rules above."""
    return StrictValidator(schema) if registry is None else StrictValidator(schema, registry=registry)


@cache
def load_schema(name: str) -> dict[str, Any]:
    """``name`` is the file stem, e.g. ``"recluster"`` for ``schemas/recluster.schema.json``."""
    return json.loads(data_folder(DataFolder.SCHEMAS).joinpath(f"{name}.schema.json").read_text(encoding="utf-8"))


def first_error(validator: Any, obj: Any, what: str) -> None:
    """Raise a one-line ConfigError naming the offending key when ``obj`` does not match."""
    errors = sorted(validator.iter_errors(obj), key=lambda e: (len(e.path), list(map(str, e.path))))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ConfigError(f"{what}: invalid value at {where}: {_message(err)}")


def _message(err: ValidationError) -> str:
    """jsonschema's message, said plainly where our stricter types refused a value."""
    value, expected = err.instance, err.validator_value
    if err.validator == "type" and isinstance(value, float) and not isinstance(value, bool):
        wanted = set(expected) if isinstance(expected, list) else {expected}
        if not math.isfinite(value) and wanted & {"number", "integer"}:
            return f"{value} is not a finite number"
        if "integer" in wanted:
            return f"{value!r} is not a whole number (integers are written without a point or an exponent)"
    return err.message


def validate(obj: Any, schema_name: str, what: str) -> None:
    """Raise a one-line ConfigError naming the offending key when ``obj`` does not match."""
    first_error(strict_validator(load_schema(schema_name)), obj, what)


def load_config_file(path: str | os.PathLike[str], what: str = "config file") -> dict[str, Any]:
    """Parse a .toml or .json file into a dict, with a one-line error on bad syntax."""
    p = Path(path)
    return parse_config(read_input_bytes(p, what, CONFIG_LIMIT_BYTES), p.suffix, f"{what} {p}")


def check_nesting(obj: Any, what: str, error: type[InputError] = ConfigError) -> None:
    """Refuse tables and arrays nested deeper than MAX_NESTING, and strings (keys too) that are not
    encodable text (walked once, without recursion)."""
    stack = [(obj, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value, what, error)
        elif isinstance(value, (dict, list)):
            if depth >= MAX_NESTING:
                raise error(f"{what} nests tables or arrays more than {MAX_NESTING} deep")
            if isinstance(value, dict):
                for k in value:
                    if isinstance(k, str):
                        _check_text(k, what, error)
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))


def _check_text(text: str, what: str, error: type[InputError]) -> None:
    # a lone surrogate parses (JSON "\ud800") but fails every later write (UnicodeEncodeError)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = text[exc.start]
            raise error(f"{what} holds a string with a lone surrogate (\\u{ord(bad):04x}), which is not text") from None


def _too_long_number(what: str, error: type[InputError]) -> InputError:
    return error(f"{what} holds an integer with more than {sys.get_int_max_str_digits():,} digits")


def parse_json(raw: bytes, what: str, error: type[InputError] = InputError) -> Any:
    """A JSON document from bytes; one-line ``error`` for bad UTF-8, bad syntax or too deep nesting."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise error(f"{what} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise error(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise error(f"{what} nests tables or arrays more than {MAX_NESTING} deep") from None
    except ValueError:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise _too_long_number(what, error) from None
    check_nesting(data, what, error)
    return data


def parse_config(raw: bytes, suffix: str, what: str) -> dict[str, Any]:
    """A .json document, or TOML for any other suffix, as a dict; one-line ConfigError otherwise."""
    if suffix.lower() == ".json":
        data = parse_json(raw, what, ConfigError)
    else:
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(f"{what} is not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{what} is not valid TOML: {exc}") from None
        except RecursionError:
            raise ConfigError(f"{what} nests tables or arrays more than {MAX_NESTING} deep") from None
        except ValueError:  # TOMLDecodeError aside: the integer-digit limit of int()
            raise _too_long_number(what, ConfigError) from None
        check_nesting(data, what)
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must hold a table/object at the top level")
    return data
