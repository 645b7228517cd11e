"""Which source files a stage's key covers: the import closure of its entry modules, read from the source."""
from __future__ import annotations

import shutil

import pytest
from conftest import REPO

from toolchain.pipeline.manifest import POST_TRAINING_STAGE_CODE, TRAINING_STAGE_CODE, package_versions
from toolchain.pipeline.source_closure import closure_digest, import_closure, imported_modules


@pytest.fixture
def package_copy(tmp_path):
    """A throwaway copy of the toolchain package, to edit."""
    root = tmp_path / "toolchain"
    shutil.copytree(REPO / "toolchain", root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _append(root, rel: str, text: str = "\n# edited\n") -> None:
    path = root / rel
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def test_relative_absolute_and_lazy_imports_are_all_followed(tmp_path):
    root = tmp_path / "toolchain"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "a.py").write_text("from . import b\nfrom ..c import thing\n")
    (root / "sub" / "b.py").write_text("def f():\n    import toolchain.d\n")  # inside a function: runs too
    (root / "c.py").write_text("thing = 1\nimport numpy\n")  # not ours: not followed
    (root / "d.py").write_text("")
    (root / "unused.py").write_text("")
    assert imported_modules("toolchain.sub.a", root) == {"toolchain.sub", "toolchain.sub.b", "toolchain.c"}
    assert import_closure(("toolchain.sub.a",), root) == (
        "toolchain", "toolchain.c", "toolchain.d", "toolchain.sub", "toolchain.sub.a", "toolchain.sub.b")


def test_an_indirectly_imported_module_changes_the_training_key(package_copy):
    # keras_stages -> rewrite.inspect (deflate_size fills the baseline's float deflate bytes): never named in a list
    assert "toolchain.rewrite.inspect" in import_closure(TRAINING_STAGE_CODE, package_copy)
    before = closure_digest(TRAINING_STAGE_CODE, package_copy)
    _append(package_copy, "rewrite/inspect.py")
    assert closure_digest(TRAINING_STAGE_CODE, package_copy) != before


@pytest.mark.parametrize(("edited", "changes_training", "changes_post"), [
    ("training/finetune.py", True, False),  # only the training stages fine-tune
    ("reporting/dashboard.py", False, True),  # only the post-training stages render dashboards
    ("cli.py", False, False),  # the command line runs no stage
])
def test_an_edit_changes_exactly_the_keys_of_the_sides_that_import_it(package_copy, edited, changes_training,
                                                                      changes_post):
    before = (closure_digest(TRAINING_STAGE_CODE, package_copy), closure_digest(POST_TRAINING_STAGE_CODE, package_copy))
    _append(package_copy, edited)
    after = (closure_digest(TRAINING_STAGE_CODE, package_copy), closure_digest(POST_TRAINING_STAGE_CODE, package_copy))
    assert (after[0] != before[0], after[1] != before[1]) == (changes_training, changes_post)


def test_shared_code_counts_on_both_sides(package_copy):
    for module in ("toolchain.tflite.model_io", "toolchain.core.fileio", "toolchain.training.datasets"):
        assert module in import_closure(TRAINING_STAGE_CODE, package_copy)
        assert module in import_closure(POST_TRAINING_STAGE_CODE, package_copy)


def test_stage_versions_carry_the_digest_of_their_side():
    training = package_versions(code=TRAINING_STAGE_CODE)
    post = package_versions()
    assert training["toolchain_source_sha256"] != post["toolchain_source_sha256"]
    assert post == package_versions()
    assert post["toolchain_source_sha256"] == closure_digest(POST_TRAINING_STAGE_CODE)
