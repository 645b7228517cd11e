"""Hardware profiles: one TOML file per target in ``hw_profiles/``, or a user's own file.

A profile names the accelerator, the system (a Vela system config by name, or a
custom one that is rendered into a Vela .ini), the memory mode, the board's
budgets and the palette limit. Files are checked against
``schemas/hw_profile.schema.json`` for structure, then here for contradictions
Vela itself would accept silently or report obscurely.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from ..core.package_data import DataFolder, data_files
from ..core.schemas import load_config_file, parse_config, validate
from .profile import Family, HardwareProfile
from .profile_checks import build_profile

SCHEMA = "hw_profile"
_MAX_BASE_DEPTH = 4


# --------------------------------------------------------------------------- loading


def _looks_like_path(name_or_path: str | os.PathLike[str]) -> bool:
    s = os.fspath(name_or_path)
    return s.endswith((".toml", ".json")) or os.sep in s or "/" in s


def builtin_names() -> list[str]:
    """Every file stem in hw_profiles/ (profiles and aliases)."""
    return sorted(data_files(DataFolder.HW_PROFILES, ".toml"))


def _builtin_raw(name: str) -> dict[str, Any]:
    file = data_files(DataFolder.HW_PROFILES, ".toml").get(name)
    if file is None:
        known = ", ".join(builtin_names()) or "(none: the hw_profiles package data is missing)"
        raise ConfigError(f"unknown target '{name}'; known targets: {known} (or give a profile file)")
    raw = parse_config(file.read_bytes(), ".toml", f"hardware profile {name}.toml")
    if raw.get("name") != name:
        raise ConfigError(f"hardware profile {name}.toml: name '{raw.get('name')}' must match the file name '{name}'")
    return raw


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = {k: v for k, v in base.items() if k not in ("name", "description", "alias_of", "base")}
    # A system (or memory mode) is given either by name or as a table: the file's choice replaces the base's.
    if "system" in over:
        merged.pop("system_config", None)
    if "system_config" in over:
        merged.pop("system", None)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict) and k != "memory_mode":
            merged[k] = {**merged[k], **v}
        else:
            merged[k] = v
    return merged


def _resolve_raw(raw: dict[str, Any], what: str, depth: int = 0) -> dict[str, Any]:
    """Follow ``alias_of`` and ``base`` to a complete profile dict."""
    if depth > _MAX_BASE_DEPTH:
        raise ConfigError(f"{what}: alias/base chain is longer than {_MAX_BASE_DEPTH} (a cycle?)")
    if "alias_of" in raw:
        validate(raw, SCHEMA, what)
        target = _builtin_raw(raw["alias_of"])
        if "alias_of" in target:
            raise ConfigError(f"{what}: alias_of names '{raw['alias_of']}', which is itself an alias")
        return _resolve_raw(target, f"hardware profile '{raw['alias_of']}'", depth + 1)
    if "base" in raw:
        base_name = raw["base"]
        if not isinstance(base_name, str):
            raise ConfigError(f"{what}: base must be a profile name")
        base = _resolve_raw(_builtin_raw(base_name), f"hardware profile '{base_name}'", depth + 1)
        merged = _merge(base, raw)
        merged.setdefault("description", f"based on {base_name}")
        merged["base"] = base_name
        return merged
    return raw


def load_profile(name_or_path: str | os.PathLike[str], replace_builtin: bool = False) -> HardwareProfile:
    """A built-in target by name or alias (``ethos-u55``), or a profile file (.toml/.json).

    A file naming a built-in target or alias but describing another one is refused unless
    ``replace_builtin``: it would replace that target without notice (reports and build
    directories are named after it).
    """
    if _looks_like_path(name_or_path):
        path = Path(name_or_path)
        what = f"hardware profile {path.name}"
        raw = load_config_file(path, "hardware profile")
        source = path.name
    else:
        name = os.fspath(name_or_path)
        raw = _builtin_raw(name)
        what = f"hardware profile '{name}'"
        source = f"{name}.toml"
    if "alias_of" in raw:
        source = f"{raw['alias_of']}.toml"
    full = _resolve_raw(raw, what)
    validate(full, SCHEMA, what)
    profile = _with_aliases(build_profile(full, what, source))
    if _looks_like_path(name_or_path) and not replace_builtin:
        _refuse_shadowing(profile, what)
    return profile


def _refuse_shadowing(profile: HardwareProfile, what: str) -> None:
    """A user's profile may not take a built-in name for another target (a copy of the built-in file is fine)."""
    if profile.name not in builtin_names():
        return
    builtin = load_profile(profile.name)
    if replace(profile, source="", aliases=()) != replace(builtin, source="", aliases=()):
        raise ConfigError(f"{what} is named '{profile.name}', like a built-in target, but describes another one: "
                          "rename it, or pass --replace-builtin to use it in place of the built-in target")


def _with_aliases(profile: HardwareProfile) -> HardwareProfile:
    aliases = []
    for name in builtin_names():
        raw = _builtin_raw(name)
        if raw.get("alias_of") == profile.name:
            aliases.append(name)
    return replace(profile, aliases=tuple(aliases)) if aliases else profile


def list_profiles() -> list[HardwareProfile]:
    """Every built-in profile (aliases appear in each profile's ``aliases``), sorted by family then size."""
    profiles = []
    for name in builtin_names():
        raw = _builtin_raw(name)
        if "alias_of" not in raw:
            profiles.append(load_profile(name))
    return sorted(profiles, key=_sort_key)


def list_aliases() -> dict[str, str]:
    out = {}
    for name in builtin_names():
        raw = _builtin_raw(name)
        if "alias_of" in raw:
            out[name] = raw["alias_of"]
    return out


def _sort_key(p: HardwareProfile) -> tuple:
    size = "".join(ch for ch in p.accelerator.rsplit("-", 1)[-1] if ch.isdigit())
    return (list(Family).index(p.family), int(size or 0), p.name)
