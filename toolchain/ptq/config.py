"""How a float model is quantized: the calibration source, sample counts, the I/O type."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

# Synthetic calibration draws uniform inputs over this range: wide enough not to clip a model fed
# [-1, 1] or [0, 1], with no claim to look like real inputs.
SYNTHETIC_RANGE = (-1.0, 1.0)
PTQ_CALIBRATION_SAMPLES = 512
DEFAULT_SYNTHETIC_SAMPLES = 64
DEFAULT_CHECK_SAMPLES = 32
QUANTIZER = "ai-edge-quantizer"
RECIPE = "static_wi8_ai8"  # int8 weights per channel, int8 activations per tensor, min-max ranges


class CalibrationSource(Enum):
    FILE = "file"  # the user's representative inputs (.npz)
    SYNTHETIC = "synthetic"  # seeded random inputs, only when asked for: ranges not from real data


class IoType(Enum):
    INT8 = "int8"  # the model's inputs and outputs are int8 (what an NPU deployment feeds)
    FLOAT = "float"  # float32 inputs and outputs, with QUANTIZE/DEQUANTIZE at the boundary


@dataclass(frozen=True)
class PtqConfig:
    calibration_samples: int = PTQ_CALIBRATION_SAMPLES  # from the file: the first N samples
    synthetic_samples: int = DEFAULT_SYNTHETIC_SAMPLES
    check_samples: int = DEFAULT_CHECK_SAMPLES  # inputs of the float-vs-int8 check
    io: IoType = IoType.INT8
    seed: int = 0  # of the synthetic inputs

    def to_json(self) -> dict:
        return {"calibration_samples": self.calibration_samples, "synthetic_samples": self.synthetic_samples,
                "check_samples": self.check_samples, "io": self.io.value, "seed": self.seed}
