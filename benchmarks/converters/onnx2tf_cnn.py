"""A small int8 model from ONNX through onnx2tf, for the wild corpus.

    VENV/bin/python benchmarks/converters/onnx2tf_cnn.py OUT.tflite      (make corpus-wild)

Runs in its own virtualenv (onnx2tf and the TensorFlow it pins, in onnx2tf.txt; Makefile target
corpus-wild makes it): nothing of the toolchain is imported. The same seeded CNN as litert_torch_cnn.py
(two convolutions and a dense layer on a 1x28x28 NCHW input, random weights), written as an ONNX graph
(opset 13) with onnx.helper, converted by onnx2tf (NCHW -> NHWC) to a full-int8 .tflite (per-channel,
int8 inputs and outputs) calibrated on 32 seeded random inputs. Writes OUT and OUT.json (the converter
and versions, for the corpus table).
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CALIBRATION_SAMPLES = 32
OPSET = 13


def cnn() -> onnx.ModelProto:
    rng = np.random.default_rng(0)

    def init(name: str, shape: tuple[int, ...], fan_in: int) -> onnx.TensorProto:
        bound = 1 / np.sqrt(fan_in)  # PyTorch's default init range
        return numpy_helper.from_array(rng.uniform(-bound, bound, shape).astype(np.float32), name)

    inits = [init("w1", (16, 1, 3, 3), 9), init("b1", (16,), 9), init("w2", (32, 16, 3, 3), 144),
             init("b2", (32,), 144), init("w3", (10, 32 * 14 * 14), 32 * 14 * 14), init("b3", (10,), 32 * 14 * 14)]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("Flatten", ["r2"], ["f"]),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 28, 28])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return model


def main() -> int:
    import onnx2tf

    out = Path(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        onnx.save(cnn(), work / "cnn.onnx")
        # onnx2tf calibrates on NHWC data (after its NCHW -> NHWC transposition), with a mean and std to apply
        cal = np.random.default_rng(1).standard_normal((CALIBRATION_SAMPLES, 28, 28, 1)).astype(np.float32)
        np.save(work / "cal.npy", cal)
        onnx2tf.convert(input_onnx_file_path=str(work / "cnn.onnx"), output_folder_path=str(work / "out"),
                        output_integer_quantized_tflite=True, quant_type="per-channel",
                        input_quant_dtype="int8", output_quant_dtype="int8",
                        custom_input_op_name_np_data_path=[["x", str(work / "cal.npy"), [[[[0.0]]]], [[[[1.0]]]]]],
                        non_verbose=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(work / "out" / "cnn_full_integer_quant.tflite", out)
    source = f"onnx2tf {version('onnx2tf')} (ONNX opset {OPSET}, TensorFlow {version('tensorflow')}, full int8)"
    out.with_name(out.name + ".json").write_text(json.dumps({"source": source}, sort_keys=True) + "\n")
    print(f"{out}: {source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
