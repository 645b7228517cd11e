"""Never through a link inside a build directory: a restored CI cache or an unpacked archive can plant
``build/model/recluster -> ../../models`` (deploy then wrote its output over its own input model) or
``history.jsonl -> ~/notes`` (a line was appended through the link). The helpers of toolchain.core.paths,
the manifest and history readers and writers each refuse or ignore a link, never follow it; the CLI cases
(deploy, report) are rows of tests/test_bad_inputs.py.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from toolchain.core.errors import InputError
from toolchain.core.fileio import read_input_bytes
from toolchain.core.paths import first_link, real_dir, refuse_links
from toolchain.pipeline import manifest
from toolchain.pipeline.manifest import StageKey
from toolchain.reporting.history import HISTORY, read_history, record_build


def _victim(tmp_path: Path) -> Path:
    v = tmp_path / "victim.txt"
    v.write_text("mine\n")
    return v


def test_first_link_lists_links_without_following_them(tmp_path):
    root = tmp_path / "build" / "model"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_text("x")
    assert first_link(root) is None
    (root / "a" / "z").symlink_to(tmp_path)  # a link to a directory: listed, not walked into
    (root / "a" / "b" / "y").symlink_to(tmp_path / "nowhere")  # dangling
    assert first_link(root) == root / "a" / "z"  # each directory's own entries first, sorted
    assert first_link(tmp_path / "missing") is None
    (tmp_path / "top").symlink_to(root)
    assert first_link(tmp_path / "top") == tmp_path / "top"
    assert first_link(tmp_path / "top", include_root=False) == tmp_path / "top" / "a" / "z"
    (root / "a" / "z").unlink()
    with pytest.raises(InputError, match="a/b/y is a symbolic link inside .*which deploy writes"):
        refuse_links(root, "deploy")


def test_real_dir_creates_components_and_refuses_a_link_or_a_file_on_the_way(tmp_path):
    root = tmp_path / "build"
    assert real_dir(root, root / "m" / "t" / "compile") == root / "m" / "t" / "compile"
    assert (root / "m" / "t" / "compile").is_dir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "m" / "recluster").symlink_to(outside)
    with pytest.raises(InputError, match="recluster is a symbolic link"):
        real_dir(root, root / "m" / "recluster" / "sub")
    assert list(outside.iterdir()) == []  # nothing was created through the link
    (root / "m" / "file").write_text("x")
    with pytest.raises(InputError, match="is a file, where a directory goes"):
        real_dir(root, root / "m" / "file" / "sub")


def test_history_is_never_read_or_appended_through_a_link(tmp_path):
    victim = _victim(tmp_path)
    mdir = tmp_path / "m"
    mdir.mkdir()
    (mdir / HISTORY).symlink_to(victim)
    with pytest.raises(InputError, match="is a symbolic link"):
        record_build(mdir / HISTORY, 16, {"t": {"after": {"flash_bytes": 1}}})
    with pytest.raises(InputError, match="is a symbolic link"):
        read_history(mdir / HISTORY)
    assert victim.read_text() == "mine\n"
    (mdir / HISTORY).unlink()
    update = record_build(mdir / HISTORY, 16, {"ethos-u55-128": {"after": {"flash_bytes": 1}}})
    assert update.appended and len(read_history(mdir / HISTORY)) == 1


def test_a_linked_manifest_or_output_makes_the_stage_run_again_and_is_never_read(tmp_path):
    d = tmp_path / "stage"
    d.mkdir()
    (d / "out.bin").write_bytes(b"output")
    key = StageKey("s", {}, {"k": 1}, {})
    manifest.finish(d, key, {"r": 1})
    assert manifest.up_to_date(d, key) is not None
    victim = _victim(tmp_path)
    os.replace(d / "out.bin", tmp_path / "moved.bin")
    (d / "out.bin").symlink_to(tmp_path / "moved.bin")  # same bytes, but through a link
    assert manifest.up_to_date(d, key) is None
    stored = json.loads((d / manifest.MANIFEST).read_text())
    (d / manifest.MANIFEST).unlink()
    victim.write_text(json.dumps(stored))
    (d / manifest.MANIFEST).symlink_to(victim)
    assert manifest.read_manifest(d) is None
    manifest.begin(d)  # removes the manifest link itself, never what it points at
    assert not os.path.lexists(d / manifest.MANIFEST) and victim.read_text() == json.dumps(stored)
    assert (tmp_path / "moved.bin").read_bytes() == b"output"
    (d / "planted").symlink_to(victim)
    assert "planted" not in manifest.finish(d, key, {})["outputs"]  # a link is never listed as an output


def test_read_input_bytes_can_refuse_links(tmp_path):
    victim = _victim(tmp_path)
    (tmp_path / "link").symlink_to(victim)
    assert read_input_bytes(tmp_path / "link") == b"mine\n"  # a user's input may be a link
    with pytest.raises(InputError, match="is a symbolic link, which is never followed here"):
        read_input_bytes(tmp_path / "link", "stage manifest", follow_links=False)


def test_sweep_driver_writes_returned_reports_only_below_its_directory(tmp_path):
    """A sweep point (a Ray worker on another machine) names where its report.json goes: the driver writes it only
    below BUILD/sweep, never through a link there."""
    from toolchain.core.errors import ToolError
    from toolchain.pipeline.result import DeployOptions
    from toolchain.pipeline.sweep_points import PointOutcome, PointSpec, SweepOptions
    from toolchain.pipeline.sweep_runner import _write_pareto

    options = SweepOptions(build_dir=tmp_path / "build")
    point = PointSpec("m K=8", DeployOptions(build_dir=options.sweep_dir / "k8"), ())
    victim = _victim(tmp_path)
    climbing = PointOutcome("m K=8", "node", None, 0, reports=(("../../victim.txt", b"forged"),))
    with pytest.raises(ToolError, match="returned a report path outside"):
        _write_pareto(options, [point], [climbing])
    assert victim.read_text() == "mine\n"
    outside = tmp_path / "outside"
    outside.mkdir()
    options.sweep_dir.mkdir(parents=True)
    (options.sweep_dir / "k8").symlink_to(outside)
    linked = PointOutcome("m K=8", "node", None, 0, reports=(("k8/m/t/report/report.json", b"{}"),))
    with pytest.raises(InputError, match="k8 is a symbolic link"):
        _write_pareto(options, [point], [linked])
    assert list(outside.iterdir()) == []
