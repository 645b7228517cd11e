"""Analytical performance and memory estimate for the Ethos-N78 (Vela does not target it).

The Ethos-N driver stack (Arm NN's backend and its support library, which has a
performance-only mode) cannot be installed here, so this is a first-order model
with its assumptions spelled out in every result:

* compute: MACs / (MACs per cycle x utilisation) per layer; layers without MACs
  (pooling, element-wise, data movement) at one element per MAC unit per cycle;
* weights stream from DRAM at the profile's bandwidth, overlapped with compute
  (a layer takes the longer of the two); their size is the palettised size:
  ceil(log2(distinct values)) bits per weight plus a one-byte-per-entry palette
  when the tensor has at most ``palette_limit`` distinct values, raw int8 otherwise;
* SRAM need is the largest activation pair (a layer's inputs plus its outputs);
  layers whose pair does not fit the SRAM also move their activations through DRAM;
* operators with float activations are counted as CPU operators with 0 cycles
  (as Vela does for Ethos-U); no driver, command or synchronisation overhead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..core.errors import ConfigError
from .model_facts import ModelFacts
from .profile import HardwareProfile


@dataclass(frozen=True)
class LayerEstimate:
    index: int
    name: str
    op: str
    on_npu: bool
    macs: int
    compute_cycles: int
    weight_cycles: int
    spill_cycles: int
    weight_bytes: int
    palettised_weight_bytes: int
    activation_bytes: int
    distinct_weight_values: int | None
    palettised: bool  # every weight tensor of the layer within the palette limit

    @property
    def cycles(self) -> int:
        return max(self.compute_cycles, self.weight_cycles) + self.spill_cycles


@dataclass(frozen=True)
class EthosNEstimate:
    layers: tuple[LayerEstimate, ...]
    sram_bytes: int  # largest activation pair
    palettised_weight_bytes: int
    constant_bytes: int  # biases etc., stored raw
    model_bytes_estimate: int  # the input file with its weights palettised
    macs: int
    cycles_total: int
    cycles_dram: int
    clock_hz: int
    assumptions: tuple[str, ...]

    @property
    def inference_time_s(self) -> float:
        return self.cycles_total / self.clock_hz

    @property
    def npu_operators(self) -> int:
        return sum(1 for layer in self.layers if layer.on_npu)

    @property
    def cpu_operators(self) -> int:
        return sum(1 for layer in self.layers if not layer.on_npu)


def estimate(facts: ModelFacts, model_file_bytes: int, profile: HardwareProfile) -> EthosNEstimate:
    cfg = profile.ethos_n
    if cfg is None:
        raise ConfigError(f"{profile.name} is not an Ethos-N profile")
    clock = profile.clock_hz
    macs_per_cycle = cfg.macs_per_cycle * cfg.utilisation
    dram_bytes_per_cycle = cfg.dram_bandwidth_bytes_per_s / clock
    limit = profile.palette_limit

    sram_need = max((o.activation_in_bytes + o.activation_out_bytes for o in facts.operators), default=0)
    layers = []
    for o in facts.operators:
        ws = facts.weights_of(o)
        raw = sum(w.bytes for w in ws)
        pal = sum(w.palettised_bytes(limit) for w in ws)
        act = o.activation_in_bytes + o.activation_out_bytes
        on_npu = not o.float_activations
        if on_npu:
            compute = math.ceil((o.macs or o.vector_elements) / macs_per_cycle)
            weight = math.ceil((pal + o.constant_bytes) / dram_bytes_per_cycle)
            spill = math.ceil(act / dram_bytes_per_cycle) if act > profile.sram_budget_bytes else 0
        else:
            compute = weight = spill = 0
        layers.append(
            LayerEstimate(
                index=len(layers),
                name=o.name,
                op=o.op,
                on_npu=on_npu,
                macs=o.macs,
                compute_cycles=compute,
                weight_cycles=weight,
                spill_cycles=spill,
                weight_bytes=raw,
                palettised_weight_bytes=pal,
                activation_bytes=act,
                distinct_weight_values=max((w.distinct_values for w in ws), default=None),
                palettised=bool(ws) and all(w.within_palette(limit) for w in ws),
            )
        )
    palettised = sum(w.palettised_bytes(limit) for w in facts.weights)
    constants = sum(o.constant_bytes for o in facts.operators)
    assumptions = (
        "analytical estimate, not a compile: no Ethos-N compiler or driver was run",
        (f"{cfg.tops:g} TOPS configuration assumed as {cfg.macs_per_cycle} int8 MACs/cycle at {clock / 1e9:g} GHz "
         f"({2 * cfg.macs_per_cycle * clock / 1e12:.3g} TOPS = 2 x MACs x clock)"),
        f"MAC utilisation {cfg.utilisation:g} of peak; layers without MACs at one element per MAC unit per cycle",
        f"weights stream from DRAM at {cfg.dram_bandwidth_bytes_per_s / 1e9:g} GB/s, overlapped with compute",
        (f"weights palettised when a tensor has at most {limit} distinct values: ceil(log2(distinct)) bits "
         "per weight plus 1 byte per palette entry; other tensors stored raw"),
        ("SRAM need = the largest activation pair (inputs plus outputs of one layer); layers whose pair exceeds "
         f"the {profile.sram_budget_bytes}-byte SRAM also move their activations through DRAM"),
        "operators with float activations run on the CPU and count 0 cycles; no driver or command overhead",
    )
    return EthosNEstimate(
        layers=tuple(layers),
        sram_bytes=int(sram_need),
        palettised_weight_bytes=int(palettised),
        constant_bytes=int(constants),
        model_bytes_estimate=int(model_file_bytes - facts.weight_bytes + palettised),
        macs=sum(o.macs for o in facts.operators),
        cycles_total=sum(layer.cycles for layer in layers),
        cycles_dram=sum(layer.weight_cycles + layer.spill_cycles for layer in layers),
        clock_hz=clock,
        assumptions=assumptions,
    )
