"""A small int8 model from PyTorch through litert-torch (its PT2E quantizer), for the wild corpus.

    VENV/bin/python benchmarks/converters/litert_torch_cnn.py OUT.tflite      (make corpus-wild)

Runs in its own virtualenv (PyTorch and litert-torch, pinned in litert-torch.txt; Makefile target
corpus-wild makes it): nothing of the toolchain is imported. A seeded two-convolution, one dense layer
CNN on a 1x28x28 input (random weights: what the corpus measures is what deploy does with the
converter's int8 graph, not accuracy), exported with torch.export, annotated by litert-torch's
PT2EQuantizer (symmetric, per-channel int8), calibrated on 32 seeded random inputs and converted to a
full-int8 .tflite. Writes OUT and OUT.json (the converter and versions, for the corpus table).
"""
from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path

import litert_torch
import torch
from litert_torch.quantize import pt2e_quantizer
from litert_torch.quantize.quant_config import QuantConfig
from torch import nn
from torchao.quantization.pt2e import quantize_pt2e

CALIBRATION_BATCHES = 32


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 16, 3, padding=1)
        self.c2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.fc = nn.Linear(32 * 14 * 14, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.c1(x))
        x = torch.relu(self.c2(x))
        return self.fc(torch.flatten(x, 1))


def main() -> int:
    out = Path(sys.argv[1])
    torch.manual_seed(0)
    args = (torch.randn(1, 1, 28, 28),)
    m = torch.export.export(Net().eval(), args).module()
    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True))
    m = quantize_pt2e.prepare_pt2e(m, quantizer)
    g = torch.Generator().manual_seed(1)
    for _ in range(CALIBRATION_BATCHES):
        m(torch.randn(1, 1, 28, 28, generator=g))
    m = quantize_pt2e.convert_pt2e(m, fold_quantize=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    litert_torch.convert(m, args, quant_config=QuantConfig(pt2e_quantizer=quantizer)).export(str(out))
    source = f"litert-torch {version('litert-torch')} (PyTorch {version('torch')}, PT2E int8)"
    out.with_name(out.name + ".json").write_text(json.dumps({"source": source}, sort_keys=True) + "\n")
    print(f"{out}: {source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
