"""The post-processing core must not import TensorFlow (it runs where TF is not installed)."""
from __future__ import annotations

import subprocess
import sys

CORE_MODULES = [
    "toolchain",
    "toolchain.cli",
    "toolchain.core.errors",
    "toolchain.core.schemas",
    "toolchain.tflite.model_io",
    "toolchain.tflite.graph",
    "toolchain.tflite.interpreter",
    "toolchain.algorithms.palette",
    "toolchain.algorithms.refit",
    "toolchain.stages.inspect",
    "toolchain.stages.recluster",
    "toolchain.stages.recluster_config",
    "toolchain.stages.choose_k",
    "toolchain.stages.bias_correction",
    "toolchain.stages.vela_system",
    "toolchain.stages.vela_csv",
    "toolchain.stages.vela_run",
    "toolchain.stages.model_facts",
    "toolchain.stages.ethos_n",
    "toolchain.stages.compile",
    "toolchain.stages.profiles",
    "toolchain.stages.palettise",
    "toolchain.stages.tflm_compress",
    "toolchain.stages.c_emit",
    "toolchain.stages.firmware",
    "toolchain.algorithms.packing",
]
OPTIONAL_CORE = [
    "toolchain.stages.manifest",
    "toolchain.stages.history",
    "toolchain.stages.dashboard",
    "toolchain.stages.svg_charts",
    "toolchain.stages.sweep",
    "toolchain.stages.progress",
    "toolchain.stages.pipeline_config",
    "toolchain.stages.report",
    "toolchain.stages.evaluate",
    "toolchain.stages.pipeline",
]


def test_core_imports_no_tensorflow():
    code = (
        "import importlib, importlib.util, sys\n"
        f"mods = {CORE_MODULES!r}\n"
        f"for m in {OPTIONAL_CORE!r}:\n"
        "    if importlib.util.find_spec(m) is not None: mods.append(m)\n"
        "for m in mods: importlib.import_module(m)\n"
        "from toolchain.cli import build_parser; build_parser()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras', 'tensorflow_model_optimization'))\n"
        "assert not bad, bad[:5]\n"
        "print(len(mods))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.strip()) >= len(CORE_MODULES)


def test_recluster_cli_runs_without_importing_tensorflow(tmp_path, dense_int8):
    code = (
        "import sys\n"
        "from toolchain.cli import main\n"
        f"rc = main(['recluster', {str(dense_int8)!r}, '-o', {str(tmp_path / 'o.tflite')!r}, '--samples', '2'])\n"
        "assert rc == 0\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
