"""Bytes of Vela's encoded weight streams, per tensor and per model, for one target: the rewriter's rate model.

Vela 5.2 compiles every target with its C++ core, whose weight encoders differ by accelerator (U85's
streams are not U55's) and whose choices per operator (block traversal, formats) depend on the
operator's shapes. So a tensor is sized by compiling the operators that read it, with their real
shapes, as a model of their own (``tflite.submodel``), in a worker process holding the target
(``encoder_worker``): the same encoder and choices as in the whole model, in milliseconds. The part
of Vela's figure that belongs to no weight tensor of the model (Vela's own weights, e.g. an average
pool turned into a convolution) is measured once by compiling the whole model. Answers are cached
by content (the target, the operators and the weights' bytes).

``encoded_bytes(q, op)`` is the older context-free estimate (the legacy Python encoder, U55-128,
depth-first traversal): no compile, within a few percent of U55's streams, not U85's.
"""
from __future__ import annotations

import hashlib
import json
import select
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass

import numpy as np

from ..core.errors import ToolError
from ..tflite.graph import BuiltinOp, find_weight_tensors, require_int8_model, tensor_values
from ..tflite.model_io import read_model
from ..tflite.submodel import SubModel, weight_submodel
from .encoder_worker import read_frame, write_frame
from .profile import HardwareProfile
from .vela_memory import VelaMemory, base_vela_memory, vela_memory

DEFAULT_ENCODER_TARGET = "ethos-u55-128"  # whose encoder sizes weights when no target is named
CACHE_ENTRIES = 200_000
REQUEST_TIMEOUT_S = 600.0  # one model (a layer, or a whole model) to size: far beyond what a real one takes


def encoded_bytes(q: np.ndarray, op: str) -> int:
    """Bytes of the legacy encoder's stream for one tensor (Ethos-U55-128, depth-first; no compile)."""
    from ethosu.vela.api import NpuAccelerator, NpuBlockTraversal, npu_encode_weights

    depthwise = op == BuiltinOp.DEPTHWISE_CONV_2D.name
    if depthwise:  # TFLite [1, H, W, C] -> OHWI with one input channel per output
        vol = np.transpose(q, (3, 1, 2, 0))
    elif q.ndim == 4:
        vol = q
    else:  # fully connected [O, I] (or anything else) as O x 1 x 1 x I
        vol = q.reshape(q.shape[0], 1, 1, -1)
    enc = npu_encode_weights(
        NpuAccelerator.Ethos_U55_128, np.ascontiguousarray(vol.astype(np.int16)), (1, 1), 8, 16, depthwise,
        NpuBlockTraversal.DEPTH_FIRST,
    )
    return len(enc)


@dataclass(frozen=True)
class EncoderTarget:
    """What Vela needs to size weights for a target: accelerator, system config, memory mode, optimise."""

    name: str
    accelerator: str
    system_config: str
    memory_mode: str
    optimise: str
    ini_text: str | None  # None: Vela's bundled Arm/vela.ini

    @classmethod
    def of(cls, profile: HardwareProfile) -> EncoderTarget:
        if not profile.family.compiled_by_vela:
            raise ToolError(f"{profile.name} is not compiled by Vela: its weights have no Vela encoding")
        return cls(profile.name, profile.accelerator, profile.system_config_name, profile.memory_mode_name,
                   profile.optimise.value, profile.vela_ini_text())

    def key(self) -> bytes:
        return json.dumps([self.accelerator, self.system_config, self.memory_mode, self.optimise, self.ini_text]
                          ).encode()


class VelaEncoder:
    """Vela's encoded weight bytes of whole models on one target, from a worker process, cached by content.

    The worker starts on the first request and ends with ``close()`` (or with this process)."""

    def __init__(self, target: EncoderTarget, memory: VelaMemory | None = None) -> None:
        self.target = target
        self._memory = memory
        self._proc: subprocess.Popen | None = None
        self._cache: dict[bytes, int] = {}
        self._lock = threading.Lock()
        self.compiles = 0  # requests that reached the compiler (not the cache)

    def _start(self) -> subprocess.Popen:
        from .vela_system import bundled_ini_path

        memory = self._memory or base_vela_memory()
        try:
            proc = subprocess.Popen([sys.executable, "-m", "toolchain.targets.encoder_worker"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    preexec_fn=memory.apply)  # noqa: PLW1509 (setrlimit only, as vela_run)
        except OSError as exc:
            raise ToolError(f"cannot start Vela's weight encoder: {exc.strerror or exc}") from None
        t = self.target
        write_frame(proc.stdin, json.dumps({
            "accelerator": t.accelerator, "system_config": t.system_config, "memory_mode": t.memory_mode,
            "optimise": t.optimise, "ini_text": t.ini_text,
            "ini_path": None if t.ini_text is not None else str(bundled_ini_path())}).encode())
        proc.stdin.flush()
        return proc

    def model_bytes(self, model: bytes) -> int:
        """Vela's ``total_npu_encoded_weights`` for ``model`` (a valid .tflite) on this target."""
        key = hashlib.sha256(self.target.key() + b"\0" + model).digest()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                return hit
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()
            proc = self._proc
            try:
                write_frame(proc.stdin, model)
                proc.stdin.flush()
                ready, _, _ = select.select([proc.stdout], [], [], REQUEST_TIMEOUT_S)
                if not ready:
                    self._proc = None
                    proc.kill()
                    proc.wait()
                    raise ToolError(f"Vela's weight encoder for {self.target.name} did not answer within "
                                    f"{REQUEST_TIMEOUT_S:g} s")
                head = proc.stdout.read(8)
            except (BrokenPipeError, OSError):
                head = b""
            if len(head) < 8:
                code = proc.wait()
                self._proc = None
                raise ToolError(f"Vela's weight encoder for {self.target.name} stopped (exit {code}); the model "
                                "passed validation, so this is a Vela bug")
            value = struct.unpack(">q", head)[0]
            if value < 0:
                line = (read_frame(proc.stdout) or b"").decode("utf-8", "replace")
                raise ToolError(f"Vela could not size weights for {self.target.name}: {line}")
            self.compiles += 1
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.clear()
            self._cache[key] = value
            return value

    def close(self) -> None:
        with self._lock:
            if self._proc is not None:
                try:
                    self._proc.stdin.close()
                    self._proc.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    self._proc.kill()
                    self._proc.wait()
                self._proc = None

    def __del__(self) -> None:
        if self._proc is not None:
            self.close()

    def model_rate(self, model_bytes: bytes) -> ModelRate:
        return ModelRate(self, model_bytes)


class ModelRate:
    """Per-tensor encoded bytes of one model's weight tensors on one target (``rewrite.planner.RateModel``).

    ``fixed_bytes``: the rest of Vela's figure for the whole model (weights no tensor of the model holds)."""

    def __init__(self, encoder: VelaEncoder, model_bytes: bytes) -> None:
        model = read_model(model_bytes)
        require_int8_model(model)
        self.encoder = encoder
        self.target = encoder.target.name
        self._model = model
        self._tensors = {w.name: w for w in find_weight_tensors(model)}
        self._subs: dict[str, SubModel] = {}
        self.original_bytes = {name: self.tensor_bytes(name, self._values(w)) for name, w in self._tensors.items()}
        self.model_total_bytes = encoder.model_bytes(model_bytes)
        self.fixed_bytes = self.model_total_bytes - sum(self.original_bytes.values())

    def _values(self, w) -> np.ndarray:
        return tensor_values(self._model, self._model.subgraphs[w.subgraph].tensors[w.tensor_index])

    def tensor_bytes(self, name: str, q: np.ndarray) -> int:
        """Vela's encoded bytes of the weight tensor ``name`` holding ``q`` (its shape, int8)."""
        sub = self._subs.get(name)
        if sub is None:
            sub = self._subs[name] = weight_submodel(self._model, self._tensors[name])
        return self.encoder.model_bytes(sub.with_weights(q))

    def total_bytes(self, changed: dict[str, np.ndarray]) -> int:
        """Vela's figure for the model with the tensors in ``changed`` replaced (the others as they are)."""
        return self.fixed_bytes + sum(self.tensor_bytes(n, changed[n]) if n in changed else b
                                      for n, b in self.original_bytes.items())

    def model_bytes_of(self, model_bytes: bytes) -> int:
        """Vela's figure for a whole model, compiled (the check of a prediction)."""
        return self.encoder.model_bytes(model_bytes)


def encoder_for(profile: HardwareProfile, model_bytes: bytes | None = None) -> VelaEncoder:
    """A worker-backed encoder for ``profile``, its memory bounded by ``model_bytes``' declared tensors."""
    memory = vela_memory(read_model(model_bytes), "model") if model_bytes is not None else None
    return VelaEncoder(EncoderTarget.of(profile), memory)
