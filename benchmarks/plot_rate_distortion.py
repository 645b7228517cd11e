"""Draw the rate-distortion curves of benchmarks/results/rate_distortion.json into docs/images/ (SVG, matplotlib).

One panel per network and target: test accuracy against Vela's encoded weights as a multiple of plain
int8's on that target. The planner's budgets and the fixed-K rewrites are lines; plain int8, the tfmot
flow, the rate price at fixed K and `--clusters auto` are points; the floor is a dashed vertical line, the
targets (0.40x at -0.5 points, 0.50x at -0.2) dotted. The SVG is byte-identical for the same results.
Run: .venv/bin/python benchmarks/plot_rate_distortion.py   (needs the report extra: matplotlib)
"""
from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "rate_distortion.json"
OUT = HERE.parent / "docs" / "images" / "rate_distortion.svg"
NET_NAMES = {"convnet_bn": "BN ConvNet", "mobilenet_v2": "MobileNetV2-style", "ds_cnn": "DS-CNN-style"}


def _series(rows: list[dict], name: str) -> list[dict]:
    return sorted((r for r in rows if r["series"] == name and r.get("accuracy") is not None),
                  key=lambda r: r["encoded_ratio_vs_int8"])


def draw(doc: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("svg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "rate-distortion"  # stable element ids: the same results give the same file
    nets = list(dict.fromkeys(r["model"] for r in doc["rows"]))
    targets = doc["settings"]["targets"]
    fig, axes = plt.subplots(len(nets), len(targets), figsize=(5.2 * len(targets), 3.6 * len(nets)), squeeze=False)
    for i, net in enumerate(nets):
        for j, target in enumerate(targets):
            ax = axes[i][j]
            rows = [r for r in doc["rows"] if r["model"] == net and r["target"] == target]
            int8 = next((r for r in rows if r["series"] == "plain int8"), None)
            if int8 is None:
                continue
            base = 100 * int8["accuracy"]
            for name, style in (("planner", "o-"), ("fixed K", "s--")):
                pts = _series(rows, name)
                ax.plot([r["encoded_ratio_vs_int8"] for r in pts], [100 * r["accuracy"] for r in pts], style,
                        label="planner (weight budget)" if name == "planner" else "fixed K", markersize=4)
            for name, marker, label in (("fixed K, rate price", "x", "fixed K + rate price"),
                                        ("tfmot flow", "*", "tfmot flow K=16"), ("auto", "D", "--clusters auto"),
                                        ("plain int8", "P", "plain int8")):
                pts = _series(rows, name)
                if pts:
                    ax.plot([r["encoded_ratio_vs_int8"] for r in pts], [100 * r["accuracy"] for r in pts], marker,
                            linestyle="none", label=label, markersize=7)
            floor = next((r for r in rows if r["series"] == "floor"), None)
            if floor is not None:
                ax.axvline(floor["encoded_ratio_vs_int8"], color="grey", linestyle="--", linewidth=1, label="floor")
            for x, drop in ((0.40, 0.5), (0.50, 0.2)):
                ax.axhline(base - drop, color="grey", linestyle=":", linewidth=0.8)
                ax.axvline(x, color="grey", linestyle=":", linewidth=0.8)
            ax.set_ylim(base - 3.0, base + 0.6)
            ax.set_xlim(0.0, 1.05)
            ax.set_title(f"{NET_NAMES.get(net, net)}, {target}", fontsize=10)
            ax.set_xlabel("Vela encoded weights / plain int8's", fontsize=9)
            ax.set_ylabel("test accuracy (%)", fontsize=9)
            ax.grid(alpha=0.3)
            if i == 0 and j == 0:
                ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return out


def main() -> int:
    print(f"wrote {draw(json.loads(RESULT.read_text()), OUT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
