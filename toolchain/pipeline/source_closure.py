"""Which of the toolchain's own source files a stage runs: the import closure of its entry modules.

A stage key carries a digest of the code that can change the stage's outputs. A hand-kept list of
paths drifts (a training stage reached 18 modules outside its list); the closure is read from the
source instead: every ``import``/``from ... import`` statement of a module, at any depth (the
package imports lazily inside functions, and those imports run too), resolved to modules of the
``toolchain`` package, followed transitively, parent packages' ``__init__`` included. Nothing is
imported: the files are parsed with ``ast``.
"""
from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE = "toolchain"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def module_file(module: str, root: Path = PACKAGE_DIR) -> Path | None:
    """The source file of a ``toolchain`` module or package, or None when it is not one of ours."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def imported_modules(module: str, root: Path = PACKAGE_DIR) -> set[str]:
    """``toolchain`` modules that ``module``'s source names in any import statement (``from m import x``
    counts ``m.x`` too when ``x`` is a submodule)."""
    path = module_file(module, root)
    if path is None:
        return set()
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                continue
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names if module_file(f"{target}.{a.name}", root))
    return found


def import_closure(entries: tuple[str, ...], root: Path = PACKAGE_DIR) -> tuple[str, ...]:
    """Every ``toolchain`` module the entry modules reach through imports, themselves included, sorted."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        module = todo.pop()
        if module in seen or module_file(module, root) is None:
            continue
        seen.add(module)
        parts = module.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # importing a.b.c runs a and a.b first
        todo.extend(imported_modules(module, root))
    return tuple(sorted(seen))


def closure_digest(entries: tuple[str, ...], root: Path = PACKAGE_DIR) -> str:
    """sha256 over the relative paths and contents of the closure's source files."""
    h = hashlib.sha256()
    for module in import_closure(entries, root):
        path = module_file(module, root)
        assert path is not None  # the closure holds only modules with a file
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


@lru_cache(maxsize=8)
def source_digest(entries: tuple[str, ...]) -> str:
    """closure_digest of the installed package, once per process and entry set."""
    return closure_digest(entries)
