"""The package map: layers checked by import-linter, no TensorFlow outside training, small modules, one meaning per name."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "toolchain"
# A module over this many lines holds more than one idea (docs/design.md): split it.
MAX_MODULE_LINES = 420
# A verb parses, calls one package function and prints (docs/design.md): more than this and it is doing the work.
MAX_VERB_LINES = 150
# Names every module of a kind defines by convention (each CLI verb, each document's schema).
CONVENTIONAL_NAMES = {"HELP", "add_arguments", "run", "SCHEMA", "SCHEMA_VERSION"}


def _modules() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def test_import_contracts_hold():
    """pyproject.toml's [tool.importlinter] contracts: layers, TensorFlow only in training, Vela only in targets."""
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_import_linter_sees_every_package():
    """A package missing from the layers list would escape the contract."""
    import tomllib

    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = cfg["contracts"][0]["layers"]
    named = {name.strip() for layer in layers for name in layer.split("|")}
    packages = {f"toolchain.{p.name}" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    packages |= {"toolchain.cli"}
    assert packages == named


def test_nothing_outside_training_imports_tensorflow_at_run_time():
    """Import every module but the training package's (and the public API) in a fresh interpreter: no TensorFlow."""
    mods = [m for m in _modules() if not m.startswith("toolchain.training")]
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        "import toolchain\n"
        "for n in toolchain.__all__: getattr(toolchain, n)\n"
        "from toolchain.cli import build_parser; build_parser()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'tf_keras', 'keras', 'tensorflow_model_optimization'))\n"
        "assert not bad, bad[:5]\n"
        "print(len(sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


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


def test_modules_are_small():
    sizes = {p.relative_to(REPO): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    big = {str(p): n for p, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not big, f"split these modules along their sections: {big}"


def test_verbs_only_parse_call_and_print():
    sizes = {p.name: len(p.read_text().splitlines()) for p in (PACKAGE / "commands").glob("*.py")}
    big = {name: n for name, n in sizes.items() if n > MAX_VERB_LINES}
    assert not big, f"move the work of these verbs into a package function: {big}"


def _public_definitions() -> dict[str, list[str]]:
    defs: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            names = []
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
            for name in names:
                if not name.startswith("_") and name not in CONVENTIONAL_NAMES:
                    defs.setdefault(name, []).append(str(path.relative_to(REPO)))
    return defs


def test_a_public_name_is_defined_once():
    """Names mean one thing: no second make_interpreter, SkipReason or bundled_names elsewhere."""
    twice = {name: where for name, where in _public_definitions().items() if len(where) > 1}
    assert not twice, twice


def test_public_api_is_listed_once_and_resolves():
    import toolchain

    assert len(toolchain.__all__) == len(set(toolchain.__all__))
    for name in toolchain.__all__:
        assert getattr(toolchain, name) is not None
