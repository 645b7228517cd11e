"""The package map: import-linter contracts that bite, algorithms on an allow-list, Vela started only from targets,
no TensorFlow outside training, small modules and verbs, one meaning per name."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
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


def test_recluster_cli_runs_without_importing_tensorflow(tmp_path, core_dense_int8):
    code = (
        "import sys\n"
        "from toolchain.cli import main\n"
        f"rc = main(['recluster', {str(core_dense_int8)!r}, '-o', {str(tmp_path / 'o.tflite')!r}, '--samples', '2'])\n"
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


# --------------------------------------------------------------------------- contracts that bite

ALGORITHMS = PACKAGE / "algorithms"
# What the algorithms may import besides the standard library: numpy, and the bottom layer.
ALGORITHMS_MAY_IMPORT = {"numpy"}
ALGORITHMS_MAY_IMPORT_OURS = ("toolchain.core", "toolchain.algorithms")  # and their modules


def _resolved_imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import statement in the file, at any depth."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                found.append((node.lineno, ".".join(base + ([node.module] if node.module else []))))
            else:
                found.append((node.lineno, node.module or ""))
    return found


def algorithms_violations(root: Path = ALGORITHMS) -> list[str]:
    """Imports in algorithms/ outside the allow-list: numpy, the standard library, toolchain.core."""
    bad = []
    for path in sorted(root.glob("*.py")):
        module = "toolchain.algorithms" + ("" if path.stem == "__init__" else f".{path.stem}")
        for line, name in _resolved_imports(path, module):
            top = name.split(".")[0]
            if name == "__future__" or top in sys.stdlib_module_names or top in ALGORITHMS_MAY_IMPORT:
                continue
            if any(name == ours or name.startswith(ours + ".") for ours in ALGORITHMS_MAY_IMPORT_OURS):
                continue
            bad.append(f"{path.name}:{line}: {name}")
    return bad


def test_algorithms_import_only_numpy_the_standard_library_and_core():
    """An allow-list (import-linter has none): scipy, sklearn, LiteRT or another toolchain package all fail."""
    bad = algorithms_violations()
    assert not bad, f"algorithms are pure numpy (docs/design.md): {bad}"


def test_algorithms_allow_list_refuses_what_it_should(tmp_path):
    import shutil

    copy = tmp_path / "algorithms"
    shutil.copytree(ALGORITHMS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "extra.py").write_text(
        "import math\nimport numpy as np\nfrom ..core.errors import DataError\nfrom .palette import solve_palette\n"
        "def f():\n    import scipy.linalg\n    from ..tflite import graph\n    from sklearn import cluster\n")
    assert algorithms_violations(copy) == ["extra.py:6: scipy.linalg", "extra.py:7: toolchain.tflite",
                                           "extra.py:8: sklearn"]


# Vela started by name: the module (import, importlib or "python -m"), or its executable.
_VELA_MODULE = re.compile(r"\bethosu\b")
_VELA_EXECUTABLE = re.compile(r"^(?:.*/)?vela$")


def vela_starts_outside_targets(root: Path = PACKAGE) -> list[str]:
    """Lines outside toolchain/targets that import Vela or name it as a module or program in a string.

    Docstrings are prose and skipped; a comparison with "vela" (an estimate kind read from compile.json)
    starts nothing and is allowed."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] == "targets":
            continue
        module = ".".join(("toolchain", *rel.with_suffix("").parts))
        for line, name in _resolved_imports(path, module.removesuffix(".__init__")):
            if name.split(".")[0] == "ethosu":
                bad.append((str(rel), line, f"import {name}"))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings, compared = set(), set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body \
                    and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
                docstrings.add(id(node.body[0].value))
            if isinstance(node, ast.Compare):
                compared.update(id(c) for c in (node.left, *node.comparators))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in docstrings:
                continue
            if _VELA_MODULE.search(node.value) or (_VELA_EXECUTABLE.match(node.value) and id(node) not in compared):
                bad.append((str(rel), node.lineno, repr(node.value[:60])))
    return [f"{rel}:{line}: {what}" for rel, line, what in sorted(bad)]


def test_only_targets_starts_vela():
    """Beyond import-linter's view: `sys.executable, "-m", "ethosu.vela"`, importlib and a `vela` program count."""
    bad = vela_starts_outside_targets()
    assert not bad, f"only toolchain/targets runs Vela (docs/design.md): {bad}"


def test_vela_check_sees_a_string_command_line(tmp_path):
    import shutil

    copy = tmp_path / "toolchain"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "pipeline" / "sneaky.py").write_text(
        '"""Mentions ethosu.vela in prose only."""\nimport subprocess\nimport sys\n'
        'KIND = "vela"\n'
        'def run(m):\n    if m == "vela":\n        pass\n'
        '    subprocess.run([sys.executable, "-m", "ethosu.vela", m])\n'
        '    subprocess.run(["/usr/bin/vela", m])\n'
        '    __import__("importlib").import_module("ethosu.vela.api")\n'
        '    from ethosu.vela import api\n')
    assert vela_starts_outside_targets(copy) == [
        "pipeline/sneaky.py:4: 'vela'",
        "pipeline/sneaky.py:8: 'ethosu.vela'",
        "pipeline/sneaky.py:9: '/usr/bin/vela'",
        "pipeline/sneaky.py:10: 'ethosu.vela.api'",
        "pipeline/sneaky.py:11: import ethosu.vela",
    ]


def _lint_copy(tmp_path: Path, edit: tuple[str, str]) -> subprocess.CompletedProcess:
    """lint-imports over a copy of the package with one file edited, the copy first on the path."""
    import os
    import shutil

    shutil.copytree(PACKAGE, tmp_path / "toolchain", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    rel, line = edit
    target = tmp_path / "toolchain" / rel
    target.write_text(target.read_text(encoding="utf-8") + "\n" + line + "\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(lint), "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=env)


@pytest.mark.parametrize("edit, contract", [
    (("algorithms/packing.py", "import flatbuffers  # noqa"), "Algorithms are pure numpy"),
    (("core/version.py", "from ..pipeline import runner  # noqa"), "Packages are layered"),
    (("rewrite/fit.py", "from ..targets import compile  # noqa"), "Packages are layered"),
    (("commands/profiles.py", "import ethosu.vela  # noqa"), "Only the targets package runs Vela"),
])
def test_lint_imports_fails_on_a_forbidden_import(tmp_path, edit, contract):
    """The contracts are live: one forbidden import in a copy of the package breaks its contract."""
    proc = _lint_copy(tmp_path, edit)
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert f"{contract} BROKEN" in proc.stdout, proc.stdout[-3000:]
    assert "1 broken" in proc.stdout
