"""Read what Vela writes: the summary CSV, the per-layer CSV, its debug database and stdout.

Units differ between Vela's columns; everything returned here is in bytes, cycles,
seconds or Hz. Vela 5.2 (the pinned version) writes, among 52 summary columns:
memory used in KiB (``*_memory_used``, ``arena_cache_size``), bandwidths in GiB/s
(``*_bandwidth``), weights and traffic in bytes, cycles, ``core_clock`` in Hz.
A column we rely on that is missing raises ToolError: a changed Vela must be noticed.
"""
from __future__ import annotations

import csv
import io
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ToolError

KIB = 1024
GIB = 1024**3
# Vela's memory names in column prefixes, and ours (snake case, as in compile.json).
MEMORIES = ("sram", "dram", "on_chip_flash", "off_chip_flash")


@dataclass(frozen=True)
class VelaSummary:
    accelerator_configuration: str  # e.g. "Ethos_U55_128"
    system_config: str
    memory_mode: str
    core_clock_hz: int
    arena_cache_size_bytes: int
    memory_used_bytes: dict[str, int]  # sram, dram, on_chip_flash, off_chip_flash
    bandwidth_bytes_per_s: dict[str, int]
    traffic_bytes: dict[str, int]  # total bytes moved per memory in one inference
    weights_storage_area: str
    feature_map_storage_area: str
    total_original_weight_bytes: int
    total_encoded_weight_bytes: int
    macs: int
    cycles_npu: int
    cycles_total: int
    access_cycles: dict[str, int]  # cycles spent on each memory's accesses
    inference_time_s: float
    inferences_per_second: float | None  # None when Vela reports no NPU work (all on the CPU)


@dataclass(frozen=True)
class VelaLayer:
    """One row of ``<model>_per-layer.csv``: an operation as Vela scheduled it."""

    index: int
    original_op: str  # the TFLite operator it came from, e.g. "Conv2D", "Mean"
    op: str  # Vela's operation, e.g. "Conv2D", "Relu", "Passthrough" (CPU)
    on_npu: bool
    staging_bytes: int
    cycles: int
    npu_cycles: int
    access_cycles: dict[str, int]
    macs: int
    name: str  # the operation's output tensor


@dataclass(frozen=True)
class DebugOp:
    """What Vela's debug database adds per scheduled operation (same order as the per-layer CSV)."""

    name: str
    op: str
    source_operator: int | None  # operator index in its subgraph of the input model (Vela's ext_key)
    source_subgraph: int | None  # that subgraph (None when the source table does not line up with the model)
    encoded_weight_bytes: int  # weight stream bytes Vela encoded for this operation (0 if none)
    weight_format: str
    encoder_distinct_values: int | None


@dataclass(frozen=True)
class OperatorCounts:
    npu: int
    cpu: int
    cpu_fallback: tuple[tuple[str, str, str], ...]  # (operator, output tensor, Vela's reason)


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ToolError(f"cannot read Vela output {path.name}: {exc.strerror or exc}") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if not rows:
        raise ToolError(f"Vela output {path.name} is empty")
    return rows[0], rows[1:]


def _num(value: str, column: str, file: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ToolError(f"Vela output {file}: column {column} holds '{value}', expected a number") from None


def _int(value: str, column: str, file: str) -> int:
    x = _num(value, column, file)
    if not math.isfinite(x):
        return 0
    return round(x)  # x is a Python float: round() gives an int


def parse_summary_csv(path: Path) -> VelaSummary:
    header, rows = _rows(path)
    if len(rows) != 1:
        raise ToolError(f"Vela summary {path.name} has {len(rows)} data rows, expected 1")
    row = dict(zip(header, rows[0]))

    def col(name: str) -> str:
        if name not in row:
            raise ToolError(f"Vela summary {path.name} lacks column '{name}' (a different Vela version?)")
        return row[name]

    f = path.name

    def kib(name: str) -> int:
        x = _num(col(name), name, f)
        return round(x * KIB) if math.isfinite(x) else 0

    def count(name: str) -> int:
        return _int(col(name), name, f)

    ips = _num(col("inferences_per_second"), "inferences_per_second", f)
    return VelaSummary(
        accelerator_configuration=col("accelerator_configuration"),
        system_config=col("system_config"),
        memory_mode=col("memory_mode"),
        core_clock_hz=count("core_clock"),
        arena_cache_size_bytes=kib("arena_cache_size"),
        memory_used_bytes={m: kib(f"{m}_memory_used") for m in MEMORIES},
        bandwidth_bytes_per_s={m: round(_num(col(f"{m}_bandwidth"), m, f) * GIB) for m in MEMORIES},
        traffic_bytes={m: count(f"{m}_total_bytes") for m in MEMORIES},
        weights_storage_area=col("weights_storage_area"),
        feature_map_storage_area=col("feature_map_storage_area"),
        total_original_weight_bytes=count("total_original_weights"),
        total_encoded_weight_bytes=count("total_npu_encoded_weights"),
        macs=count("nn_macs"),
        cycles_npu=count("cycles_npu"),
        cycles_total=count("cycles_total"),
        access_cycles={m: count(f"cycles_{m}_access") for m in MEMORIES},
        inference_time_s=_num(col("inference_time"), "inference_time", f),
        inferences_per_second=ips if math.isfinite(ips) else None,
    )


# per-layer CSV column -> our memory name
_LAYER_ACCESS = {"SRAM AC": "sram", "DRAM AC": "dram", "OnFlash AC": "on_chip_flash", "OffFlash AC": "off_chip_flash"}
_LAYER_COLUMNS = ("Original Operator", "NNG Operator", "Target", "Staging Usage", "Op Cycles", "NPU", "MAC Count", "Name")


def parse_per_layer_csv(path: Path) -> list[VelaLayer]:
    header, rows = _rows(path)
    missing = [c for c in _LAYER_COLUMNS + tuple(_LAYER_ACCESS) if c not in header]
    if missing:
        raise ToolError(f"Vela per-layer CSV {path.name} lacks columns {missing} (a different Vela version?)")
    idx = {c: header.index(c) for c in header}
    name_at = idx["Name"]
    layers = []
    f = path.name
    for i, r in enumerate(rows):
        # Vela writes the CSV with a bare join: a tensor name holding commas spills into extra fields.
        if len(r) < len(header):
            raise ToolError(f"Vela per-layer CSV {f} row {i + 1} has {len(r)} fields, expected {len(header)}")
        extra = len(r) - len(header)
        name = ",".join(r[name_at : name_at + extra + 1]) if name_at == len(header) - 1 else r[name_at]
        layers.append(
            VelaLayer(
                index=i,
                original_op=r[idx["Original Operator"]],
                op=r[idx["NNG Operator"]],
                on_npu=r[idx["Target"]].strip().upper() == "NPU",
                staging_bytes=_int(r[idx["Staging Usage"]], "Staging Usage", f),
                cycles=_int(r[idx["Op Cycles"]], "Op Cycles", f),
                npu_cycles=_int(r[idx["NPU"]], "NPU", f),
                access_cycles={m: _int(r[idx[c]], c, f) for c, m in _LAYER_ACCESS.items()},
                macs=_int(r[idx["MAC Count"]], "MAC Count", f),
                name=name,
            )
        )
    return layers


def _debug_tables(path: Path) -> dict[str, tuple[list[str], list[list[str]]]]:
    try:
        root = ET.fromstring(path.read_bytes())
    except (OSError, ET.ParseError) as exc:
        raise ToolError(f"cannot read Vela debug database {path.name}: {exc}") from None
    tables = {}
    for table in root.iter("table"):
        rows = [r for r in csv.reader(io.StringIO((table.text or "").strip("\n"))) if r]
        if rows:
            tables[table.get("name", "")] = (rows[0], rows[1:])
    return tables


def _source_subgraphs(src_h: list[str], src_rows: list[list[str]], subgraph_sizes: tuple[int, ...]) -> dict[str, int]:
    """Source id -> input subgraph. Vela lists every input operator, subgraph after subgraph, with its index
    in its subgraph as ext_key; anything that does not line up maps nothing."""
    if "id" not in src_h or "ext_key" not in src_h:
        return {}
    where = [(s, i) for s, n in enumerate(subgraph_sizes) for i in range(n)]
    if len(src_rows) != len(where):
        return {}
    out = {}
    for r, (s, i) in zip(src_rows, where):
        if r[src_h.index("ext_key")] != str(i):
            return {}
        out[r[src_h.index("id")]] = s
    return out


def parse_debug_db(path: Path, subgraph_sizes: tuple[int, ...] = ()) -> list[DebugOp]:
    """Per-operation weight figures from ``<model>_debug.xml`` (``--enable-debug-db``).

    ``subgraph_sizes`` (operators per subgraph of the input model) attributes each operation to its subgraph.
    """
    tables = _debug_tables(path)
    if "perf" not in tables:
        return []
    perf_h, perf_rows = tables["perf"]
    dbg_h, dbg_rows = tables.get("perf_debug", ([], []))
    src_h, src_rows = tables.get("source", ([], []))
    need = ("id", "source_id", "operator", "name")
    if any(c not in perf_h for c in need):
        raise ToolError(f"Vela debug database {path.name}: table perf lacks one of {need}")
    debug_by_id = {r[dbg_h.index("id")]: dict(zip(dbg_h, r)) for r in dbg_rows} if "id" in dbg_h else {}
    ext_key = {}
    if "id" in src_h and "ext_key" in src_h:
        ext_key = {r[src_h.index("id")]: r[src_h.index("ext_key")] for r in src_rows}
    subgraph_of = _source_subgraphs(src_h, src_rows, subgraph_sizes)
    out = []
    for r in perf_rows:
        d = dict(zip(perf_h, r))
        dbg = debug_by_id.get(d["id"], {})
        key = ext_key.get(d["source_id"], "")
        distinct = dbg.get("weight_distinct", "")
        out.append(
            DebugOp(
                name=d["name"],
                op=d["operator"],
                source_operator=int(key) if key.lstrip("-").isdigit() and int(key) >= 0 else None,
                source_subgraph=subgraph_of.get(d["source_id"]),
                encoded_weight_bytes=int(dbg.get("weight_total_bytes") or 0),
                weight_format=dbg.get("weight_format", ""),
                encoder_distinct_values=int(distinct) if distinct.isdigit() else None,
            )
        )
    return out


_COUNT_RE = re.compile(r"^(CPU|NPU) operators = (\d+)", re.MULTILINE)
_FALLBACK_RE = re.compile(
    r"^Warning \(supported operators\) operator: (?P<op>[A-Z0-9_]+), ofm: '(?P<name>.*)'\n(?:Reason: (?P<reason>[^\n]*))?",
    re.MULTILINE,
)


def parse_operator_counts(stdout: str) -> OperatorCounts:
    """Vela's NPU/CPU split is only in its stdout ("CPU operators = N (x%)")."""
    counts = {k: int(v) for k, v in _COUNT_RE.findall(stdout)}
    if "CPU" not in counts or "NPU" not in counts:
        raise ToolError("Vela's output lacks the 'CPU operators = N' / 'NPU operators = N' lines (a different Vela version?)")
    fallback = tuple(
        (m.group("op"), m.group("name"), (m.group("reason") or "").strip()) for m in _FALLBACK_RE.finditer(stdout)
    )
    return OperatorCounts(npu=counts["NPU"], cpu=counts["CPU"], cpu_fallback=fallback)
