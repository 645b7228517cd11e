"""Where Keras training runs: ``tf.distribute`` strategies for the clustering fine-tune and cluster-preserving QAT.

``default`` is TensorFlow's default strategy (one device; its scope changes nothing).
``mirrored`` is ``MirroredStrategy`` over every GPU, or, without one, over every logical CPU
device (one CPU device unless the process split it with
``tf.config.set_logical_device_configuration`` before TensorFlow started: how the tests run two
replicas on a CPU). ``multiworker`` is ``MultiWorkerMirroredStrategy``: every worker runs the same
command with its own ``TF_CONFIG`` (docs/training.md); without ``TF_CONFIG`` it is one worker.

The batch size stays the global batch (Keras splits it over the replicas), so the same config
trains the same number of steps under every strategy. A process holds one strategy of each kind
(TensorFlow refuses two MultiWorkerMirroredStrategy objects, and a model built in one strategy's
scope cannot be used in another's), so a model loaded, clustered, trained and stripped in one
``strategy_scope`` stays in that strategy.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from functools import cache
from typing import Any

from ..core.errors import ConfigError, ToolError
from .tf_env import first_line, import_tf


class Strategy(Enum):
    DEFAULT = "default"
    MIRRORED = "mirrored"
    MULTIWORKER = "multiworker"


def parse_strategy(value: Any, what: str = "strategy") -> Strategy:
    if isinstance(value, Strategy):
        return value
    try:
        return Strategy(value)
    except ValueError:
        choices = ", ".join(s.value for s in Strategy)
        raise ConfigError(f"{what} must be one of {choices}, got {value!r}") from None


def check_tf_config() -> dict[str, Any] | None:
    """TF_CONFIG as multiworker reads it (None when unset); ConfigError for one TensorFlow would misread."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        cfg = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"TF_CONFIG is not valid JSON: {exc}") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("cluster"), dict) or not isinstance(cfg.get("task"), dict):
        raise ConfigError('TF_CONFIG needs "cluster" (job name -> list of HOST:PORT) and "task" ({"type", "index"})')
    task = cfg["task"]
    workers = cfg["cluster"].get(task.get("type"))
    if not isinstance(workers, list) or not isinstance(task.get("index"), int) or \
            not 0 <= task["index"] < len(workers):
        raise ConfigError(f"TF_CONFIG task {task!r} is not one of its cluster's jobs")
    return cfg


@cache
def get_strategy(kind: Strategy):
    """The process's one strategy of this kind (created on first use)."""
    tf = import_tf()
    if kind is Strategy.DEFAULT:
        return tf.distribute.get_strategy()
    try:
        if kind is Strategy.MIRRORED:
            devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
            return tf.distribute.MirroredStrategy(devices=[d.name for d in devices])
        check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (RuntimeError, ValueError) as exc:  # e.g. collectives configured after TensorFlow started
        raise ToolError(f"cannot start the {kind.value} strategy: {first_line(exc)}") from None


def replicas(kind: Strategy) -> int:
    return int(get_strategy(kind).num_replicas_in_sync)


@contextmanager
def strategy_scope(kind: Strategy) -> Iterator[None]:
    """Build, wrap, compile and fit inside this: variables created here are the strategy's."""
    if kind is Strategy.DEFAULT:
        yield  # the default strategy's scope is a no-op: no TensorFlow call for it
        return
    with get_strategy(kind).scope():
        yield
