"""Re-render the generated blocks of README.md and docs/*.md from benchmarks/results/*.json.

A block is the text between the lines ``<!-- generated: NAME -->`` and ``<!-- /generated: NAME -->``;
NAME picks its renderer in ``BLOCKS`` (a function of the benchmarks/tables package and the results
files it reads). Hand edits inside a block are overwritten: change the renderer or the
benchmark instead. tests/test_docs.py fails when a block differs from its rendering.
Run: .venv/bin/python benchmarks/render_docs.py [--check]   (make docs)
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import tables

REPO = HERE.parent
RESULTS = HERE / "results"


@dataclass(frozen=True)
class Renderer:
    sources: tuple[str, ...]  # results files (stems under benchmarks/results/), passed to render in this order
    render: Callable[..., str]


BLOCKS: dict[str, Renderer] = {
    "results-summary": Renderer(("compression_fashion_mnist", "restore_clusters", "recluster_speed", "deploy_time",
                                 "fuzz_models", "output_aware", "base_models", "rfc_table", "verdict",
                                 "float_tflite_in"),
                                tables.results_summary),
    "fashion-mnist-convnet": Renderer(("compression_fashion_mnist",), partial(tables.fashion_mnist_table, model="convnet")),
    "fashion-mnist-convnet_bn": Renderer(("compression_fashion_mnist",),
                                         partial(tables.fashion_mnist_table, model="convnet_bn")),
    "fashion-mnist-targets": Renderer(("compression_fashion_mnist",), tables.fashion_mnist_targets),
    "fashion-mnist-largest-layer": Renderer(("compression_fashion_mnist",), tables.fashion_mnist_largest_layer),
    "fashion-mnist-cost": Renderer(("compression_fashion_mnist",), tables.fashion_mnist_cost),
    "fashion-mnist-verdict": Renderer(("compression_fashion_mnist",), tables.fashion_mnist_verdict),
    "fashion-mnist-notes": Renderer(("compression_fashion_mnist",), tables.fashion_mnist_notes),
    "recluster-speed": Renderer(("recluster_speed",), tables.recluster_speed_table),
    "fit-speed": Renderer(("fit_speed",), tables.fit_speed_table),
    "fit-speed-verdict": Renderer(("fit_speed",), tables.fit_speed_verdict),
    "restore-clusters": Renderer(("restore_clusters",), tables.restore_clusters_table),
    "restore-clusters-verdict": Renderer(("restore_clusters",), tables.restore_clusters_verdict),
    "deploy-output": Renderer(("deploy_time",), tables.deploy_output),
    "deploy-models": Renderer(("deploy_time",), tables.deploy_models),
    "deploy-time-runs": Renderer(("deploy_time",), tables.deploy_time_runs),
    "deploy-time-stages": Renderer(("deploy_time",), tables.deploy_time_stages),
    "deploy-time-verdict": Renderer(("deploy_time",), tables.deploy_time_verdict),
    "compile-speed": Renderer(("compile_speed",), tables.compile_speed_table),
    "corpus-deploy": Renderer(("corpus_deploy",), tables.corpus_table),
    "rfc-mapping": Renderer(("rfc_table",), tables.rfc_mapping_table),
    "rfc-results": Renderer(("rfc_table",), tables.rfc_results_table),
    "rfc-vela": Renderer(("rfc_table",), tables.rfc_vela_table),
    "rfc-vela-verdict": Renderer(("rfc_table",), tables.rfc_vela_verdict),
    "cascade": Renderer(("rfc_table",), tables.cascade_table),
    "cascade-verdict": Renderer(("rfc_table",), tables.cascade_verdict),
    "centroid-init": Renderer(("compression_fashion_mnist", "rfc_table"), tables.centroid_init_table),
    "base-models": Renderer(("base_models",), tables.base_models_table),
    "sweep-scaling": Renderer(("sweep_scaling",), tables.sweep_scaling_table),
    "sweep-executors": Renderer(("sweep_executors",), tables.sweep_executors_table),
    "sweep-executors-costs": Renderer(("sweep_executors",), tables.sweep_executors_costs),
    "sweep-executors-scale": Renderer(("sweep_executors",), tables.sweep_executors_scale),
    "finetune-strategies": Renderer(("finetune_strategies",), tables.finetune_strategies_table),
    "output-aware": Renderer(("output_aware",), tables.output_aware_table),
    "output-aware-summary": Renderer(("output_aware",), tables.output_aware_summary),
    "verdict": Renderer(("verdict",), tables.verdict_table),
    "fuzz-figures": Renderer(("fuzz_models",), tables.fuzz_figures),
    "fuzz-input-figures": Renderer(("fuzz_models",), tables.fuzz_input_figures),
    "bad-inputs": Renderer(("bad_inputs",), tables.bad_inputs_table),
    "rate-distortion-summary": Renderer(("rate_distortion",), tables.rate_distortion_summary),
    "rate-distortion-targets": Renderer(("rate_distortion",), tables.rate_distortion_targets),
    "rate-distortion-timing": Renderer(("rate_distortion",), tables.rate_distortion_timing),
    "rate-distortion-ds_cnn": Renderer(("rate_distortion",), partial(tables.rate_distortion_table, net="ds_cnn")),
    "rate-distortion-mobilenet_v2": Renderer(("rate_distortion",),
                                             partial(tables.rate_distortion_table, net="mobilenet_v2")),
    "rate-distortion-convnet_bn": Renderer(("rate_distortion",),
                                           partial(tables.rate_distortion_table, net="convnet_bn")),
    "ethos-n-calibration": Renderer(("ethos_n_calibration",), tables.ethos_n_calibration_table),
    "ethos-n-variants": Renderer(("ethos_n_calibration",), tables.ethos_n_variants_table),
    "ethos-n-calibration-verdict": Renderer(("ethos_n_calibration",), tables.ethos_n_calibration_verdict),
    "ethos-n-networks": Renderer(("ethos_n_networks",), tables.ethos_n_networks_table),
    "wild-corpus": Renderer(("wild_corpus",), tables.wild_corpus_table),
    "float-tflite-in": Renderer(("float_tflite_in",), tables.float_tflite_table),
    "float-tflite-verdict": Renderer(("float_tflite_in",), tables.float_tflite_verdict),
    "results-machines": Renderer(("compression_fashion_mnist", "recluster_speed", "restore_clusters", "deploy_time",
                                  "compile_speed", "fuzz_models", "bad_inputs", "corpus_deploy", "output_aware",
                                  "sweep_scaling", "base_models", "rfc_table", "sweep_executors",
                                  "finetune_strategies", "verdict", "ethos_n_calibration", "ethos_n_networks",
                                  "rate_distortion", "float_tflite_in", "wild_corpus"),
                                 tables.results_machines),
}

_MARKER = re.compile(r"^<!-- (/?)generated: ([A-Za-z0-9_.-]+) -->$", re.MULTILINE)  # a marker is a line of its own


class MarkerError(Exception):
    """Markers that do not pair up, or a block name without a renderer."""


@dataclass(frozen=True)
class Block:
    name: str
    line: int  # of the opening marker, 1-based
    start: int  # offset of the text after the opening marker
    end: int  # offset of the closing marker


def doc_files(repo: Path = REPO) -> list[Path]:
    """The files that may hold generated blocks: README.md and docs/*.md."""
    return [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]


def find_blocks(text: str, where: str = "") -> list[Block]:
    """The blocks of a document, in order; MarkerError for an unclosed, stray or nested marker or an unknown name."""
    blocks, open_ = [], None
    for m in _MARKER.finditer(text):
        closing, name = m.group(1) == "/", m.group(2)
        line = text.count("\n", 0, m.start()) + 1
        if not closing:
            if open_ is not None:
                raise MarkerError(f"{where}:{line}: block {name!r} opens inside block {open_[0]!r} "
                                  f"(opened on line {open_[1]}); close it first")
            if name not in BLOCKS:
                raise MarkerError(f"{where}:{line}: block {name!r} has no renderer in benchmarks/render_docs.py BLOCKS")
            open_ = (name, line, m.end())
        elif open_ is None or open_[0] != name:
            raise MarkerError(f"{where}:{line}: closing marker of {name!r} without its opening marker")
        else:
            blocks.append(Block(name, open_[1], open_[2], m.start()))
            open_ = None
    if open_ is not None:
        raise MarkerError(f"{where}:{open_[1]}: block {open_[0]!r} is never closed (<!-- /generated: {open_[0]} -->)")
    return blocks


def load_results(stem: str, results: Path = RESULTS) -> dict[str, Any]:
    return json.loads((results / f"{stem}.json").read_text(encoding="utf-8"))


def render_block(name: str, results: Path = RESULTS) -> str:
    """The text a block holds between its markers: a newline, the rendering, a newline."""
    r = BLOCKS[name]
    return "\n" + r.render(*(load_results(s, results) for s in r.sources)).strip("\n") + "\n"


def render_text(text: str, where: str = "", results: Path = RESULTS) -> tuple[str, list[str]]:
    """The document with every block re-rendered, and the names of the blocks that changed."""
    out, stale, pos = [], [], 0
    for b in find_blocks(text, where):
        fresh = render_block(b.name, results)
        if text[b.start:b.end] != fresh:
            stale.append(b.name)
        out += [text[pos:b.start], fresh]
        pos = b.end
    out.append(text[pos:])
    return "".join(out), stale


def render_files(files: list[Path] | None = None, check: bool = False, results: Path = RESULTS) -> list[str]:
    """Re-render (or, with check, only compare) every file's blocks; returns 'file: block NAME' for each stale one."""
    stale_all = []
    for path in files if files is not None else doc_files():
        if not path.is_file():
            continue
        where = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
        text = path.read_text(encoding="utf-8")
        new, stale = render_text(text, where, results)
        stale_all += [f"{where}: block {name}" for name in stale]
        if stale and not check:
            tmp = path.with_name(f".{path.name}.render.tmp")
            tmp.write_text(new, encoding="utf-8")
            tmp.replace(path)  # complete or absent under its final name
    return stale_all


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 naming every stale block")
    args = ap.parse_args(argv)
    try:
        stale = render_files(check=args.check)
    except (MarkerError, FileNotFoundError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for s in stale:
        print(f"{'stale' if args.check else 're-rendered'}: {s}")
    if args.check and stale:
        print("run 'make docs' (benchmarks/render_docs.py) to re-render them", file=sys.stderr)
        return 1
    if not stale:
        print("every generated block is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
