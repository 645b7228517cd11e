"""benchmarks/tables: each table rendered from a small results document written here, against Markdown
written here. Number formats, missing values ("-"), ordering and filtering; standard library only (the
tables import no toolchain module and no TensorFlow), so this runs in milliseconds.
"""
from __future__ import annotations

import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import tables
from tables import markdown
from tables.rfc import RFC_OUTPUTS, RFC_TFMOT_FLOAT, RFC_USUAL

MACHINE = {"machine": {"machine": "x86_64", "cpus": 2, "python": "3.11.7"}}


def test_markdown_pieces():
    assert markdown.table(["a", "b"], [["1", "2"], ["3", "4"]]) == "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |"
    assert markdown.cell("a|b\nc") == "a\\|b c"
    assert (markdown.kib(None), markdown.kib(1536), markdown.kib(2_097_152)) == ("-", "1.5", "2,048.0")
    assert (markdown.mcycles(None), markdown.mcycles(1_234_567)) == ("-", "1.235")
    assert markdown.span([1.01, 1.04], ".1f") == "1.0"  # equal once formatted: one figure
    assert markdown.span([3.25, 1.5], ".2f") == "1.50-3.25"
    assert markdown.span([-0.5, 0.3], "+.1f") == "-0.5 to +0.3"
    assert markdown.span([-2.0, 1.0], ".1f") == "-2.0 to 1.0"  # a minus sign: no dash between
    assert markdown.machine_text({}) == "? cores, Python ?"
    assert markdown.machine_text({"machine": {"cpus": 2, "python": "3.11.7", "load_average_start": [1.26, 1.0]}}) \
        == "2 cores, Python 3.11.7, load average 1.3 at the start"
    assert markdown.pct(0.91234) == "91.23%"


# --------------------------------------------------------------------------- compression on Fashion-MNIST

FASHION = {
    "vela_targets": ["u55", "u85"], "layers": ["conv", "dense"], "test_samples": 10000,
    "targets_checked_at_clusters": 16,
    "rows": [
        {"model": "convnet", "clusters": None, "variant": "float", "accuracy": 0.9, "zipped_bytes": 40960,
         "distinct_per_tensor": {"conv": 300, "dense": 5000}, "vela": {}},
        {"model": "other", "clusters": None, "variant": "float", "accuracy": 0.5, "zipped_bytes": 1,
         "distinct_per_tensor": {}, "vela": {}},
        {"model": "convnet", "clusters": None, "variant": "int8", "accuracy": 0.8995, "zipped_bytes": 10240,
         "distinct_per_tensor": {"conv": 255, "dense": 256},
         "vela": {"u55": {"encoded_weight_bytes": 9216, "flash_bytes": 20480, "cycles_total": 1_500_000}}},
        {"model": "convnet", "clusters": 16, "variant": "this toolchain", "accuracy": 0.895, "zipped_bytes": 4096,
         "distinct_per_tensor": {"conv": 16},
         "vela": {"u55": {"encoded_weight_bytes": 3072, "flash_bytes": 12288, "cycles_total": 1_234_567},
                  "u85": {"encoded_weight_bytes": 2048, "flash_bytes": 10240, "cycles_total": 654_321}}},
    ],
    "targets": [
        {"model": "convnet", "clusters": 16, "variant": "this toolchain, size plan",
         "encoded_ratio_vs_usual": {"u55": 0.5, "u85": 0.4567}, "accuracy_vs_usual_points": 0.123,
         "encoded_target_pass": True, "zip_factor_vs_float": 9.876, "accuracy_vs_float_points": -0.5,
         "zip_target_pass": True},
        {"model": "convnet", "clusters": 32, "variant": "this toolchain, size plan",
         "encoded_ratio_vs_usual": {"u55": 0.61, "u85": 0.7}, "accuracy_vs_usual_points": -0.6,
         "encoded_target_pass": False, "zip_factor_vs_float": 7.5, "accuracy_vs_float_points": -1.25,
         "zip_target_pass": False},
        {"model": "convnet", "clusters": 16, "variant": "this toolchain",
         "encoded_ratio_vs_usual": {"u55": 0.6, "u85": 0.65}, "accuracy_vs_usual_points": -0.1,
         "encoded_target_pass": False, "zip_factor_vs_float": 12.34, "accuracy_vs_float_points": -0.2,
         "zip_target_pass": True},
    ],
}


def test_fashion_mnist_table_filters_one_model_and_marks_what_is_missing():
    assert tables.fashion_mnist_table(FASHION, "convnet").splitlines() == [
        ("| K | variant | test accuracy | vs float | zipped KiB | float zipped / zipped | distinct values conv / dense "
         "| u55 encoded weights KiB | u55 flash KiB | u55 Mcycles "
         "| u85 encoded weights KiB | u85 flash KiB | u85 Mcycles |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        "| - | float | 90.00% | +0.00 | 40.0 | 1.0x | 300 / 5000 | - | - | - | - | - | - |",
        "| - | int8 | 89.95% | -0.05 | 10.0 | 4.0x | 255 / 256 | 9.0 | 20.0 | 1.500 | - | - | - |",
        "| 16 | this toolchain | 89.50% | -0.50 | 4.0 | 10.0x | 16 / - | 3.0 | 12.0 | 1.235 | 2.0 | 10.0 | 0.654 |",
    ]


def test_fashion_mnist_targets_use_the_default_thresholds_of_older_results():
    assert tables.fashion_mnist_targets(FASHION).splitlines()[0] == (
        "| model | K | variant | encoded weights vs usual flow (u55 / u85) | accuracy vs usual flow "
        "| target <= 0.55x, >= -0.5 points | zipped float / zipped | accuracy vs float | target >= 8x, >= -1 point |")
    assert tables.fashion_mnist_targets(FASHION).splitlines()[2:] == [
        ("| convnet | 16 (target K) | this toolchain, size plan | 0.500x / 0.457x | +0.12 | PASS | 9.88x | -0.50 "
         "| PASS |"),
        "| convnet | 32 | this toolchain, size plan | 0.610x / 0.700x | -0.60 | FAIL | 7.50x | -1.25 | FAIL |",
        "| convnet | 16 (target K) | this toolchain | 0.600x / 0.650x | -0.10 | FAIL | 12.34x | -0.20 | PASS |",
    ]


def test_fashion_mnist_verdict_one_line_per_model_in_order():
    assert tables.fashion_mnist_verdict(FASHION).splitlines() == [
        ("- `convnet` at K = 16: both targets met by *this toolchain, size plan*; *this toolchain* (exactly 16 values "
         "per tensor) reaches 0.60x / 0.65x of the usual flow's encoded weights at -0.10 points and 12.3x smaller "
         "zipped than float."),
        "- `other` at K = 16: both targets met by no variant.",
    ]


def test_fashion_mnist_notes():
    fits = {"within_budget": True, "npu_operators": 5, "cpu_operators": 0}
    doc = {"vela_targets": ["u55", "u85"], "test_samples": 10000, "rows": [
        {"vela": {"u55": fits}},
        {"vela": {"u55": fits, "u85": {"within_budget": False, "npu_operators": 4, "cpu_operators": 1}}}]}
    assert tables.fashion_mnist_notes(doc) == (
        "Every int8 variant does not always fit the default boards of u55 and u85 (budgets recorded, not enforced) "
        "and compiles to 4 NPU, 1 CPU operators or 5 NPU, 0 CPU operators; accuracies are on the 10,000-image test "
        "set.")


def test_fashion_mnist_largest_layer():
    layers = [{"layer": "conv", "original_bytes": 200, "encoded_bytes": 180},
              {"layer": "dense", "original_bytes": 800, "encoded_bytes": 600}]
    doc = {"vela_targets": ["u55"], "rows": [
        {"model": "convnet", "clusters": None, "variant": "float", "zipped_bytes": 3000, "vela": {}},
        {"model": "convnet", "clusters": None, "variant": "int8", "zipped_bytes": 750,
         "vela": {"u55": {"original_weight_bytes": 1000, "layers": layers}},
         "tensors": [{"layer": "conv"}, {"layer": "dense", "distinct": 256, "top32_fraction": 0.456,
                                         "entropy_bits_per_weight": 6.789}]}]}
    assert tables.fashion_mnist_largest_layer(doc).splitlines()[2:] == [
        "| convnet | - | float | - | - | - | - | - | - | 24.00 |",
        "| convnet | - | int8 | dense (80.0%) | 256 | 46% | 6.79 | 6.00 | 0.750x | 6.00 |",
    ]


def test_fashion_mnist_cost():
    times = {"base_training_s": 600.4, "finetune_s": 1200.6, "cqat_s": 300, "conversion_s": 45.2, "recluster_s": 30,
             "bias_correction_s": 12.7, "evaluate_s": 80, "vela_s": 20}
    doc = {**MACHINE, "times_s": times, "uncached_estimate_s": 2289, "wall_s": 95.4, "cold_run": False,
           "last_cold_run": {"wall_s": 1800, "load_average_start": [2.04]},
           "rows": [{"variant": "this toolchain", "recluster_s": 1.24}, {"variant": "int8", "recluster_s": 99},
                    {"variant": "this toolchain", "recluster_s": 3.0}]}
    assert tables.fashion_mnist_cost(doc).splitlines() == [
        "| step | time on 2 cores, Python 3.11.7 |", "|---|---|",
        "| base training | 600 s |", "| clustering fine-tunes (tfmot) | 1201 s |", "| cluster-preserving QAT | 300 s |",
        "| TFLite conversions | 45 s |", "| `recluster`, size plans included | 30 s |", "| bias correction | 13 s |",
        "| LiteRT accuracy on the test set | 80 s |", "| Vela compiles | 20 s |",
        "| sum of the steps (a run without caches) | 2289 s |",
        "| wall time of the last run without caches | 1800 s (30.0 min; load average 2.0 at the start) |",
        "| wall time of the latest run | 95 s (cached models reused) |",
        "| `recluster` of one model (default joint fit, 2 models) | 1.2-3.0 s |",
    ]


BASES = {
    **MACHINE, "test_images": 10000, "int8": "per-channel int8",
    "schedule": {"optimizer": "adam", "learning_rate": 0.001, "batch": 64, "train_images": 60000, "seed": 0},
    "models": {
        "convnet": {"trained_by": "benchmarks/base_models.py", "parameters": 12345, "epochs": 30,
                    "float_accuracy": 0.9123, "int8_accuracy": 0.9101, "float_zipped_bytes": 45000,
                    "int8_zipped_bytes": 11264, "training_time_s": 1800,
                    "curve": [{"epoch": e + 1, "test_accuracy": a}
                              for e, a in enumerate([0.89, 0.9, 0.905, 0.91, 0.9123])]},  # the last 4 show
        "ds_cnn": {"trained_by": "x.py", "parameters": 1000, "epochs": 12, "float_accuracy": 0.85,
                   "int8_accuracy": 0.84, "float_zipped_bytes": 2048, "int8_zipped_bytes": 1024},
    },
}


def test_base_models_table():
    assert tables.base_models_table(BASES).splitlines()[2:] == [
        ("| `convnet` | `benchmarks/base_models.py` | 12,345 | 30 | 91.23% | 91.01% | 43.9 | 11.0 | 30 min "
         "| epochs 2-5: 90.00 / 90.50 / 91.00 / 91.23% |"),
        "| `ds_cnn` | `x.py` | 1,000 | 12 | 85.00% | 84.00% | 2.0 | 1.0 | - | - |",
        "",
        ("Schedule: Adam, learning rate 0.001, batch 64, all 60,000 training images, seed 0, no augmentation. "
         "Top-1 on the 10,000-image test set in LiteRT: the float .tflite, and the int8 model (per-channel int8). "
         "Training times on 2 cores shared with other work."),
    ]


# --------------------------------------------------------------------------- the rewriter

SPEED = {"repeats": 5, "summary": [{
    "clusters": 16, "tensors": 52, "weights": 2_223_872, "dp_error_total": 9.0, "kmeans_error_total": 10.0,
    "tensors_dp_worse_than_kmeans": 0,
    "histogram": {"dp_s": {"median": 0.0123, "min": 0.011, "max": 0.02},
                  "kmeans_s": {"median": 1.23, "min": 1.2, "max": 1.5},
                  "kmeans_setting": "KMeans(n_init=10) on the histogram"},
    "raw": {"dp_s": {"median": 0.05, "min": 0.04, "max": 0.06}, "kmeans_s": {"median": 25.0, "min": 24.5, "max": 26.3},
            "kmeans_setting": "KMeans(n_init=1) on every raw weight"},
    "recluster_model_s": {"keep": {"median": 0.5}, "refit": {"median": 0.75}, "joint": {"median": 1.5}}}]}


def test_recluster_speed_table():
    assert tables.recluster_speed_table(SPEED).splitlines()[2:] == [
        ("| 16 | 52 | 2,223,872 | 0.012 (0.011-0.020) | 1.23 (1.20-1.50) | 100x | 0.050 (0.040-0.060) "
         "| 25.0 (24.5-26.3) | 500x | 0.900 | 0 | 0.50 / 0.75 / 1.50 |"),
        "",
        ("Medians of 5 runs in one session, (min-max) in brackets. Same histogram: KMeans(n_init=10) on the histogram; "
         "from raw weights: KMeans(n_init=1) on every raw weight."),
    ]


def _fit_runs(total: float, load: float, stats: float, litert: float, fits: float | None, cpu: float, rss: float,
              shas: list[str]) -> dict:
    return {"runs": 3, "segments": 1, "litert_passes": 1, "batch": 12, "output_sha256": shas,
            "median": {"total_s": total, "load_s": load, "statistics_s": stats, "litert_s": litert, "fits_s": fits,
                       "cpu_s": cpu, "peak_rss_mib": rss}}


FIT_SPEED = {
    "machine": {"cpus": 2, "python": "3.11.7", "load_average_start": [3.04, 1.0]}, "baseline_commit": "abcdef0123456",
    "output_aware": {"before": _fit_runs(52.5, 6.04, 28.0, 14.0, None, 47.0, 2200.4, ["a"]),
                     "after": _fit_runs(21.0, 1.0, 12.0, 10.5, 6.0, 24.0, 716.6, ["b", "c"])},
    "weight_space_fit_s": {"before": {"median": 1.38, "runs": 5}, "after": {"median": 0.6, "runs": 5, "cpu_median": 0.91}},
    "thread_settings": {"before": {"same": True}, "after": {"same": False}},
    "accuracy": [{"model": "ds_cnn", "clusters": 8, "calibration_samples": 512, "test_images": 10000,
                  "int8_accuracy": 0.9134, "before": {"accuracy": 0.9056, "fit_s": 23.51},
                  "after": {"accuracy": 0.9049, "fit_s": 13.2}, "accuracy_change_points": -0.07,
                  "top1_agreement_before_after": 0.99871}],
}


def test_fit_speed_table_marks_missing_phases_and_differing_bytes():
    assert tables.fit_speed_table(FIT_SPEED).splitlines() == [
        "| MobileNetV2 224x224, K=16, 512 samples | before | after | before / after |",
        "|---|---|---|---|",
        "| output-aware fit, wall s | 52.5 | 21.0 | 2.5x |",
        "| of which: reading and quantising the calibration file | 6.0 | 1.0 | 6.0x |",
        "| statistics (LiteRT and Hessians) | 28.0 | 12.0 | 2.3x |",
        "| LiteRT invokes (any thread) | 14.0 | 10.5 | 1.3x |",
        "| per-layer fits | - | 6.0 | - |",
        "| CPU s (all threads) | 47.0 | 24.0 | 2.0x |",
        "| peak RSS MiB | 2200 | 717 | 3.1x |",
        "| weight-space fit s (median of 5) | 1.38 | 0.60 | 2.3x |",
        "| weight-space fit, CPU s | - | 0.91 | - |",
        "| same bytes in every run / with OPENBLAS_NUM_THREADS=1 and 2 | yes / yes | no / no |  |",
        "",
        ("Medians of 3 runs per version, alternating in one session, each in its own process; before: commit "
         "abcdef0123. 1 segment, 1 LiteRT pass, batches of 12. Machine: 2 cores, Python 3.11.7, load average 3.0 at "
         "the start."),
        "",
        ("| net | K | int8 | before | after | change (points) | top-1 agreement before/after | fit s before "
         "| fit s after |"),
        "|---|---|---|---|---|---|---|---|---|",
        "| ds_cnn | 8 | 91.34% | 90.56% | 90.49% | -0.07 | 0.9987 | 23.5 | 13.2 |",
        "",
        ("Fashion-MNIST nets of benchmarks/output_aware_models.py, depthwise included, 512 seeded training images, "
         "accuracy on the 10,000 test images; one run per version."),
    ]


def test_fit_speed_verdict_against_the_targets():
    assert tables.fit_speed_verdict(FIT_SPEED).splitlines() == [
        ("- Output-aware fit: 52.5 s -> 21.0 s wall (2.5x faster), 47.0 -> 24.0 s CPU, peak 2200 -> 717 MiB; "
         "target < 25 s met, < 1 GB met on this machine."),
        "- Weight-space fit: 1.38 s -> 0.60 s; target < 1 s met.",
        "- `ds_cnn` K=8: 90.56% before, 90.49% after (-0.07 points), fit 23.5 s -> 13.2 s.",
    ]
    slow = {**FIT_SPEED, "accuracy": None,
            "output_aware": {**FIT_SPEED["output_aware"], "after": _fit_runs(30.0, 1, 2, 3, 4, 5, 1500.0, ["b"])},
            "weight_space_fit_s": {"before": {"median": 1.38}, "after": {"median": 1.0}}}
    assert tables.fit_speed_verdict(slow).splitlines()[0].endswith("target < 25 s not met, < 1 GB not met on this machine.")
    assert tables.fit_speed_verdict(slow).splitlines()[1].endswith("target < 1 s not met.")


def _restore_row(variant: str, distinct: list[int], error: float, accuracy: float, delta: float, encoded: int) -> dict:
    return {"clusters": 8, "variant": variant, "distinct_per_tensor": distinct, "squared_error_vs_float": error,
            "int8_accuracy": accuracy, "accuracy_delta_points": delta, "vela_encoded_weight_bytes": encoded}


RESTORE = {"rows": [_restore_row("before (tfmot flow)", [16, 40], 0.0012345, 0.9, 0.0, 12345),
                    _restore_row("recluster --fit joint", [8, 8], 2.5e-05, 0.901, 0.1, 8000),
                    _restore_row("recluster --fit keep", [8, 8], 5e-04, 0.88, -2.0, 8100),
                    _restore_row("recluster --fit joint, bias corrected", [8, 8], 2.6e-05, 0.903, 0.3, 8000)]}


def test_restore_clusters_table_and_verdict():
    assert tables.restore_clusters_table(RESTORE).splitlines()[2:5] == [
        "| 8 | before (tfmot flow) | 16, 40 | 0.00123 | 90.0% | +0.0 | 12,345 B |",
        "| 8 | recluster --fit joint | 8, 8 | 2.5e-05 | 90.1% | +0.1 | 8,000 B |",
        "| 8 | recluster --fit keep | 8, 8 | 0.0005 | 88.0% | -2.0 | 8,100 B |",
    ]
    assert tables.restore_clusters_verdict(RESTORE) == (
        "- K = 8: the joint fit has 20x less weight error than keeping the scales (2.5e-05 against the usual flow's "
        "own 0.00123), accuracy +0.1 to +0.3 points against before, and takes 35% off the encoded weights, where the "
        "usual flow left up to 40 values per tensor.")


def _oa_row(model: str, variant: str, accuracy: float, encoded: float = 1.0, **extra) -> dict:
    return {"model": model, "clusters": None, "variant": variant, "accuracy": accuracy,
            "encoded_ratio_vs_int8": encoded, "max_values_per_tensor": 256, **extra}


OUTPUT_AWARE = {
    **MACHINE, "dataset": {"calibration": "512 training images", "test_images": 10000},
    "settings": {"vela": "5.2.0", "target": "ethos-u55-128"},
    "rows": [
        _oa_row("convnet", "plain int8", 0.9),
        _oa_row("convnet", "post-training, weight-space fit, depthwise included", 0.5, 0.29),
        _oa_row("convnet", "post-training, output-aware fit, depthwise included", 0.89, 0.3),
        _oa_row("convnet", "post-training, weight-space fit", 0.85, 0.49),
        _oa_row("convnet", "post-training, output-aware fit", 0.895, 0.5),
        _oa_row("convnet", "post-training, --clusters auto with data (top-1 agreement >= 99.5% on calibration)", 0.899,
                0.45, top1_agreement_with_int8=0.9951),
        _oa_row("ds_cnn", "plain int8", 0.8),  # no fitted rows: no summary line
    ],
}


def test_output_aware_table():
    doc = {**OUTPUT_AWARE, "rows": [
        _oa_row("convnet", "plain int8", 0.9),
        {**_oa_row("convnet", "a | b", 0.8876, 0.3456, top1_agreement_with_int8=0.98761, fit_s=12.34), "clusters": 8,
         "max_values_per_tensor": 8}],
        "timing_mobilenet_v2_224": {"model": "MobileNetV2 224", "clusters": 16, "segments_1": {"samples": 64},
                                    "weight_space_fit_s": 3.21, "output_aware_fit_s_segments_1": 45.67,
                                    "output_aware_fit_s_segments_auto": 30.0, "segments_auto": {"segments": 3}}}
    assert tables.output_aware_table(doc).splitlines()[2:] == [
        "| convnet | - | plain int8 | 90.00% | - | 1.000x | 256 | - |",
        "| convnet | 8 | a \\| b | 88.76% | 0.9876 | 0.346x | 8 | 12.3 |",
        "",
        ("Fit time on MobileNetV2 224, K=16, 64 calibration samples: weight-space 3.2 s; output-aware 45.7 s "
         "(1 segment), 30.0 s (automatic: 3 segment(s))."),
        "",
        "Machine: 2 cores, Python 3.11.7; 512 training images; Vela 5.2.0, ethos-u55-128.",
    ]


def test_output_aware_summary():
    assert tables.output_aware_summary(OUTPUT_AWARE).splitlines() == [
        ("- `convnet` (plain int8 90.00%): K=8: 50.00% with the weight-space fit, 89.00% output-aware (encoded weights "
         "0.30x int8); K=16: 85.00% with the weight-space fit, 89.50% output-aware (encoded weights 0.50x int8); "
         "`--clusters auto`: 89.90%, agreement 0.995, 0.45x."),
        "",
        "Full test set (10,000 images); 512 training images.",
    ]


# --------------------------------------------------------------------------- make deploy, compiles, the corpus, sweeps

STAGES = [{"name": "example", "status": "ran", "time_s": 100.0, "note": ""},
          {"name": "compile ethos-u55-128", "status": "ran", "time_s": 12.3456, "note": "/tmp/x/build/example/compile"},
          {"name": "report ethos-u55-128", "status": "ran", "time_s": 0.5, "note": "/tmp/x/build/example/report.md"}]
MODEL = {"accuracy": 0.9, "file_bytes": 12345, "deflate_bytes": 10000, "encoded_weight_bytes": 9000,
         "flash_bytes": 20000, "sram_bytes": 30000, "cycles_total": 1_234_567, "max_distinct_values": 256}
DEPLOY = {
    **MACHINE, "target": "ethos-u55-128", "clusters": 16,
    "targets": {"max_total_s": 900, "total_pass": True, "max_post_processing_s": 10, "post_processing_pass": False,
                "second_run_noop": True},
    "fresh": {"command": ["toolchain", "deploy", "--json", "--build-dir", "/tmp/x/build", "--target", "ethos-u55-128"],
              "stages_ran": 3, "wall_s": 123.44, "training_s": 100.0, "post_processing_s": 12.34,
              "startup_and_other_s": 11.11, "stages": STAGES,
              "figures": [{"target": "ethos-u55-128",
                           "models": {"after": {**MODEL, "accuracy": None, "max_distinct_values": 16},
                                      "before": None, "plain": MODEL}}]},
    "second": {"stages_ran": 0, "stages": STAGES, "wall_s": 1.5, "training_s": 0, "post_processing_s": 0,
               "startup_and_other_s": 1.5},
}


def test_deploy_time_tables_and_verdict():
    assert tables.deploy_time_runs(DEPLOY).splitlines()[2:] == [
        "| fresh build directory | 3 of 3 | 123.4 s | 100.0 s | 12.3 s | 11.1 s |",
        "| second run (no-op) | 0 of 3 | 1.5 s | 0.0 s | 0.0 s | 1.5 s |",
    ]
    assert tables.deploy_time_stages(DEPLOY).splitlines() == [
        "| stage (fresh run) | kind | status | time |", "|---|---|---|---|",
        "| example | training | ran | 100.00 s |",
        "| compile ethos-u55-128 | post-processing | ran | 12.35 s |",
        "| report ethos-u55-128 | post-processing | ran | 0.50 s |",
    ]
    assert tables.deploy_time_verdict(DEPLOY) == (
        "Targets: the whole run under 15 minutes: **PASS** (123.4 s); the post-processing stages under 10 s: "
        "**FAIL** (12.3 s); the second run does nothing: **PASS** (0 of 3 stages ran, 1.5 s). Measured on 2 cores, "
        "Python 3.11.7.")
    assert [tables.stage_is_training(n) for n in ("finetune", "quantize x", "compile ethos-u55")] == [True, True, False]


def test_deploy_output_shows_a_default_build_directory():
    assert tables.deploy_output(DEPLOY).splitlines() == [
        "```",
        "$ toolchain deploy --target ethos-u55-128",
        "deploy example (example) for ethos-u55-128, K = 16, into build/example",
        "  example                          ran          100.0 s",
        "  compile ethos-u55-128            ran           12.3 s  build/example/compile",
        "  report ethos-u55-128             ran            0.5 s  build/example/report.md",
        "",
        "...",
        "",
        "3 of 3 stages ran, 0 up to date (112.8 s)",
        "report ethos-u55-128: build/example/report.md",
        "```",
    ]


def test_deploy_models_in_plain_before_after_order():
    assert tables.deploy_models(DEPLOY).splitlines()[2:] == [
        "| ethos-u55-128 | plain int8 | 90.00% | 12,345 | 10,000 | 9,000 | 20,000 | 30,000 | 1,234,567 | 256 |",
        "| ethos-u55-128 | after (reclustered) | - | 12,345 | 10,000 | 9,000 | 20,000 | 30,000 | 1,234,567 | 16 |",
    ]


def test_compile_speed_table():
    run = {"model": "a.tflite", "model_bytes": 123456, "target": "ethos-u55-128", "estimate_kind": "vela", "repeats": 5,
           "median_s": 1.23456, "min_s": 1.2, "max_s": 1.5, "cycles_total": 987654, "sram_bytes": 4096}
    doc = {"results": [run, {**run, "model": "b.tflite", "target": "ethos-n78-1tops-4ple", "estimate_kind": "analytical"}]}
    assert tables.compile_speed_table(doc).splitlines()[2:] == [
        "| `a.tflite` | 123,456 | ethos-u55-128 | Vela compile | 5 | 1.235 | 1.200 | 1.500 | 987,654 | 4,096 |",
        ("| `b.tflite` | 123,456 | ethos-n78-1tops-4ple | analytical estimate | 5 | 1.235 | 1.200 | 1.500 | 987,654 "
         "| 4,096 |"),
    ]


def test_verdict_table():
    doc = {**MACHINE, "target_gap": 0.01, "dataset": {"calibration": "1536 seeded images"}, "rows": [
        {"model": "mobilenet_v2", "clusters": 8, "printed_top1_agreement": 0.96875, "printed_samples": 1024,
         "test_top1_agreement": 0.9712, "test_samples": 10000, "gap": 0.0025, "in_sample_top1_agreement": 1.0,
         "in_sample_samples": 32, "random_top1_agreement": None, "accuracy_int8": 0.925, "accuracy_after": 0.9189},
        {"model": "ds_cnn", "clusters": 16, "printed_top1_agreement": 0.95, "printed_samples": 1024,
         "test_top1_agreement": 0.9712, "test_samples": 10000, "gap": 0.0212, "in_sample_top1_agreement": 0.96875,
         "in_sample_samples": 32, "random_top1_agreement": 0.625, "accuracy_int8": 0.9, "accuracy_after": 0.8}]}
    lines = tables.verdict_table(doc).splitlines()
    assert lines[2:4] == [
        "| `mobilenet_v2` | 8 | 0.9688 (1,024) | 0.9712 (10,000) | 0.0025 | 1.000 (32) | not measurable | 92.50% -> 91.89% |",
        "| `ds_cnn` | 16 | 0.9500 (1,024) | 0.9712 (10,000) | 0.0212 | 0.969 (32) | 0.625 | 90.00% -> 80.00% |",
    ]
    assert lines[5].startswith("Target, printed agreement within 0.01 of the test split's: met on 1 of 2 rewrites "
                               "(largest gap 0.0212). The held-back figure is above the test split's on 0 of 2: ")
    assert "Calibration: 1536 seeded images" in lines[5]


def test_corpus_table():
    doc = {"results": [
        {"model": "kws", "verification": {"informative": True, "top1_agreement": 0.99876, "sqnr_db": None,
                                          "max_abs_diff_steps": 2.0, "stateful": True},
         "targets": {"ethos-u55-128": {"npu_operators": 10, "cpu_operators": 1, "init_operators": 2,
                                       "cpu_ops": ["SOFTMAX", "A|B"], "status": "ok", "inference_time_s": 0.0012345,
                                       "flash_before_bytes": 100000, "flash_after_bytes": 60000}}},
        {"model": "x", "verification": {"informative": False},
         "targets": {"t": {"npu_operators": 5, "cpu_operators": 0, "init_operators": 0, "cpu_ops": [], "status": "ok",
                           "inference_time_s": 0.5, "flash_before_bytes": 10, "flash_after_bytes": 10}}}]}
    assert tables.corpus_table(doc).splitlines()[2:] == [
        ("| `kws` | ethos-u55-128 | 10 / 1 (+2) | SOFTMAX, A\\|B | ok | 1,234.5 | 100,000 -> 60,000 "
         "| top-1 0.999, max 2 steps, identical (stream) |"),
        "| `x` | t | 5 / 0 | - | ok | 500,000.0 | 10 -> 10 | not informative |",
    ]


def test_sweep_scaling_table():
    doc = {**MACHINE, "wall_s": {"1": [100.0, 110.5], "2": [60.3, 58.0]}, "median_s": {"1": 105.3, "2": 59.125},
           "speedup_2_jobs": 1.78, "points": 3, "targets": ["u55", "u85"]}
    assert tables.sweep_scaling_table(doc).splitlines()[2:] == [
        "| `make -j1 sweep` | 2 | 105.3 s | 100.0, 110.5 |",
        "| `make -j2 sweep` | 2 | 59.1 s | 60.3, 58.0 |",
        "| speed-up of 2 jobs |  | 1.78x |  |",
        "",
        "3 sweep points (K) x 2 targets (u55, u85), the example trained once beforehand; 2 cores, Python 3.11.7.",
    ]


# --------------------------------------------------------------------------- beyond one machine

EXECUTORS = {**MACHINE, "jobs": 2, "points": 3, "targets": ["u55", "u85"],
             "wall_s": {"make": [100.0, 110.0], "ray": [120.0, 118.0]}, "median_s": {"make": 105.0, "ray": 119.0},
             "same_pareto": True, "same_reports": False, "ray_connect_s": [8.0, 10.0, 12.0],
             "point_deploy_s": [40.0, 48.0, 60.0], "point_in_task_overhead_s": [0.25, 0.75],
             "ray_noop": {"fresh_worker_s_per_task": 1.5, "reused_worker_s_per_task": 0.01}}


def test_sweep_executors_table():
    assert tables.sweep_executors_table(EXECUTORS).splitlines()[2:] == [
        "| default: `make -j2 sweep` | 2 | 105.0 s | 100.0, 110.0 |",
        "| Ray: `toolchain sweep --executor ray --jobs 2` | 2 | 119.0 s | 120.0, 118.0 |",
        "| Ray / default |  | 1.13x |  |",
        "",
        ("3 sweep points (K) x 2 targets (u55, u85), the example trained once beforehand; 2 points at a time on "
         "both. Same pareto.json, pareto.md and pareto.png bytes: yes; same report.json bytes: **no**. 2 cores, "
         "Python 3.11.7."),
    ]


def test_sweep_executors_costs():
    assert tables.sweep_executors_costs(EXECUTORS).splitlines()[2:] == [
        "| starting the local Ray cluster (once per sweep) | 10.0 s |",
        "| Ray's cost of one task on a fresh worker (no-op task; the points run this way) | 1.50 s |",
        "| the same on a reused worker (for comparison) | 0.010 s |",
        "| inside a point, besides the deploy: version and input checks, reading the reports (mean) | 0.50 s |",
        "| **Ray's cost per point** (the two above) | **2.00 s** |",
        "| a point's deploy (median of 3, 2 at a time) | 48.0 s |",
    ]


def test_sweep_executors_scale():
    # one machine: ceil(P/2) rounds of 48 s; Ray on M machines: 10 s + ceil(P/(2M)) rounds of 48 + 2 s
    lines = tables.sweep_executors_scale(EXECUTORS).splitlines()
    assert lines[0] == "| points | one machine, `make -j2` | Ray, 2 machines | Ray, 4 machines | Ray, 8 machines |"
    assert lines[2:6] == [
        "| 6 | 2.4 min | 1.8 min | 1.0 min | 1.0 min |",
        "| 24 | 9.6 min | 5.2 min | 2.7 min | 1.8 min |",
        "| 96 | 38.4 min | 20.2 min | 10.2 min | 5.2 min |",
        "| 384 | 153.6 min | 80.2 min | 40.2 min | 20.2 min |",
    ]
    # 2 points: 48 s on one machine, 60 s on Ray; 3 points: 96 s against 60 s
    assert "Ray on 2 machines is ahead from 3 points on: as soon as a sweep does not fit one machine's 2 slots" in lines[7]


def test_finetune_strategies_table():
    run = {"accuracy_before": 0.99, "clustered_layers": {"a": 16, "b": 16}}
    doc = {**MACHINE, "model": "m", "clusters": 16, "epochs": 2, "logical_cpu_devices": 2, "gpu": None, "runs": {
        "default": [{**run, "wall_s": 100.0, "accuracy_after": 0.985, "replicas": 1},
                    {**run, "wall_s": 110.0, "accuracy_after": 0.98, "replicas": 1}],
        "mirrored": [{**run, "wall_s": 130.0, "accuracy_after": 0.983, "replicas": 2,
                      "clustered_layers": {"a": 16, "b": 15}}]}}
    assert tables.finetune_strategies_table(doc).splitlines()[2:] == [
        "| `--strategy default` | CPU, 1 replica(s) | 2 | 105.0 s | 98.50%, 98.00% | 16 |",
        "| `--strategy mirrored` | CPU, 2 replica(s) | 1 | 130.0 s | 98.30% | 15, 16 |",
        "| `--strategy default` | GPU | - | not measured (no GPU lent to this work) | - | - |",
        "| `--strategy mirrored` | GPU | - | not measured (no GPU lent to this work) | - | - |",
        "",
        ("`toolchain finetune` of m, K = 16, 2 epochs, batch 32 (the global batch under every strategy), each run "
         "in a fresh process whose CPU is split into 2 logical devices; wall time includes starting TensorFlow and "
         "loading the data. 2 cores, Python 3.11.7."),
    ]


# --------------------------------------------------------------------------- fuzzing, bad inputs

FUZZ = {
    "cases": 10, "mutated_cases": 8, "stages": ["read", "inspect", "palettise", "compile", "recluster", "verify"],
    "outcomes": {"InputError": 1, "ModelFormatError": 5, "hang": 1, "ok": 3},
    "ended_at_stage": {"inspect": 1, "read": 4, "recluster": 1, "verify": 4},
    "findings": [{"outcome": "hang", "stage": "recluster"}],
    "slowest_case": {"time_s": 1.456, "outcome": "ok", "stage": "verify"},
    "peak_rss_bytes": 200 * 2**20, "elapsed_s": 12.6, "cases_per_s": 0.8,
}


def test_fuzz_figures_orders_outcomes_by_count_and_stages_by_pipeline():
    assert tables.fuzz_figures(FUZZ).splitlines()[2:] == [
        ("| 8 mutated + 2 seeds | ModelFormatError 5, accepted by every stage 3, InputError 1, hang 1 "
         "| read 4, inspect 1, recluster 1, verify 4 | 1.46 s (accepted, at verify) | 200 MiB | 1 "
         "| 13 s (0.8 cases/s) |"),
    ]


def test_fuzz_input_figures():
    assert tables.fuzz_input_figures(FUZZ) == "_Not in the latest results: rerun `benchmarks/fuzz_models.py`._"
    inputs = {"cases": 4000, "by_family": {"names": 2000, "paths": 2000}, "outcomes": {"ok": 10, "ConfigError": 30},
              "slowest_case": {"time_s": 0.2219, "family": "names"}, "findings": [], "elapsed_s": 103.26}
    assert tables.fuzz_input_figures({**FUZZ, "inputs": inputs}).splitlines()[2:] == [
        "| 4,000 | names 2,000, paths 2,000 | ConfigError 30, accepted 10 | 0.22 s (names) | 0 | 103 s |",
    ]


def test_fuzz_summary_line_counts_typed_stops_per_stage():
    """Accepted cases end at the last stage and findings at theirs: neither counts as a typed stop."""
    assert tables.robustness.fuzz_summary_line(FUZZ) == (
        "- **Robustness:** 10 fuzzing cases (8 mutated models and the 2 unmutated seeds) through read, inspect, "
        "palettise, compile, recluster and verify: 3 accepted by every stage, 6 stopped by a typed error "
        "(ModelFormatError 5, InputError 1; at read 4, inspect 1, verify 1), 1 crashes, hangs or untyped errors "
        "([robustness](docs/robustness.md)).")


def test_bad_inputs_table_escapes_cells():
    doc = {"cases": [
        {"id": "empty", "what": "an empty file", "command": "toolchain inspect e.tflite", "exit_code": 2,
         "error_line": "error: e.tflite is empty", "note": ""},
        {"id": "pipe", "what": "a | b", "command": "toolchain x", "exit_code": 0, "note": "fine"},
        {"id": "n", "what": "w", "command": "c", "exit_code": 3, "error_line": "error: a|b", "note": "see x"}]}
    assert tables.bad_inputs_table(doc).splitlines() == [
        "| case | input | command | exit | what the user sees |", "|---|---|---|---|---|",
        "| `empty` | an empty file | `toolchain inspect e.tflite` | 2 | `error: e.tflite is empty` |",
        "| `pipe` | a \\| b | `toolchain x` | 0 | accepted: fine |",
        "| `n` | w | `c` | 3 | `error: a\\|b` (see x) |",
    ]


# --------------------------------------------------------------------------- the RFC's table, the cascade


def _variant(name: str, accuracy: float, zipped: int, encoded: int | None = None, **extra) -> dict:
    vela = {} if encoded is None else {"u55": {"encoded_weight_bytes": encoded, "flash_bytes": encoded + 8192,
                                               "cycles_total": 1_900_000 + encoded}}
    return {"variant": name, "accuracy": accuracy, "zipped_bytes": zipped, "vela": vela, **extra}


def _cascade_run(k: int, prune: float | None, quantize: dict, *variants: dict) -> dict:
    return {"finetune_config": {"clusters": k, **({"prune": prune} if prune else {})}, "quantize_config": quantize,
            "variants": list(variants)}


def _rfc_row(model: str, configuration: str, net: str, config: str, top1: list, mb: list) -> dict:
    return {"rfc_model": model, "rfc_dataset": "ImageNet", "rfc_configuration": configuration, "net": net,
            "config": config, "mapping": "conv | dense", "rfc_top1_percent": top1, "rfc_zipped_mb": mb}


RFC = {
    "vela_targets": ["u55"],
    "rfc_rows": [_rfc_row("MobileNetV1", "selective", "convnet", "sel", [70.5, 70.0], [12.0, 3.0]),
                 _rfc_row("MobileNetV2", "selective", "convnet", "sel", [72.0, 71.25], [14.0, 3.5]),
                 _rfc_row("DS-CNN-L", "full", "ds_cnn", "full32", [95.0, 94.5], [1.0, 0.25])],  # not measured
    "bases": {"convnet": {"float": {"accuracy": 0.9, "zipped_bytes": 40960},
                          "int8": {"accuracy": 0.899, "max_distinct_values": 256,
                                   "vela": {"u55": {"encoded_weight_bytes": 10240, "flash_bytes": 20480,
                                                    "cycles_total": 2_000_000}}}}},
    "runs": {
        "convnet/sel": {
            "config": "sel", "config_file": "configs/sel.toml", "config_sha256": "abc",
            "clustered_weight_fraction": 0.8,
            "finetune": {"clustered_layers": [{"name": "conv", "clusters": 16}, {"name": "dense", "clusters": 64}]},
            "finetune_time_s": 100, "quantize_time_s": 20.4,
            "variants": [
                _variant(RFC_TFMOT_FLOAT, 0.895, 8192,
                         tensors=[{"name": "m/conv/Conv2D", "distinct": 40, "weights": 1000},
                                  {"name": "m/dense/MatMul", "distinct": 70, "weights": 5000}]),
                _variant(RFC_USUAL, 0.893, 6144, 8192, max_distinct_values=64),
                _variant(RFC_OUTPUTS, 0.8975, 5120, 6144, max_distinct_values=64, fit_s=12.4)]},
        "convnet/cascade_k16": _cascade_run(
            16, None, {},
            _variant(RFC_USUAL, 0.89, 8192, 8192, zero_weights=10, weights=1000, entropy_bits_per_weight=3.456),
            _variant(RFC_OUTPUTS, 0.895, 6144, 6144, zero_weights=5, weights=1000)),
        "convnet/cascade_k16_prune50": _cascade_run(
            16, 0.5, {},
            _variant(RFC_USUAL, 0.885, 4096, 6144, zero_weights=500, weights=1000, entropy_bits_per_weight=2.0),
            _variant(RFC_OUTPUTS, 0.8925, 3072, 4096, zero_weights=505, weights=1000, entropy_bits_per_weight=1.5)),
        "convnet/cascade_k16_cqat": _cascade_run(
            16, 0.5, {"cluster_preserving_qat": True, "preserve_sparsity": True},
            _variant(RFC_USUAL, 0.887, 4096, 6144, zero_weights=480, weights=1000, entropy_bits_per_weight=2.1)),
    },
    "cascade": [{"net": "convnet", "config": c} for c in ("cascade_k16", "cascade_k16_prune50", "cascade_k16_cqat")]
    + [{"net": "ds_cnn", "config": "cascade_k16"}],
}
USUAL, OUTPUTS = RFC_USUAL, RFC_OUTPUTS


def test_rfc_mapping_table_lists_measured_rows_in_order():
    assert tables.rfc_mapping_table(RFC).splitlines()[2:] == [
        "| MobileNetV1 (ImageNet): selective | `configs/sel.toml` | conv \\| dense | conv 16, dense 64 | 80% |",
        "| MobileNetV2 (ImageNet): selective | `configs/sel.toml` | conv \\| dense | conv 16, dense 64 | 80% |",
    ]


def test_rfc_results_table_with_its_notes():
    first = ["| MobileNetV1: selective | 70.50% -> 70% | -0.50 | 12.00 -> 3.00 | 4.00x | `convnet`: 90.00%, 40.0 ",
             "| MobileNetV2: selective | 72% -> 71.25% | -0.75 | 14.00 -> 3.50 | 4.00x | `convnet`: 90.00%, 40.0 "]
    blank = "|  |  |  |  |  |  "
    ours = [f"| {RFC_TFMOT_FLOAT} | 89.50% | -0.50 | 8.0 | 5.00x |", f"| {USUAL} | 89.30% | -0.70 | 6.0 | 6.67x |",
            f"| {OUTPUTS} | 89.75% | -0.25 | 5.0 | 8.00x |"]
    assert tables.rfc_results_table(RFC).splitlines()[2:] == [
        first[0] + ours[0], blank + ours[1], blank + ours[2], first[1] + ours[0], blank + ours[1], blank + ours[2],
        "",
        ("Distinct values per clustered kernel in the tfmot flow's float `.tflite` (what deflate sees): `convnet` "
         "`sel` up to 40 (16 clusters, 1,000 weights). Where a network has BatchNorm the converter folds its "
         "per-channel scale into the kernel, so K clusters become up to K values per output channel and the float "
         "model deflates less."),
        "",
        "Not measured yet (run `benchmarks/rfc_table.py`): DS-CNN-L: full (`full32`).",
    ]


def test_rfc_vela_table_and_verdict_count_a_config_once_per_network():
    assert tables.rfc_vela_table(RFC).splitlines()[2:] == [
        "| `convnet` | - | int8, not clustered | - | 89.90% | 256 | 10.0 | 20.0 | 2.000 |",
        f"| `convnet` | `sel` | {USUAL} | 120 | 89.30% | 64 | 8.0 | 16.0 | 1.908 |",
        f"| `convnet` | `sel` | {OUTPUTS} | 12 | 89.75% | 64 | 6.0 | 14.0 | 1.906 |",
        "",
        ("Time: the tfmot flow's fine-tune and int8 conversion (cached runs keep their first time), or the rewrite's "
         "fit, on the machine named above."),
    ]
    assert tables.rfc_vela_verdict(RFC) == (
        "- `convnet` `sel` (80% of the kernel weights clustered): the tfmot flow's int8 model encodes to 0.80x of the "
        f"unclustered int8 model's weights on u55; {OUTPUTS} to 0.60x (0.75x of the tfmot flow's) at +0.45 points "
        "against it (the layers at more than 32 clusters are beyond Vela's 32-entry palette either way).")


def test_cascade_table_compares_with_not_pruning():
    assert tables.cascade_table(RFC).splitlines()[2:] == [
        f"| `convnet` | 16 | not pruned | {USUAL} | 1.0% | 3.46 | 89.00% | -1.00 | 8.0 | - | 8.0 | - |",
        f"| `convnet` | 16 | not pruned | {OUTPUTS} | 0.5% | - | 89.50% | -0.50 | 6.0 | - | 6.0 | - |",
        f"| `convnet` | 16 | pruned 50% | {USUAL} | 50.0% | 2.00 | 88.50% | -1.50 | 4.0 | 0.50x | 6.0 | 0.75x |",
        f"| `convnet` | 16 | pruned 50% | {OUTPUTS} | 50.5% | 1.50 | 89.25% | -0.75 | 3.0 | 0.50x | 4.0 | 0.67x |",
        (f"| `convnet` | 16 | pruned 50%, sparsity- and cluster-preserving QAT | {USUAL} (after QAT) | 48.0% | 2.10 "
         "| 88.70% | -1.30 | 4.0 | 0.50x | 6.0 | 0.75x |"),
        "",
        "Not measured yet (run `benchmarks/rfc_table.py --only cascade`): `ds_cnn` `cascade_k16`.",
    ]
    assert tables.cascade_verdict(RFC) == (
        "- `convnet`, K = 16, output-aware fit: pruning to 50.5% zero weights takes u55's encoded weights from 6.0 to "
        "4.0 KiB (0.67x) and the zipped model from 6.0 to 3.0 KiB (0.50x), at -0.25 points (89.50% -> 89.25%).")


def test_centroid_init_table():
    compression = {"rows": [
        {"model": "convnet", "clusters": 16, "variant": "usual flow", "accuracy": 0.891,
         "vela": {"u55": {"encoded_weight_bytes": 8000}}},
        {"model": "convnet", "clusters": 16, "variant": "this toolchain", "accuracy": 0.894,
         "vela": {"u55": {"encoded_weight_bytes": 5000}}}]}
    assert tables.centroid_init_table(compression, RFC).splitlines() == [  # no weight-space run: one row
        ("| K | variant | top-1, k-means++ init | top-1, linear init | u55 encoded weights KiB, k-means++ | linear "
         "| linear / k-means++ |"), "|---|---|---|---|---|---|---|",
        f"| 16 | {USUAL} | 89.10% | 89.00% | 7.8 | 8.0 | 1.02x |",
    ]
    assert tables.centroid_init_table({"rows": []}, {**RFC, "runs": {}}) == (
        "Not measured yet (run `benchmarks/rfc_table.py --only cascade --nets convnet`).")


# --------------------------------------------------------------------------- the README's summary, the machines


def _plan(variant: str, encoded: float, zipped: float = 9.0, points: float = 0.0, clusters: int = 16) -> dict:
    return {"clusters": clusters, "variant": variant, "encoded_ratio_vs_usual": {"u55": encoded},
            "zip_factor_vs_float": zipped, "accuracy_vs_usual_points": points}


COMPRESSION = {"vela_targets": ["u55"], "targets_checked_at_clusters": 16, "targets": [
    _plan("this toolchain, size plan", 0.45, 9.0, -0.1), _plan("this toolchain, size plan", 0.5, 10.04, 0.2),
    _plan("this toolchain", 0.6), _plan("this toolchain", 0.62), _plan("this toolchain, size plan", 0.1, clusters=32)]}


def test_results_summary_without_the_optional_results():
    restore = {"rows": [{**r, "clusters": 16} for r in RESTORE["rows"]] + RESTORE["rows"]}  # the smallest K counts
    assert tables.results_summary(COMPRESSION, restore, SPEED, DEPLOY, FUZZ).splitlines() == [
        ("- **Fashion-MNIST, K = 16, u55:** `recluster --weight-budget` encodes the weights in 0.45-0.50x of the usual "
         "tfmot flow's bytes at -0.10 to +0.20 points of its accuracy, zipped 9.0-10.0x smaller than the float model; "
         "exactly 16 values per tensor gives 0.60-0.62x ([benchmarks](docs/benchmarks.md))."),
        ("- **Restoring clusters (example, K = 8):** the joint fit brings up to 40 values per tensor back to 8 with "
         "20x less weight error than keeping the scales, +0.1 points, encoded weights 0.65x of before."),
        ("- **Rewriter:** on the same histograms the exact palette solver is 100x faster than weighted KMeans, 500x "
         "from MobileNetV2's 2,223,872 raw weights, and never worse."),
        ("- **`make deploy TARGET=ethos-u55-128`:** 123 s from nothing (100 s of it training), 12.3 s of "
         "post-processing, 1.5 s for a second run that does nothing."),
        tables.robustness.fuzz_summary_line(FUZZ),
    ]


def test_results_summary_verdict_line():
    verdict = {"rows": [
        {"model": "a", "clusters": 16, "gap": 0.0015, "in_sample_top1_agreement": 1.0, "test_samples": 10000},
        {"model": "b", "clusters": 8, "gap": 0.0071, "in_sample_top1_agreement": 0.96875, "test_samples": 10000}]}
    lines = tables.results_summary(COMPRESSION, RESTORE, SPEED, DEPLOY, FUZZ, verdict=verdict).splitlines()
    assert lines[-2] == ("- **The agreement printed is measured on samples the fit never saw:** on 2 Fashion-MNIST "
                         "networks at K = 8 and 16 it lies within 0.0015-0.0071 of the agreement on the 10,000-image "
                         "test split, where the old in-sample check printed 0.969-1.000 ([held-back check]"
                         "(docs/benchmarks.md#the-held-back-check-against-a-test-split)).")


def test_results_summary_optional_lines():
    lines = tables.results_summary(COMPRESSION, RESTORE, SPEED, DEPLOY, FUZZ, OUTPUT_AWARE, BASES, RFC).splitlines()
    assert lines[0] == (
        "- **Base models, trained to convergence on Fashion-MNIST:** float top-1 ConvNet 91.23%, DS-CNN-style 85.00% "
        "on the 10,000-image test set, after 12-30 epochs of Adam (0.001, batch 64, all 60,000 training images, "
        "seed 0) ([base models](docs/benchmarks.md#converged-base-models)).")
    assert lines[5:-1] == [
        ("- **Post-training K = 8 with calibration data (1 Fashion-MNIST networks with BatchNorm and depthwise "
         "layers):** the output-aware fit keeps plain int8's accuracy within -1.0 points where the weight-space fit "
         "changes it by -40.0, at 0.30x of int8's encoded weights "
         "([rewriter](docs/rewriter.md#output-aware-fit-palettes-from-calibration-data))."),
        ("- **The clustering RFC's table at Fashion-MNIST scale (2 of 3 rows measured; accuracy change in points / "
         "times smaller zipped than the float model, the RFC's measurement; this toolchain's figure is its int8 model "
         "with the output-aware fit, so it includes quantization; "
         "[RFC table](docs/benchmarks.md#the-clustering-rfcs-results-table-reproduced-in-form)):**"),
        ("  - MobileNetV1, selective: RFC -0.50 / 4.0x; here (`convnet`) tfmot flow's float .tflite -0.50 / 5.0x, "
         "this toolchain -0.25 / 8.0x, u55 encoded weights 0.75x the tfmot flow's int8"),
        ("  - MobileNetV2, selective: RFC -0.75 / 4.0x; here (`convnet`) tfmot flow's float .tflite -0.50 / 5.0x, "
         "this toolchain -0.25 / 8.0x, u55 encoded weights 0.75x the tfmot flow's int8"),
        ("- **Prune, cluster, quantize (K = 16 and 32):** 50% magnitude pruning before clustering takes u55's encoded "
         "weights to these multiples of clustering alone: ConvNet 0.67x at -0.25 points (both rewritten with the "
         "output-aware fit; [cascade](docs/benchmarks.md#the-cascade-prune-cluster-quantize))."),
    ]


def test_results_machines_skips_missing_results_and_unknown_machines():
    measured = {"machine": {"machine": "x86_64", "cpus": 2, "python": "3.11.7", "load_average_start": [1.04],
                            "load_average_end": [2.51]}}
    assert tables.results_machines(measured, {}, {}, {}, {}, {}, {}, {}).splitlines() == [
        "| benchmark | script | results | machine | load average (start to end) |", "|---|---|---|---|---|",
        ("| compression on Fashion-MNIST | `benchmarks/compression_fashion_mnist.py` "
         "| `compression_fashion_mnist.json` | x86_64, 2 cores, Python 3.11.7 | 1.0 to 2.5 |"),
        "| rewriter speed | `benchmarks/recluster_speed.py` | `recluster_speed.json` | ?, ? cores, Python ? | - |",
        ("| restoring the cluster count | `benchmarks/restore_clusters.py` | `restore_clusters.json` | ?, ? cores, "
         "Python ? | - |"),
        "| `make deploy` time | `benchmarks/deploy_time.py` | `deploy_time.json` | ?, ? cores, Python ? | - |",
        "| compile speed | `benchmarks/compile_speed.py` | `compile_speed.json` | ?, ? cores, Python ? | - |",
        "| fuzzing | `benchmarks/fuzz_models.py` | `fuzz_models.json` | ?, ? cores, Python ? | - |",
        "| bad inputs | `benchmarks/bad_inputs_table.py` | `bad_inputs.json` | ?, ? cores, Python ? | - |",
        ("| real architectures through deploy | `benchmarks/corpus_deploy.py` | `corpus_deploy.json` | ?, ? cores, "
         "Python ? | - |"),
    ]


# --------------------------------------------------------------------------- rate-distortion

def _rd(net, target, series, ratio, change, **extra):
    row = {"model": net, "target": target, "series": series, "encoded_ratio_vs_int8": ratio,
           "encoded_weight_bytes": int(ratio * 10000), "label": extra.pop("label", series)}
    if change is not None:
        row |= {"accuracy": 0.9 + change / 100, "accuracy_change_points": change, "top1_agreement_with_int8": 0.98}
    return row | extra


RATE = {
    "settings": {"targets": ["ethos-u55-128", "ethos-u85-256"]},
    "rows": [
        _rd("ds_cnn", "ethos-u55-128", "plain int8", 1.0, 0.0),
        _rd("ds_cnn", "ethos-u55-128", "floor", 0.176, None, vela_own_weight_bytes=1280),
        _rd("ds_cnn", "ethos-u55-128", "planner", 0.35, -1.6, label="budget 0.35x"),
        _rd("ds_cnn", "ethos-u55-128", "planner", 0.399, -0.45, label="budget 0.40x"),
        _rd("ds_cnn", "ethos-u55-128", "planner via recluster", 0.398, -0.47),
        _rd("ds_cnn", "ethos-u55-128", "planner", 0.496, -0.16, label="budget 0.50x"),
        _rd("ds_cnn", "ethos-u55-128", "auto", 0.55, -0.1, max_clusters=16),
        _rd("ds_cnn", "ethos-u55-128", "fixed K", 0.59, -0.3, clusters=16, label="K=16"),
        _rd("ds_cnn", "ethos-u55-128", "fixed K", 0.47, -0.6, clusters=8, label="K=8"),
        {"model": "ds_cnn", "target": "ethos-u55-128", "series": "planner", "budget_fraction": 0.3, "error": "x"},
        _rd("ds_cnn", "ethos-u85-256", "planner", 0.43, -0.3),
        _rd("ds_cnn", "ethos-u85-256", "planner", 0.52, -0.1),
    ],
    "timing": {"ds_cnn": {"fixed_fit_s": {"16": 20.0}, "auto_s": 30.0, "door_s": 50.0}},
}


def test_rate_distortion_targets_pick_the_smallest_planner_point_within_the_loss():
    out = tables.rate_distortion_targets(RATE)
    assert out.splitlines()[2] == ("| DS-CNN-style | ethos-u55-128 | 0.398x (-0.47): met | 0.496x (-0.16): met | "
                                   "0.176x (1,280 B Vela's own) |")
    # a target missed says where the frontier stands within its ratio
    assert out.splitlines()[3] == ("| DS-CNN-style | ethos-u85-256 | 0.430x (-0.30): not met: no planner point at or "
                                   "below 0.40x | 0.520x (-0.10): not met: at or below 0.50x the least loss is 0.30 "
                                   "points (0.430x) | - |")


def test_rate_distortion_table_marks_a_budget_not_met():
    out = tables.rate_distortion_table(RATE, net="ds_cnn")
    assert "| ethos-u55-128 | planner | budget 0.30x | not met | - | - | - |" in out
    assert "| ethos-u55-128 | floor | floor | 1,760 | 0.176x | - (-) | - |" in out


def test_rate_distortion_timing_and_summary():
    assert tables.rate_distortion_timing(RATE).splitlines()[2] == \
        "| DS-CNN-style | 20.0 | 30.0 (1.50x) | 0.550x, 89.90%, largest K 16 | 0.590x, 89.70% | 50.0 |"
    assert tables.rate_distortion_summary(RATE).startswith(
        "- **Flash as the objective (DS-CNN-style; Vela's own encoder, 512 calibration images, 10,000 test images):** "
        "`recluster --weight-budget` keeps plain int8's accuracy with these multiples of its encoded weights: "
        "ethos-u55-128 0.40x within 0.5 points and 0.50x within 0.2; ethos-u85-256 0.43x")


# --------------------------------------------------------------------------- the Ethos-N78 calibration

ETHOS_N = {
    "arm": {"support_library": "6.0.0", "driver_stack": "25.03"},
    "variants": {"ETHOS_N78_1TOPS_2PLE_RATIO": {"sram_bytes": 458752, "message": "Arm's Ethos-N support library "
                                                "6.0.0 refused the network for X: Estimation failed"},
                 "ETHOS_N78_1TOPS_4PLE_RATIO": {"sram_bytes": 458752, "message": None}},
    "summary": {
        "all": {"add": {"points": 2, "max_cycles_error": 0.1, "mean_cycles_error": 0.05, "cycles_within_tolerance": 2},
                "conv 1x1": {"points": 4, "max_cycles_error": 0.2, "mean_cycles_error": 0.1,
                             "cycles_within_tolerance": 3, "max_weight_bytes_error": 0.5,
                             "mean_weight_bytes_error": 0.125, "weight_bytes_within_tolerance": 3,
                             "weight_bytes_points": 4},
                "all": {"points": 6, "max_cycles_error": 0.2, "mean_cycles_error": 0.0833, "cycles_within_tolerance": 5,
                        "max_weight_bytes_error": 0.5, "mean_weight_bytes_error": 0.125,
                        "weight_bytes_within_tolerance": 3, "weight_bytes_points": 4}},
        "ETHOS_N78_1TOPS_4PLE_RATIO": {"all": {"points": 6, "max_cycles_error": 0.2, "mean_cycles_error": 0.0833,
                                               "cycles_within_tolerance": 5, "max_weight_bytes_error": 0.5,
                                               "mean_weight_bytes_error": 0.125, "weight_bytes_within_tolerance": 3,
                                               "weight_bytes_points": 4}},
    },
}


def test_ethos_n_calibration_tables():
    assert tables.ethos_n_calibration_table(ETHOS_N) == (
        "| layer type | grid points | cycles: max error | mean | within 15% | weight bytes: max error | mean | "
        "within 5% |\n|---|---|---|---|---|---|---|---|\n"
        "| conv 1x1 | 4 | 20.0% | 10.0% | 3 of 4 | 50.0% | 12.5% | 3 of 4 |\n"
        "| add | 2 | 10.0% | 5.0% | 2 of 2 | - | - | - |\n"
        "| **all layers** | 6 | 20.0% | 8.3% | 5 of 6 | 50.0% | 12.5% | 3 of 4 |")
    assert tables.ethos_n_variants_table(ETHOS_N) == (
        "| variant | SRAM | grid points | cycles: max error | mean | within 15% | weight bytes: max error | mean | "
        "within 5% |\n|---|---|---|---|---|---|---|---|---|\n"
        "| `ETHOS_N78_1TOPS_2PLE_RATIO` | 448 KiB | 0 | Arm's library estimates nothing (\"Estimation failed\") "
        "|  |  |  |  |  |\n"
        "| `ETHOS_N78_1TOPS_4PLE_RATIO` | 448 KiB | 6 | 20.0% | 8.3% | 5 of 6 | 50.0% | 12.5% | 3 of 4 |")
    assert tables.ethos_n_calibration_verdict(ETHOS_N) == (
        "On 6 grid points (layers standing alone, 6.0.0 of Arm's support library, driver stack 25.03) the model's "
        "cycles are within 15% of Arm's on 5 (83.3%) and its weight bytes within 5% on 3 of the 4 layers with "
        "weights (75.0%); mean errors 8.3% and 12.5%. The largest: cycles conv 1x1 20.0%, add 10.0%; weight bytes "
        "conv 1x1 50.0%.")


def test_ethos_n_networks_table():
    doc = {"rows": [{"network": "net", "variant": "V", "layers": 5, "layers_compared": 4, "arm_cycles": 1000,
                     "model_cycles": 1100, "model_standalone_cycles": 2000, "arm_weight_bytes": 400,
                     "model_weight_bytes": 380}]}
    assert tables.ethos_n_networks_table(doc) == (
        "| network | variant | layers compared | Arm: cycles | model: cycles | model, layers standing alone | "
        "Arm: weight bytes | model: weight bytes |\n|---|---|---|---|---|---|---|---|\n"
        "| `net` | `V` | 4 of 5 | 1,000 | 1,100 (1.10x) | 2,000 (2.00x) | 400 | 380 (0.95x) |")


# --------------------------------------------------------------------------- the wild corpus

def test_float_tflite_table():
    doc = {"clusters": 16, "goal_points": 0.6, "rows": [
        {"model": "net", "accuracy": {"float": 0.9051, "tf_int8": 0.905, "aeq_int8": 0.9043, "aeq_k16": 0.9011},
         "points_below_tf_int8": 0.39, "within_goal": True, "encoded_weight_bytes": {"aeq_int8": 40000,
                                                                                    "aeq_k16": 22000},
         "quantize_fidelity": {"inputs": "64 held-back samples of calibration.npz", "top1_agreement": 0.984375},
         "rewrite_fidelity": {"inputs": "64 held-back samples of calibration.npz", "top1_agreement": 1.0}},
        {"model": "m", "accuracy": {"float": 0.9, "tf_int8": 0.9, "aeq_int8": 0.89, "aeq_k16": 0.88},
         "points_below_tf_int8": 2.0, "within_goal": False, "encoded_weight_bytes": {"aeq_int8": 10, "aeq_k16": 9},
         "quantize_fidelity": {"inputs": "x", "top1_agreement": None},
         "rewrite_fidelity": {"inputs": "x", "top1_agreement": 0.5}}]}
    assert tables.float_tflite_table(doc).splitlines()[2:] == [
        ("| `net` | 90.51% | 90.50% | 90.43% | 90.11% | 0.39 | yes | 40,000 -> 22,000 | 0.984 / 1.000 (64 held-back "
         "samples of calibration.npz) |"),
        "| `m` | 90.00% | 90.00% | 89.00% | 88.00% | 2.00 | NO | 10 -> 9 | - / 0.500 (x) |",
    ]


def test_wild_corpus_table():
    def out(name, kind, metric, agreement, sqnr, identical=False):
        return {"name": name, "kind": kind, "metric": metric, "agreement": agreement, "sqnr_db": sqnr,
                "identical": identical}

    doc = {"models_in_wheel": 4, "models": [
        {"model": "palm", "source": "mediapipe 0.10.21", "quantized": "ai-edge-quantizer (synthetic)",
         "rewritten": "30 tensor(s)", "fidelity": {"not_run": None, "outputs": [
             out("a", "values", "SQNR", None, 9.84), out("b|c", "detection_scores", "top-10 agreement", 0.0876, 13.43),
             out("m", "mask", "mask agreement", None, None), out("k", "values", "SQNR", None, None, identical=True)]},
         "targets": {"u55": {"npu_operators": 97, "cpu_operators": 78, "encoded_before_bytes": 887152,
                             "encoded_after_bytes": 513504, "outcome": "deployed (fits; after vs before verified)"}}},
        {"model": "selfie", "source": "mediapipe 0.10.21", "quantized": "ai-edge-quantizer (synthetic)",
         "rewritten": "no", "fidelity": {"not_run": "custom operator Convolution2DTransposeBias", "outputs": []},
         "targets": {"u55": {"npu_operators": 1, "cpu_operators": 2, "encoded_before_bytes": 10,
                             "encoded_after_bytes": 10, "outcome": "deployed"}}},
        {"model": "face", "source": "mediapipe 0.10.21", "refused": "LiteRT cannot load the model", "exit_code": 3}]}
    assert tables.wild_corpus_table(doc).splitlines()[2:] == [
        ("| `palm` | mediapipe 0.10.21 | u55 | ai-edge-quantizer (synthetic) | 30 tensor(s) | 97 / 78 | "
         "887,152 -> 513,504 | a (values): SQNR 9.8 dB; b\\|c (detection scores): top-10 agreement 0.088, SQNR 13.4 dB; "
         "m (mask): mask agreement not measurable, SQNR not measurable; k (values): identical "
         "| deployed (fits; after vs before verified) |"),
        ("| `selfie` | mediapipe 0.10.21 | u55 | ai-edge-quantizer (synthetic) | no | 1 / 2 | 10 -> 10 | "
         "not run: custom operator Convolution2DTransposeBias | deployed |"),
        "| `face` | mediapipe 0.10.21 | both | - | - | - | - | - | refused (exit 3): LiteRT cannot load the model |",
        "",
        "3 of the wheel's 4 models measured so far (`make corpus-wild` runs all).",
    ]


def test_wild_corpus_table_counts_the_wheel_apart_from_other_converters():
    row = {"model": "cnn", "source": "litert-torch 0.10.0", "quantized": "no (int8 given)", "rewritten": "2 tensor(s)",
           "fidelity": None, "targets": {"u55": {"npu_operators": 7, "cpu_operators": 0, "encoded_before_bytes": 72528,
                                                 "encoded_after_bytes": 45312, "outcome": "deployed (fits)"}}}
    wheel = {"model": "palm", "source": "mediapipe 0.10.21", "refused": "x", "exit_code": 2}
    assert tables.wild_corpus_table({"models_in_wheel": 1, "models": [wheel, row]}).splitlines()[2:] == [
        "| `palm` | mediapipe 0.10.21 | both | - | - | - | - | - | refused (exit 2): x |",
        ("| `cnn` | litert-torch 0.10.0 | u55 | no (int8 given) | 2 tensor(s) | 7 / 0 | 72,528 -> 45,312 | - "
         "| deployed (fits) |")]
    assert tables.wild_corpus_table({"models_in_wheel": 2, "models": [wheel, row]}).splitlines()[-1] == (
        "1 of the wheel's 2 models measured so far (`make corpus-wild` runs all).")


def test_results_summary_float_tflite_line():
    float_in = {"calibration_images": 512, "clusters": 16, "target": "ethos-u55-128", "goal_points": 0.6,
                "test_images": 10000, "rows": [
                    {"points_below_tf_int8": 0.21, "within_goal": True,
                     "encoded_weight_bytes": {"aeq_int8": 40000, "aeq_k16": 20000}},
                    {"points_below_tf_int8": 0.83, "within_goal": False,
                     "encoded_weight_bytes": {"aeq_int8": 10000, "aeq_k16": 6000}}]}
    lines = tables.results_summary(COMPRESSION, RESTORE, SPEED, DEPLOY, FUZZ, float_in=float_in).splitlines()
    assert lines[-2] == (
        "- **A float `.tflite` in:** deployed from its float file with 512 unlabelled calibration images "
        "(ai-edge-quantizer int8, then K = 16, ethos-u55-128), 2 Fashion-MNIST networks end 0.21-0.83 points below "
        "the TF converter's int8 model on the 10,000-image test set (goal: within 0.6, met by 1 of 2), encoded "
        "weights 0.50-0.60x of the int8 model's "
        "([float .tflite in](docs/benchmarks.md#a-float-fashion-mnist-tflite-through-ai-edge-quantizer)).")


def test_results_machines_reads_the_load_written_beside_the_machine():
    top = {"machine": {"machine": "x86_64", "cpus": 2, "python": "3.11.7"}, "load_avg_start": [8.75, 9.0],
           "load_avg_end": [8.21, 8.7]}
    lines = tables.results_machines({}, {}, {}, {}, {}, {}, {}, {}, float_in=top, wild={"machine": {}}).splitlines()
    assert lines[-2:] == [
        ("| a float .tflite through ai-edge-quantizer | `benchmarks/float_tflite_in.py` | `float_tflite_in.json` "
         "| x86_64, 2 cores, Python 3.11.7 | 8.8 to 8.2 |"),
        ("| models from the wild (MediaPipe, other converters) | `benchmarks/wild_corpus.py` | `wild_corpus.json` "
         "| ?, ? cores, Python ? | - |"),
    ]


def test_float_tflite_verdict():
    def row(tf, aeq, k, gap, within):
        return {"accuracy": {"tf_int8": tf, "aeq_int8": aeq, "aeq_k16": k}, "points_below_tf_int8": gap,
                "within_goal": within, "encoded_weight_bytes": {"aeq_int8": 100, "aeq_k16": 50}}

    doc = {"clusters": 16, "goal_points": 0.6, "rows": [row(0.9287, 0.9288, 0.9278, 0.09, True),
                                                          row(0.9134, 0.9129, 0.9115, 0.19, True)]}
    assert tables.float_tflite_verdict(doc) == (
        "On 2 networks the int8 model ai-edge-quantizer makes from the float file lies -0.01 to +0.05 points below "
        "the TF converter's int8 model, and the K = 16 rewrite costs 0.10-0.14 points more: the goal holds on all 2 "
        "with 0.41 points or more to spare, at 0.50x of the int8 model's encoded weights.")
    doc["rows"].append(row(0.9, 0.89, 0.89, 1.0, False))
    assert "the goal holds on 2 of 3 (worst 1.00 points below)" in tables.float_tflite_verdict(doc)
