"""Building a ReclusterConfig from a config file and command-line overrides."""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from ..core.errors import ConfigError
from ..core.schemas import load_config_file, validate
from .config import Objective, ReclusterConfig, ScaleFit, TensorRule


def config_from_dict(data: dict[str, Any], what: str = "recluster config") -> ReclusterConfig:
    validate(data, "recluster", what)
    rules = tuple(
        TensorRule(
            clusters=None if r["clusters"] == "skip" else int(r["clusters"]),
            pattern=r.get("pattern"),
            op=r.get("op"),
            rate_lambda=None if "rate_lambda" not in r else float(r["rate_lambda"]),
        )
        for r in data.get("rules", [])
    )
    kwargs: dict[str, Any] = {k: data[k] for k in ("clusters", "min_weights", "include_depthwise", "keep_zero",
                                                   "refit_iterations", "calibration_samples", "segments",
                                                   "max_rows_per_layer", "calibration_seed") if k in data}
    kwargs |= {k: float(data[k]) for k in ("damping", "depthwise_min_output_sqnr_db", "rate_lambda") if k in data}
    if "fit" in data:
        kwargs["fit"] = ScaleFit(data["fit"])
    if "objective" in data:
        kwargs["objective"] = Objective(data["objective"])
    return ReclusterConfig(rules=rules, **kwargs)


def load_recluster_config(path: str | os.PathLike[str]) -> ReclusterConfig:
    return config_from_dict(load_config_file(path, "recluster config"), f"recluster config {path}")


def parse_rule(text: str, by_op: bool) -> TensorRule:
    """'PATTERN=K', 'PATTERN=skip' (or 'OP=K' / 'OP=skip' with by_op)."""
    key, sep, value = text.rpartition("=")
    if not sep or not key:
        raise ConfigError(f"rule '{text}' must look like {'OP' if by_op else 'PATTERN'}=K or ...=skip")
    if value == "skip":
        k = None
    else:
        try:
            k = int(value)
        except ValueError:
            raise ConfigError(f"rule '{text}': '{value}' is neither an integer K nor 'skip'") from None
    return TensorRule(clusters=k, op=key.upper()) if by_op else TensorRule(clusters=k, pattern=key)


def apply_overrides(base: ReclusterConfig, **overrides: Any) -> ReclusterConfig:
    """Command-line values win over the file; rules given on the command line come first."""
    extra_rules = tuple(overrides.pop("rules", ()) or ())
    clean = {k: v for k, v in overrides.items() if v is not None}
    return replace(base, rules=extra_rules + base.rules, **clean)
