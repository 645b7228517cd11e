"""The dashboards rendered by a real browser (headless Chromium, Debian package ``chromium``):
the charts are drawn (the screenshot is not blank and shows each series' colour over a real area),
the chart elements exist with non-zero sizes, and the pages are self-contained."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import need_executable
from fixtures_pipeline import *
from fixtures_pipeline import TARGETS

from toolchain.reporting.dashboard import COLORS
from toolchain.reporting.report import Variant

pytestmark = pytest.mark.tf  # the input models are made with the TFLite converter

WINDOW = (1300, 3000)


def _chromium(tmp_path: Path, page: Path, *mode: str) -> subprocess.CompletedProcess:
    exe = need_executable("chromium", "chromium")
    argv = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium-profile'}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
            *mode, page.resolve().as_uri()]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def screenshot(tmp_path: Path, page: Path) -> np.ndarray:
    from PIL import Image

    png = tmp_path / f"{page.parent.name}-{page.stem}.png"
    _chromium(tmp_path, page, f"--screenshot={png}")
    with Image.open(png) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def dump_dom(tmp_path: Path, page: Path) -> str:
    return _chromium(tmp_path, page, "--dump-dom").stdout


def bar_pixels(img: np.ndarray, hex_colour: str, run_px: int = 20, tolerance: int = 6) -> int:
    """Pixels of the colour that start a solid horizontal run of ``run_px``: bars, not anti-aliased text."""
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
    mask = np.all(np.abs(img - rgb) <= tolerance, axis=2).astype(np.int32)
    c = np.concatenate([np.zeros((mask.shape[0], 1), np.int32), np.cumsum(mask, axis=1)], axis=1)
    windows = c[:, run_px:] - c[:, :-run_px]
    return int(np.count_nonzero(windows == run_px))


def bars(dom: str) -> list[dict[str, str]]:
    """Attributes of every <rect class="bar"> the browser's DOM holds."""
    out = []
    for m in re.finditer(r"<rect ([^>]*class=\"bar\"[^>]*)>", dom):
        out.append(dict(re.findall(r'([\w-]+)="([^"]*)"', m.group(1))))
    return out


def test_target_page_draws_before_after_and_layer_charts(tflite_deploy, tmp_path):
    page = tflite_deploy.model_dir / TARGETS[0] / "report" / "index.html"
    img = screenshot(tmp_path, page)
    assert img.shape[:2] == (WINDOW[1], WINDOW[0])
    assert img.std() > 20  # not blank
    for v in (Variant.BEFORE, Variant.AFTER):
        # 6 bar charts of 18-pixel high bars (the largest 240 pixels long) and the per-layer chart
        assert bar_pixels(img, COLORS[v]) > 6 * 18 * 100, v
    assert bar_pixels(img, COLORS[Variant.PLAIN]) == 0  # no plain int8 model in the post-training entry

    dom = dump_dom(tmp_path, page)
    found = bars(dom)
    assert found, "no chart bars in the DOM"
    assert all(float(b["width"]) > 0 and float(b["height"]) > 0 for b in found)
    series = {b["data-series"] for b in found}
    assert series == {"before", "after"}
    layers = len([ln for ln in (tflite_deploy.model_dir / TARGETS[0] / "report" / "report.md").read_text().splitlines()
                  if ln.startswith("| ") and ("CONV" in ln or "FULLY" in ln)])
    assert layers >= 3
    # 7 metric charts x 2 models, plus one bar per model for every layer holding encoded weights
    assert len(found) >= 7 * 2 + 2 * 2
    # two builds in the history: a line per series and a point per build
    assert len(re.findall(r'<polyline class="line" data-series="after"', dom)) >= 3
    assert len(re.findall(r'<circle class="point" data-series="after"', dom)) >= 6


def test_combined_page_compares_the_targets(tflite_deploy, tmp_path):
    page = tflite_deploy.model_dir / "index.html"
    img = screenshot(tmp_path, page)
    assert img.std() > 20
    for v in (Variant.BEFORE, Variant.AFTER):
        assert bar_pixels(img, COLORS[v]) > 4 * len(TARGETS) * 13 * 100, v
    dom = dump_dom(tmp_path, page)
    found = bars(dom)
    assert len(found) == 5 * len(TARGETS) * 2  # flash, SRAM, cycles, time, encoded weights; before and after
    assert all(float(b["width"]) > 0 for b in found)
    for t in TARGETS:
        assert f'href="./{t}/report/index.html"' in dom
    assert (tflite_deploy.model_dir / TARGETS[0] / "report" / "index.html").is_file()


@pytest.mark.slow
def test_example_page_shows_all_three_models(example_deploy, tmp_path):
    page = example_deploy.model_dir / TARGETS[1] / "report" / "index.html"
    img = screenshot(tmp_path, page)
    for v in Variant:
        assert bar_pixels(img, COLORS[v]) > 6 * 18 * 100, v
    assert {b["data-series"] for b in bars(dump_dom(tmp_path, page))} == {"plain", "before", "after"}


@pytest.mark.parametrize("which", ["target", "combined"])
def test_pages_are_self_contained(tflite_deploy, which):
    page = tflite_deploy.model_dir / ("index.html" if which == "combined" else f"{TARGETS[0]}/report/index.html")
    html = page.read_text()
    assert "<script" not in html and "<link" not in html and "<img" not in html and "url(" not in html
    assert "@import" not in html and " src=" not in html
    assert re.findall(r"https?://[^\"' ]+", html) == ["http://www.w3.org/2000/svg"] * html.count("<svg")
    for href in re.findall(r'href="([^"]+)"', html):  # links go only to files of the same build
        assert not re.match(r"^[a-z]+:", href) and (page.parent / href).resolve().is_file(), href
