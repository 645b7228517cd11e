"""A PNG of a real dashboard, for the README: headless Chromium renders ``build/<model>/index.html``.

The dashboard is one self-contained HTML file (inline CSS and SVG, no script, nothing
fetched), so a plain ``--screenshot`` of the file shows exactly what a browser shows.
Build the dashboard first (``make deploy TARGET=ethos-u55`` writes build/example/index.html).
Run: .venv/bin/python benchmarks/dashboard_screenshot.py [--page build/example/index.html]
     [-o docs/images/dashboard.png] [--width 1280] [--height 960]

Next to the PNG it records (docs/images/dashboard.json) the sha256 of the image and of the code that
draws the dashboard (SOURCES): tests/test_docs_drift.py fails when that code changes after the shot.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = ("/usr/bin/chromium", "chromium", "chromium-browser")
# Chromium without a display, a profile of its own and nothing that reaches the network.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars")
TIMEOUT_S = 120
IMAGE = REPO / "docs" / "images" / "dashboard.png"
RECORD = IMAGE.with_suffix(".json")
# The code whose change changes what the screenshot shows (the layout, the charts, the number formats).
SOURCES = ("toolchain/reporting/dashboard.py", "toolchain/reporting/svg_charts.py",
           "toolchain/reporting/formatting.py")


def find_chromium() -> str:
    for name in CHROMIUM:
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("error: chromium not found (Debian package 'chromium': sudo apt-get install chromium)")


def screenshot(page: Path, out: Path, width: int, height: int) -> Path:
    if not page.is_file():
        raise SystemExit(f"error: {page} not found: build it first with 'make deploy TARGET=ethos-u55'")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dashboard-shot-") as tmp:
        shot = Path(tmp) / "shot.png"
        cmd = [find_chromium(), *FLAGS, f"--user-data-dir={Path(tmp) / 'profile'}", f"--screenshot={shot}",
               f"--window-size={width},{height}", page.resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
        if proc.returncode != 0 or not shot.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise SystemExit(f"error: chromium exited {proc.returncode} without a screenshot: " + " / ".join(tail))
        if shot.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
            raise SystemExit("error: chromium wrote something that is not a PNG")
        shutil.move(str(shot), out)  # complete or absent under its final name
    return out


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_record(image: Path) -> Path:
    """The image's hash and the hashes of SOURCES, beside the image (what tests/test_docs_drift.py compares)."""
    record = {"image_sha256": sha256_file(image), "sources": {s: sha256_file(REPO / s) for s in SOURCES}}
    path = image.with_suffix(".json")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--page", type=Path, default=REPO / "build" / "example" / "index.html",
                    help="the dashboard (default build/example/index.html)")
    ap.add_argument("-o", "--output", type=Path, default=IMAGE)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=960, help="the page is cut at this height")
    args = ap.parse_args(argv)
    out = screenshot(args.page, args.output, args.width, args.height)
    record = write_record(out)
    print(f"wrote {out} ({out.stat().st_size:,} bytes) from {args.page}, and {record.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
