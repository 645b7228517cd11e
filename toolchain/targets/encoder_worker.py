"""The child process that sizes models with Vela's compiler core (``python -m toolchain.targets.encoder_worker``).

Vela 5.2 compiles every target with its C++ core (regor); its Python module compiles a model held
in memory in about a millisecond per small operator and reports the encoded weight bytes, the
figure of Vela's summary (``total_npu_encoded_weights``). This process holds one target's
configuration and answers one request per model; it runs apart from the caller because that core
can crash or grow without bound on odd inputs (see vela_run), and its C++ output would otherwise
mix with ours.

Protocol, on stdin/stdout: one configuration frame, then request frames. A frame is a 4-byte
big-endian length and that many bytes. The configuration is JSON (accelerator, system config,
memory mode, optimise, ini text or null for Vela's bundled file); a request is a .tflite model;
the answer is an 8-byte big-endian signed byte count, or -1 followed by a frame holding the error
line (UTF-8).
"""
from __future__ import annotations

import json
import os
import struct
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO


def read_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(4)
    if len(head) < 4:
        return None
    n = struct.unpack(">I", head)[0]
    data = stream.read(n)
    if len(data) < n:
        return None
    return data


def write_frame(stream: BinaryIO, data: bytes) -> None:
    stream.write(struct.pack(">I", len(data)) + data)


def _regor_setup(cfg: dict, ini_path: str) -> tuple[str, str, str]:
    """(accelerator, system config text, compiler options) as Vela's own command line builds them."""
    from ethosu.vela import architecture_features, vela

    arch = architecture_features.ArchitectureFeatures(
        vela_config_files=[ini_path], system_config=cfg["system_config"], memory_mode=cfg["memory_mode"],
        accelerator_config=cfg["accelerator"], max_blockdep=architecture_features.ArchitectureFeatures.MAX_BLOCKDEP,
        verbose_config=False, arena_cache_size=None)
    system = (f"[architecture]\nmacs={arch.num_macs_per_cycle}\ncores={arch.ncores}\n[vela]\n"
              f"system_config_name={arch.system_config}\nmemory_mode_name={arch.memory_mode}\n")
    system += Path(ini_path).read_text(encoding="utf-8")
    accelerator = "".join(s.capitalize() for s in cfg["accelerator"].split("-")[:-1])
    options = vela.get_compiler_config(
        False, False, False, False, cfg["optimise"], arch.arena_cache_size, False, False, False, False, False,
        False, False, "tflite", False, False, False, False, False, "COP1", False, 16, "HillClimb", 10.0)
    return accelerator, system, options


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    from ethosu import regor

    raw = read_frame(requests)
    if raw is None:
        return
    cfg = json.loads(raw.decode("utf-8"))
    with tempfile.TemporaryDirectory(prefix="toolchain-encoder-") as work:
        ini_path = cfg.get("ini_path")
        if cfg.get("ini_text") is not None:
            ini_path = os.path.join(work, "target.ini")
            Path(ini_path).write_text(cfg["ini_text"], encoding="utf-8")
        accelerator, system, options = _regor_setup(cfg, ini_path)
        while (model := read_frame(requests)) is not None:
            try:
                compiled = regor.compile(accelerator, model, "TFLITE", system, options=options, verbose=False)
                answers.write(struct.pack(">q", int(compiled.perf_report.encodedWeights)))
            except Exception as exc:  # noqa: BLE001 - any failure of the compiler is reported, one line
                answers.write(struct.pack(">q", -1))
                write_frame(answers, f"{type(exc).__name__}: {exc}".splitlines()[0][:300].encode("utf-8"))
            answers.flush()


def run_worker() -> int:
    # The protocol keeps the real stdout; everything else written to fd 1 (Vela's C++ core) goes nowhere.
    answers = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    serve(sys.stdin.buffer, answers)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_worker())
