"""A plan's options as the rewrite itself: each tensor's chosen fit (fitted alone, on the original model's
inputs) written into the model, with the report a fit in sequence would have given.

``--clusters auto`` judges its plans by running exactly these models on held-back samples, so the model
it returns is one whose fidelity it measured, and it costs no second fit.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from ..tflite.graph import find_weight_tensors, tensor_values
from .choose_k import KPlan, config_with_plan
from .config import Objective, ReclusterConfig, clusters_for
from .layers import describe_layer
from .rate_options import Option, RateOptions, model_with_options
from .result import CalibrationSummary, ReclusterReport, TensorAction, TensorResult

if TYPE_CHECKING:
    from ai_edge_litert import schema_py_generated as schema

    from .output_aware import Calibration


def plan_config(config: ReclusterConfig, plan: KPlan) -> ReclusterConfig:
    """The config that makes recluster apply ``plan`` (each depthwise tensor as the plan decided it)."""
    return config_with_plan(replace(config, include_depthwise=True) if config.include_depthwise is None else config,
                            plan)


def options_rewrite(original: schema.ModelT, options: RateOptions, chosen: list[Option], config: ReclusterConfig,
                    plan: KPlan, calibration: Calibration | None) -> tuple[bytes, ReclusterReport]:
    """The model with each tensor's ``chosen`` option, and its report (the tensors the plan did not cover as
    recluster would report them under ``plan``)."""
    cfg = plan_config(config, plan)
    label = plan.as_rules()[0].label if plan.choices else "the plan"
    rewritten, results = model_with_options(original, options.tensors, chosen, label)
    if options.objective is Objective.OUTPUTS:  # a tensor the output fit cannot model got the weight-space fit
        for t in options.tensors:
            r = results[t.name]
            if t.layer is None and r.action is TensorAction.REWRITTEN:
                results[t.name] = replace(r, objective=Objective.WEIGHTS.value,
                                          method=f"weights: {describe_layer(original, t.weight)}")
    tensors = []
    for w in find_weight_tensors(original):
        if w.name in results:
            tensors.append(results[w.name])
            continue
        before = int(np.unique(tensor_values(original, original.subgraphs[w.subgraph].tensors[w.tensor_index])).size)
        k, reason = clusters_for(w, cfg)  # not planned: left alone (k None), or already within k values
        tensors.append(TensorResult(
            name=w.name, op=w.op, shape=w.shape, granularity=w.quantization.granularity.value,
            action=TensorAction.SKIPPED if k is None else TensorAction.UNCHANGED,
            reason=reason if k is None else f"already {before} <= {k} values", clusters=k, distinct_before=before,
            distinct_after=before, squared_error=0.0, sqnr_db=None, scales_refit=False))
    summary = None
    if calibration is not None and options.objective is Objective.OUTPUTS:
        summary = CalibrationSummary(Objective.OUTPUTS, min(len(calibration.rows), config.calibration_samples),
                                     calibration.source, segments=1, litert_passes=1, batch=options.batch)
    return rewritten, ReclusterReport(config=cfg, tensors=tuple(tensors), calibration=summary)
