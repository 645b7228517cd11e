"""Fixtures for the palettise and firmware tests: reclustered real models, real Vela compile directories.

A "reclustered" model here is a converter-made int8 model whose weight tensors were
mapped onto K shared int8 values with the project's exact palette solver (the same
algorithm the rewriter starts from); everything else in the model is untouched.
"""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from toolchain.algorithms.palette import (
    apply_lut,
    solve_palette,
    value_lut,
    value_weights,
)
from toolchain.tflite.graph import find_weight_tensors, tensor_values
from toolchain.tflite.model_io import read_model, write_model

ACCELERATOR = "ethos-u55-128"


def recluster_bytes(model_bytes: bytes, k: int) -> bytes:
    """Map every weight tensor onto at most ``k`` shared int8 values (scale-weighted optimum)."""
    model = read_model(model_bytes)
    for w in find_weight_tensors(model):
        tensor = model.subgraphs[w.subgraph].tensors[w.tensor_index]
        q = tensor_values(model, tensor)
        scales = np.asarray(w.quantization.scales, dtype=np.float64)
        channel_weight = scales**2 if scales.size == w.channels else np.ones(w.channels)
        values, weights = value_weights(q, channel_weight, w.channel_axis)
        solution = solve_palette(values, weights, k)
        model.buffers[tensor.buffer].data = apply_lut(q, value_lut(solution, values)).view(np.uint8).ravel()
    return write_model(model)


def weight_values(model_bytes: bytes) -> dict[tuple[int, int], np.ndarray]:
    """(subgraph, tensor index) -> int8 values of every weight tensor, read straight from the model."""
    model = read_model(model_bytes)
    return {
        (w.subgraph, w.tensor_index): tensor_values(model, model.subgraphs[w.subgraph].tensors[w.tensor_index]).copy()
        for w in find_weight_tensors(model)
    }


def _write(model_dir: Path, name: str, build) -> Path:
    path = model_dir / name
    if not path.exists():
        path.write_bytes(build())
    return path


@pytest.fixture(scope="session")
def conv_bn_k16(model_dir, conv_bn_int8) -> Path:
    """Per-channel conv (BN folded) + dense, every weight tensor on 16 shared values."""
    return _write(model_dir, "conv_bn_k16.tflite", lambda: recluster_bytes(conv_bn_int8.read_bytes(), 16))


@pytest.fixture(scope="session")
def depthwise_k8(model_dir, depthwise_int8) -> Path:
    """Includes a DEPTHWISE_CONV_2D, quantized per channel on its last axis."""
    return _write(model_dir, "depthwise_k8.tflite", lambda: recluster_bytes(depthwise_int8.read_bytes(), 8))


@pytest.fixture(scope="session")
def per_tensor_k8(model_dir) -> Path:
    """The conv+BN model converted with per-tensor quantization, then 8 values per tensor."""
    import model_factory as mf

    return _write(
        model_dir, "per_tensor_k8.tflite",
        lambda: recluster_bytes(mf.convert_int8(mf.conv_bn_model(), per_tensor=True), 8),
    )


def cpu_fallback_model():
    """A TRANSPOSE_CONV with stride 3, which Vela leaves to the CPU (it maps strides 1 and 2 only)."""
    import model_factory as mf

    keras = mf._keras()
    keras.utils.set_random_seed(1)
    inp = keras.Input((8, 8, 1), batch_size=1)
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inp)
    x = keras.layers.Conv2DTranspose(8, 3, strides=3, padding="same", name="tconv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(10, name="fc")(x)
    return keras.Model(inp, out)


@pytest.fixture(scope="session")
def cpu_fallback_k16(model_dir) -> Path:
    import model_factory as mf

    return _write(model_dir, "cpu_fallback_k16.tflite", lambda: recluster_bytes(mf.convert_int8(cpu_fallback_model()), 16))


def vela_compile_dir(model_path: Path, out_dir: Path, accelerator: str = ACCELERATOR) -> Path:
    """A compile directory as 'toolchain compile' leaves it: the real compile stage when it exists,
    else the real Vela CLI plus a compile.json with the contract's keys."""
    try:
        from toolchain.targets.compile import compile_model
        from toolchain.targets.profiles import load_profile
    except ImportError:
        compile_model = None
    if compile_model is not None:
        # allow_cpu: the CPU-fallback model leaves most of its MACs (a stride-3 TRANSPOSE_CONV) to the CPU
        compile_model(model_path, load_profile(accelerator), out_dir, allow_cpu=True)
        return out_dir
    vela = Path(sys.executable).parent / "vela"
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [str(vela), str(model_path), "--accelerator-config", accelerator, "--output-dir", str(out_dir)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cpu = int(re.search(r"CPU operators = (\d+)", proc.stdout).group(1))
    npu = int(re.search(r"NPU operators = (\d+)", proc.stdout).group(1))
    (summary,) = out_dir.glob(f"{model_path.stem}_summary_*.csv")
    row = next(csv.DictReader(summary.open()))
    info = {
        "target": accelerator,
        "vela_model": f"{model_path.stem}_vela.tflite",
        "sram_bytes": round(float(row["sram_memory_used"]) * 1024),  # Vela's CSV is in KiB
        "off_chip_flash_bytes": round(float(row["off_chip_flash_memory_used"]) * 1024),
        "cpu_operators": cpu,
        "npu_operators": npu,
    }
    (out_dir / "compile.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return out_dir


@pytest.fixture(scope="session")
def conv_bn_compiled(tmp_path_factory, conv_bn_k16) -> Path:
    return vela_compile_dir(conv_bn_k16, tmp_path_factory.mktemp("compile_conv_bn"))


@pytest.fixture(scope="session")
def cpu_fallback_compiled(tmp_path_factory, cpu_fallback_k16) -> Path:
    return vela_compile_dir(cpu_fallback_k16, tmp_path_factory.mktemp("compile_cpu_fallback"))


HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "@HEADER@"

/* For every tensor: its int8 values, then its float32 scales, then its int32 shape. */
int main(void)
{
    uint32_t i;
    for (i = 0; i < @COUNT@; ++i) {
        const @PREFIX@_tensor_t *t = &@PREFIX@_tensors[i];
        int8_t *buf = (int8_t *)malloc(t->element_count);
        if (buf == NULL) return 2;
        if (@PREFIX@_decode(t, buf, t->element_count - 1u) != -1) return 3;
        if (@PREFIX@_decode(t, buf, t->element_count) != 0) return 4;
        fwrite(buf, 1, t->element_count, stdout);
        fwrite(t->scales, sizeof(float), t->scale_count, stdout);
        fwrite(t->shape, sizeof(int32_t), t->rank, stdout);
        free(buf);
    }
    return 0;
}
"""


def build_and_run_decoder(gcc: str, src_dir: Path, header: str, source: str, prefix: str, work: Path) -> bytes:
    """Compile the generated tables + a harness with the host gcc (strict flags) and return its stdout."""
    harness = work / "harness.c"
    harness.write_text(
        HARNESS.replace("@HEADER@", header).replace("@PREFIX@", prefix).replace("@COUNT@", f"{prefix.upper()}_TENSOR_COUNT")
    )
    exe = work / "decode"
    cmd = [gcc, "-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{src_dir}",
           str(src_dir / source), str(harness), "-o", str(exe)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    run = subprocess.run([str(exe)], capture_output=True, timeout=60)
    assert run.returncode == 0, f"decoder exited with {run.returncode}"
    return run.stdout
