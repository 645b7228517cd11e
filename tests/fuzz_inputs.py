"""Fuzzing what is not model bytes: names inside a model, paths on the command line, profiles and configs.

Each case is a deterministic function of (family, case seed), run in-process under a time limit:

* ``names``: every tensor name and one custom operator code of a real model replaced by hostile or random
  text; checked through the reader, inspect's table (terminal), palettise's C sources (directives, comment
  and string syntax; every ``C_COMPILE_EVERY``-th case compiled with gcc), and the placeholder round trip
  that keeps names away from Vela.
* ``paths``: a verb (inspect, recluster, palettise, compile for the analytical Ethos-N78) run through the real
  CLI with inputs and outputs drawn from a pool of hostile paths (FIFOs, /dev/null, /proc, links to the
  input, hard links, dangling links, directories, 250-byte and control-character names); the inputs must
  be byte-identical afterwards, no FIFO or device replaced, a refusal one ``error:`` line, nothing hangs.
* ``profiles`` / ``configs``: a real hardware profile, or a deploy/recluster config, with one to three
  values replaced by hostile ones (NaN, infinities, 1e-300, 1e9 as a float, huge integers, strings with
  newlines, deep nesting, wrong types), written as TOML or JSON and loaded; a profile that loads must
  render and print finite, printable text.

A case ends ``ok``, in a typed toolchain error (its class name), or as a finding (anything else).
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import random
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAMILIES = ("names", "paths", "profiles", "configs")
C_COMPILE_EVERY = 25
HOSTILE_TEXT = (
    "X */ int injected = 1; /*", "a\n#include \"/etc/passwd\"\n", "/*", "*/", "??/", "??=", "\\", '"', "]]>", "&", "<",
    "| a | b |", "\n# Heading\n", "<script>x</script>", "\x1b]0;pwned\x07", "\x1b[2J", "\r\nerror: forged", "\u202e",
    "\x00", "\t", "é✓", "a_b", "a.b", "a_b_2", ",", "'", "\x7f", "\u2028", "x" * 3000, "\ud800",
)
HUGE_INT = "@HUGE_INT@"  # written as a 5,000-digit integer (past Python's int() digit limit) by _write_doc
HOSTILE_VALUES: tuple[Any, ...] = (
    math.nan, math.inf, -math.inf, 1e-300, 1e-320, 1e300, 0, -1, 0.0, 1e9, 1.5, 2**63, -(2**63), 10**30, True, "",
    "x\n", "name\n", "\x1b[2J", [], {}, [1, 2], "1e9", HUGE_INT,
)
DIRECTIVE = re.compile(r"#(include [\"<][A-Za-z0-9_.-]+[\">]|define [A-Za-z_]\w*( .*)?|ifndef \w+|ifdef __cplusplus|"
                       r"endif( /\* .* \*/)?|if !defined\(__GNUC__\).*|error \".*\")")


@dataclass(frozen=True)
class InputCase:
    family: str
    case_seed: int


@dataclass(frozen=True)
class InputResult:
    case: InputCase
    outcome: str  # "ok", a ToolchainError class name, or a finding: "unexpected:...", "hang", "violation:..."
    time_s: float
    detail: str = ""

    @property
    def finding(self) -> bool:
        return self.outcome.startswith(("unexpected", "hang", "violation"))


class Violation(Exception):
    """A sink or a path broke its promise (an injected directive, a control character, a replaced FIFO...)."""


def hostile_text(rng: random.Random) -> str:
    pick = rng.random()
    if pick < 0.5:
        return rng.choice(HOSTILE_TEXT) + "".join(chr(rng.randrange(0x20, 0x7F)) for _ in range(rng.randrange(4)))
    if pick < 0.8:
        return "".join(chr(rng.choice((rng.randrange(0, 0x80), rng.randrange(0x80, 0x3000)))) for _ in range(rng.randrange(12)))
    return "".join(rng.choice(HOSTILE_TEXT) for _ in range(3))


def _printable(text: str, what: str) -> None:
    bad = sorted({repr(ch) for ch in text if not ch.isprintable() and ch not in "\n"})
    if bad:
        raise Violation(f"control characters in {what}: {bad[:5]}")


# --------------------------------------------------------------------------- names


def _names_case(rng: random.Random, seeds: dict[str, bytes], scratch: Path, case_seed: int) -> None:
    import fuzz_mutators as fm

    from toolchain.palettes.c_source import emit_palette_sources
    from toolchain.palettes.table import PalettiseConfig, build_palette_set
    from toolchain.rewrite.inspect import format_table, inspect_model
    from toolchain.targets.vela_names import model_for_vela, restore_names
    from toolchain.tflite.graph import tensor_name
    from toolchain.tflite.model_io import read_model

    pool = [hostile_text(rng) for _ in range(rng.randrange(1, 5))]

    def edit(m):
        for t in m.subgraphs[0].tensors:
            t.name = rng.choice(pool).encode("utf-8", "surrogatepass")
    data = fm.edited_model(seeds["reclustered"], edit)
    if rng.random() < 0.3:
        data = fm.custom_op(data, hostile_text(rng).encode("utf-8", "surrogatepass"))
    model = read_model(data)
    _printable(format_table(inspect_model(data)), "inspect's table")
    pset = build_palette_set(data, PalettiseConfig(tflm=False))
    header, source = emit_palette_sources(pset.tables, "palettes.h", "palette", "fuzz")
    for line in (header + source).splitlines():
        if line.lstrip().startswith("#") and not DIRECTIVE.fullmatch(line.strip()):
            raise Violation(f"a name added a directive: {line[:120]!r}")
    if case_seed % C_COMPILE_EVERY == 0 and shutil.which("gcc"):
        (scratch / "palettes.h").write_text(header)
        (scratch / "palettes.c").write_text(source)
        proc = subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-fsyntax-only",
                               str(scratch / "palettes.c")], capture_output=True, text=True)
        if proc.returncode:
            raise Violation(f"palettes.c does not compile: {proc.stderr[-300:]}")
    safe, names = model_for_vela(data)
    back = read_model(restore_names(safe, names))
    if [tensor_name(t) for t in back.subgraphs[0].tensors] != [tensor_name(t) for t in model.subgraphs[0].tensors]:
        raise Violation("names did not survive the round trip through Vela's placeholders")


# --------------------------------------------------------------------------- paths


def _path_pool(d: Path, model: Path) -> dict[str, str]:
    os.mkfifo(d / "fifo.tflite")
    (d / "dir.tflite").mkdir()
    (d / "dangling.tflite").symlink_to(d / "nowhere")
    (d / "link.tflite").symlink_to(model)
    (d / "zero.tflite").symlink_to("/dev/zero")
    os.link(model, d / "hard.tflite")
    (d / "other.tflite").write_bytes(b"not ours to keep, but a regular file")
    return {
        "model": model.name, "./model": f"./{model.name}", "sub/../model": f"sub/../{model.name}", "link": "link.tflite",
        "hard": "hard.tflite", "fifo": "fifo.tflite", "dir": "dir.tflite", "dangling": "dangling.tflite",
        "zero": "zero.tflite", "devnull": "/dev/null", "proc": "/proc/toolchain.tflite", "sys": "/sys/x.tflite",
        "new": "new.tflite", "other": "other.tflite", "long": "a" * 245 + ".tflite", "toolong": "a" * 260 + ".tflite",
        "control": "n\x1b[2Jame\n.tflite", "missing-dir": "missing/dir/out.tflite", "blocked": "other.tflite/x.tflite",
    }


def _paths_case(rng: random.Random, seeds: dict[str, bytes], scratch: Path, case_seed: int) -> str:
    from toolchain.cli import main

    d = Path(tempfile.mkdtemp(dir=scratch))
    (d / "sub").mkdir()
    model = d / "model.tflite"
    model.write_bytes(seeds["reclustered"])
    pool = _path_pool(d, model)
    choice = lambda: pool[rng.choice(sorted(pool))]
    inp = rng.choice([pool["model"], pool["./model"], pool["link"], pool["hard"], choice()])
    verb = rng.choice(("inspect", "recluster", "palettise", "compile"))
    argv = {
        "inspect": ["inspect", inp],
        "recluster": ["recluster", inp, "-o", choice(), "--no-verify", "-k", "8"]
        + (["--report", choice()] if rng.random() < 0.4 else []),
        "palettise": ["palettise", inp, "-o", rng.choice(("out", ".", choice())), "--no-tflm"],
        "compile": ["compile", inp, "--target", "ethos-n78-1tops-4ple", "-o", rng.choice(("out", choice()))],
    }[verb]
    before = {p: p.read_bytes() for p in (model, d / "other.tflite")}
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(d)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as exc:  # argparse
                rc = int(exc.code or 0)
    finally:
        os.chdir(cwd)
    _printable(out.getvalue() + err.getvalue(), f"the output of {argv[:2]}")
    if rc not in (0, 2):
        raise Violation(f"exit {rc} from {argv!r}: {err.getvalue()[-300:]}")
    if rc == 2 and not (len(err.getvalue().splitlines()) == 1 and err.getvalue().startswith("error: ")):
        raise Violation(f"not one error line: {err.getvalue()[-300:]!r}")
    if model.read_bytes() != before[model]:
        raise Violation(f"the input changed: {argv!r}")
    if not stat.S_ISFIFO(os.stat(d / "fifo.tflite").st_mode) or not stat.S_ISCHR(os.stat("/dev/null").st_mode):
        raise Violation(f"a FIFO or a device was replaced: {argv!r}")
    if rc == 0 and "is the input" in err.getvalue():
        raise Violation("refused and succeeded")
    if verb == "recluster" and rc == 0 and argv[3] in (pool["model"], pool["link"], pool["hard"]):
        raise Violation(f"wrote over its input: {argv!r}")
    return "ok" if rc == 0 else "refused (exit 2)"


# --------------------------------------------------------------------------- profiles and configs


def _leaves(obj: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _leaves(v, path + (k,))] or [path]
    return [path]


def _set(obj: dict, path: tuple, value: Any) -> None:
    for k in path[:-1]:
        obj = obj[k]
    obj[path[-1]] = value


def _toml(obj: dict, prefix: str = "") -> str:
    """A small TOML writer: enough for profiles and configs (tables, scalars, arrays of scalars)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
        if isinstance(v, int):
            return str(v) if -(2**63) <= v < 2**63 else f'"{v}"'
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return "{}"
    lines = [f"{json.dumps(k)} = {value(v)}" for k, v in obj.items() if not isinstance(v, dict) or not v]
    for k, v in obj.items():
        if isinstance(v, dict) and v:
            name = f"{prefix}.{json.dumps(k)}" if prefix else json.dumps(k)
            lines += ["", f"[{name}]", _toml(v, name)]
    return "\n".join(lines) + "\n"


def _mutated(rng: random.Random, base: dict) -> dict:
    doc = json.loads(json.dumps(base))
    for _ in range(rng.randrange(1, 4)):
        path = rng.choice(_leaves(doc))
        if not path:
            continue
        kind = rng.random()
        if kind < 0.7:
            _set(doc, path, rng.choice(HOSTILE_VALUES + (hostile_text(rng),)))
        elif kind < 0.8:
            nested: Any = 1
            for _ in range(rng.choice((40, 3000))):
                nested = [nested]
            _set(doc, path, nested)
        elif kind < 0.9:
            _set(doc, path[:-1] + (hostile_text(rng) or "k",), 1)
        else:
            parent = doc
            for k in path[:-1]:
                parent = parent[k]
            parent.pop(path[-1], None)
    return doc


def _write_doc(rng: random.Random, d: Path, doc: dict, stem: str) -> Path:
    huge = (json.dumps(HUGE_INT), "1" * 5000)
    if rng.random() < 0.5:
        path = d / f"{stem}.json"
        try:
            path.write_text(json.dumps(doc, allow_nan=True).replace(*huge))
        except (RecursionError, ValueError):
            path.write_text("[" * 5000 + "]" * 5000)
    else:
        path = d / f"{stem}.toml"
        try:
            path.write_text(_toml(doc).replace(*huge), encoding="utf-8", errors="surrogatepass")
        except RecursionError:
            path.write_text("a = " + "[" * 5000 + "]" * 5000)
    return path


PROFILE_BASES = (
    {"schema_version": 1, "name": "board", "base": "ethos-u55-128", "description": "a board",
     "system": {"core_clock_hz": 250_000_000, "axi0_port": "Sram", "axi1_port": "OffChipFlash",
                "Sram": {"clock_scale": 1.0, "burst_length_bytes": 32, "read_latency_cycles": 32},
                "OffChipFlash": {"bandwidth_bytes_per_s": 1e8, "read_latency_cycles": 64}},
     "budget": {"sram_bytes": 1 << 20, "flash_bytes": 4 << 20}},
    {"schema_version": 1, "name": "n78", "accelerator": "ethos-n78-1tops-4ple", "palette_limit": 32,
     "budget": {"sram_bytes": 1 << 20, "flash_bytes": 4 << 20},
     "ethos_n": {"clock_hz": 1_000_000_000}},
    {"schema_version": 1, "name": "u65", "accelerator": "ethos-u65-256", "system_config": "Ethos_U65_High_End",
     "memory_mode": {"const_mem_area": "Axi1", "arena_mem_area": "Axi1", "cache_mem_area": "Axi0",
                     "arena_cache_size_bytes": 262144}, "palette_limit": 16,
     "budget": {"sram_bytes": 1 << 20, "flash_bytes": 4 << 20}},
)
CONFIG_BASES = (
    {"schema_version": 1, "data": {"train_samples": 64, "test_samples": 20, "seed": 3},
     "recluster": {"clusters": 8, "min_weights": 16, "rules": [{"pattern": "*fc*", "clusters": 4}]},
     "verify": {"samples": 8, "min_top1_agreement": 0.9}, "palettise": {"bits": 3, "exclude": ["a*"], "tflm": False},
     "compile": {"enforce_budget": True, "allow_cpu": False, "timeout_s": 60},
     "firmware": {"section": "network_model_sec", "arena_margin_percent": 10, "arena_overhead_bytes": 4096}},
)


def _profiles_case(rng: random.Random, seeds: dict[str, bytes], scratch: Path, case_seed: int) -> None:
    from toolchain.commands.profiles import format_details
    from toolchain.targets.profiles import load_profile

    path = _write_doc(rng, Path(tempfile.mkdtemp(dir=scratch)), _mutated(rng, rng.choice(PROFILE_BASES)), "board")
    p = load_profile(path)
    _printable(format_details(p, True), "profiles' details")
    numbers = [v for v in json.loads(json.dumps(p.to_dict(), default=str)).values() if isinstance(v, float)]
    if not all(math.isfinite(v) for v in numbers):
        raise Violation(f"a profile with a non-finite number loaded: {p.to_dict()}")


def _configs_case(rng: random.Random, seeds: dict[str, bytes], scratch: Path, case_seed: int) -> None:
    from toolchain.pipeline.config import load_pipeline_config
    from toolchain.rewrite.config_file import load_recluster_config

    doc = _mutated(rng, rng.choice(CONFIG_BASES))
    d = Path(tempfile.mkdtemp(dir=scratch))
    if rng.random() < 0.5:
        c = load_pipeline_config(_write_doc(rng, d, doc, "deploy"), None)
        values = [c.verify.min_top1_agreement, c.compile.timeout_s, c.data.seed]
    else:
        c = load_recluster_config(_write_doc(rng, d, doc.get("recluster", doc), "recluster"))
        values = [c.clusters, c.min_weights]
    if not all(v is None or (type(v) in (int, float) and math.isfinite(v)) for v in values):
        raise Violation(f"a config with a bad number loaded: {values}")


CASE_RUNNERS: dict[str, Callable] = {"names": _names_case, "paths": _paths_case, "profiles": _profiles_case,
                                     "configs": _configs_case}


# --------------------------------------------------------------------------- running


@contextlib.contextmanager
def time_limit(seconds: float):
    """SIGALRM after ``seconds``; an outer timer (pytest-timeout's) is put back with its remaining time."""
    import signal

    def on_alarm(signum, frame):
        raise TimeoutError(f"case took over {seconds} s")

    outer_delay, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    old = signal.signal(signal.SIGALRM, on_alarm)
    start = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if outer_delay > 0:
            signal.setitimer(signal.ITIMER_REAL, max(outer_delay - (time.monotonic() - start), 1e-3), outer_interval)


def run_input_case(case: InputCase, seeds: dict[str, bytes], scratch: Path, timeout_s: float = 20.0) -> InputResult:
    from toolchain.core.errors import ToolchainError

    rng = random.Random(f"{case.family}:{case.case_seed}")
    t0 = time.perf_counter()
    try:
        with time_limit(timeout_s):
            outcome = CASE_RUNNERS[case.family](rng, seeds, scratch, case.case_seed) or "ok"
        detail = ""
    except ToolchainError as exc:
        outcome, detail = type(exc).__name__, str(exc)[:200]  # the CLI prints it as one escaped line
    except TimeoutError as exc:
        outcome, detail = "hang", str(exc)
    except Violation as exc:
        outcome, detail = "violation", str(exc)[:500]
    except Exception as exc:  # noqa: BLE001  any other type is the finding: the user would see "internal error"
        import traceback

        outcome, detail = f"unexpected:{type(exc).__name__}", traceback.format_exc()[-1500:]
    return InputResult(case, outcome, time.perf_counter() - t0, detail)


def input_seeds(dense_int8: bytes) -> dict[str, bytes]:
    from toolchain.rewrite.config import ReclusterConfig
    from toolchain.rewrite.recluster import recluster_model

    return {"reclustered": recluster_model(dense_int8, ReclusterConfig(clusters=8))[0]}


def run_input_cases(count: int, seeds: dict[str, bytes], first_seed: int = 0, deadline_s: float | None = None,
                    families: tuple[str, ...] = FAMILIES,
                    on_result: Callable[[int], None] | None = None) -> list[InputResult]:
    results = []
    t_end = None if deadline_s is None else time.monotonic() + deadline_s
    with tempfile.TemporaryDirectory(prefix="fuzz-inputs-") as tmp:
        for i in range(count):
            if t_end is not None and time.monotonic() > t_end:
                break
            case = InputCase(families[i % len(families)], first_seed + i)
            results.append(run_input_case(case, seeds, Path(tmp)))
            if on_result is not None:
                on_result(len(results))
    return results


def summarise_inputs(results: list[InputResult], elapsed_s: float) -> dict:
    slow = max(results, key=lambda r: r.time_s)
    return {
        "cases": len(results),
        "by_family": dict(sorted(Counter(r.case.family for r in results).items())),
        "outcomes": dict(sorted(Counter(r.outcome for r in results).items())),
        "findings": [{"family": r.case.family, "case_seed": r.case.case_seed, "outcome": r.outcome, "detail": r.detail}
                     for r in results if r.finding],
        "slowest_case": {"family": slow.case.family, "case_seed": slow.case.case_seed, "time_s": round(slow.time_s, 4),
                         "outcome": slow.outcome},
        "elapsed_s": round(elapsed_s, 2),
    }
