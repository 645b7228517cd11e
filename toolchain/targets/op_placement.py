"""Where every operator of a model runs: on the NPU, on the CPU per inference, or only at start-up.

Read from Vela's output model, subgraph by subgraph. Not from Vela's stdout ("CPU operators = N")
nor its per-layer CSV: Vela 5.2 prints and writes those for the last subgraph it compiles only, so a
stateful model (whose last subgraph is its CALL_ONCE initialiser) reads "0 NPU operators" while all of
its compute runs on the NPU. An input operator is on the NPU when its subgraph of the output model
no longer holds it (Vela moved it into an ``ethos-u`` operator); Vela keeps the operators it leaves
to the CPU with their tensors, so they are matched by operator type and tensor names.

Subgraph roles: subgraph 0 runs per inference, and so does every subgraph it reaches through control
flow (WHILE, IF; counted once per invocation: trip counts are not known). A subgraph reached only
through CALL_ONCE runs once, at initialisation; one reached by nothing is another entry point, and
counted in neither.

Operators left to the CPU are told apart by what they cost there (see ``STATE_OPS``, ``PLUMBING_OPS``):
whether a model runs "mostly on the CPU" is judged by the compute work left there per inference
(MACs, or compute-operator counts for a model without MACs), never by state or plumbing operators.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ai_edge_litert import schema_py_generated as schema

from ..core.errors import ToolError
from ..tflite.graph import BuiltinOp, op_code, op_name, tensor_name
from .compile_result import CompileStatus
from .model_facts import ModelFacts, OperatorFacts
from .npu_model import VELA_CUSTOM_OP

_ETHOS_U = f"CUSTOM:{VELA_CUSTOM_OP}"  # as op_name spells it

# Resource-variable state: handles, reads and writes of a few tensors, and the one-off initialiser call.
STATE_OPS = frozenset({"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE"})
# No arithmetic worth counting: shape-only views, the int8 <-> float conversions at the edge of float
# state or float I/O, and control flow (its work is in the subgraphs it calls, counted there).
PLUMBING_OPS = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "QUANTIZE", "DEQUANTIZE", "WHILE", "IF"})


class OpKind(Enum):
    COMPUTE = "compute"
    STATE = "state"
    PLUMBING = "plumbing"


class SubgraphRole(Enum):
    PER_INFERENCE = "per_inference"  # subgraph 0 and what it reaches through control flow
    INIT = "init"  # reached only through CALL_ONCE: runs once, at start-up
    UNREFERENCED = "unreferenced"  # another entry point: counted in neither


def op_kind(op: str) -> OpKind:
    if op in STATE_OPS:
        return OpKind.STATE
    if op in PLUMBING_OPS:
        return OpKind.PLUMBING
    return OpKind.COMPUTE


@dataclass(frozen=True)
class PlacedOperator:
    index: int | None  # operator index in the input subgraph (None: added by Vela)
    op: str
    name: str  # first output tensor (or first input, for operators without outputs)
    kind: OpKind
    macs: int

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "op": self.op, "name": self.name, "kind": self.kind.value, "macs": self.macs}


@dataclass(frozen=True)
class SubgraphPlacement:
    index: int
    name: str
    role: SubgraphRole
    npu: tuple[PlacedOperator, ...]  # input operators inside the subgraph's ethos-u operators
    cpu: tuple[PlacedOperator, ...]  # operators left to the CPU
    ethos_u_operators: int  # ethos-u custom operators Vela wrote into the subgraph
    removed: tuple[PlacedOperator, ...] = ()  # gone from a subgraph without an ethos-u operator

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "role": self.role.value,
            "ethos_u_operators": self.ethos_u_operators,
            "npu_operators": len(self.npu),
            "cpu_operators": len(self.cpu),
            "cpu_compute_operators": sum(o.kind is OpKind.COMPUTE for o in self.cpu),
            "npu": [o.to_json() for o in self.npu],
            "cpu": [o.to_json() for o in self.cpu],
            "removed": [o.to_json() for o in self.removed],
        }


@dataclass(frozen=True)
class Placement:
    source: str  # "vela output model" or "analytical"
    subgraphs: tuple[SubgraphPlacement, ...]

    def _ops(self, role: SubgraphRole, where: str) -> list[PlacedOperator]:
        return [o for s in self.subgraphs if s.role is role for o in getattr(s, where)]

    @property
    def npu_operators(self) -> int:
        """Input operators on the NPU per inference."""
        return len(self._ops(SubgraphRole.PER_INFERENCE, "npu"))

    @property
    def cpu_operators(self) -> int:
        """Operators on the CPU per inference (compute, state and plumbing)."""
        return len(self._ops(SubgraphRole.PER_INFERENCE, "cpu"))

    @property
    def cpu_compute(self) -> list[PlacedOperator]:
        return [o for o in self._ops(SubgraphRole.PER_INFERENCE, "cpu") if o.kind is OpKind.COMPUTE]

    @property
    def cpu_other(self) -> list[PlacedOperator]:
        return [o for o in self._ops(SubgraphRole.PER_INFERENCE, "cpu") if o.kind is not OpKind.COMPUTE]

    @property
    def init_operators(self) -> int:
        """Operators of init-only subgraphs (wherever they run: once, at start-up)."""
        return sum(len(s.npu) + len(s.cpu) for s in self.subgraphs if s.role is SubgraphRole.INIT)

    @property
    def npu_macs(self) -> int:
        return sum(o.macs for o in self._ops(SubgraphRole.PER_INFERENCE, "npu"))

    @property
    def cpu_macs(self) -> int:
        return sum(o.macs for o in self.cpu_compute)

    def status(self) -> CompileStatus:
        """OK: nothing on the CPU per inference; MOSTLY_CPU: nothing on the NPU, or more of the compute
        work (MACs; compute operators when the model has no MACs) on the CPU than on the NPU."""
        if self.cpu_operators == 0:
            return CompileStatus.OK
        if self.npu_operators == 0:
            return CompileStatus.MOSTLY_CPU
        cpu, npu = self.cpu_macs, self.npu_macs
        if cpu + npu == 0:
            cpu = len(self.cpu_compute)
            npu = sum(o.kind is OpKind.COMPUTE for o in self._ops(SubgraphRole.PER_INFERENCE, "npu"))
        return CompileStatus.MOSTLY_CPU if cpu > npu else CompileStatus.PARTIAL_CPU

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "npu_operators": self.npu_operators,
            "cpu_operators": self.cpu_operators,
            "cpu_compute_operators": len(self.cpu_compute),
            "init_operators": self.init_operators,
            "npu_macs": self.npu_macs,
            "cpu_macs": self.cpu_macs,
            "subgraphs": [s.to_json() for s in self.subgraphs],
        }


# --------------------------------------------------------------------------- subgraph roles


def _called_subgraphs(op: schema.OperatorT) -> list[int]:
    """Subgraph indices an operator's options name (WHILE cond/body, IF then/else, CALL_ONCE init, ...)."""
    out = []
    for opts in (op.builtinOptions, getattr(op, "builtinOptions2", None)):
        if opts is None:
            continue
        for attr, value in sorted(vars(opts).items()):
            if attr.endswith("SubgraphIndex") and isinstance(value, int) and value >= 0:
                out.append(int(value))
    return out


def subgraph_roles(model: schema.ModelT) -> list[SubgraphRole]:
    n = len(model.subgraphs or [])
    per_inference: set[int] = set()
    init_roots: set[int] = set()

    def walk(start: set[int], into: set[int], collect_init: bool) -> None:
        todo = sorted(start)
        while todo:
            s = todo.pop()
            if s in into or not 0 <= s < n:
                continue
            into.add(s)
            for op in model.subgraphs[s].operators or []:
                called = _called_subgraphs(op)
                if op_code(model, op) == BuiltinOp.CALL_ONCE:
                    if collect_init:
                        init_roots.update(called)
                    else:
                        todo += called  # inside an initialiser, everything is initialisation
                else:
                    todo += called

    walk({0} if n else set(), per_inference, True)
    init: set[int] = set()
    walk(init_roots - per_inference, init, False)
    return [SubgraphRole.PER_INFERENCE if s in per_inference else SubgraphRole.INIT if s in init
            else SubgraphRole.UNREFERENCED for s in range(n)]


# --------------------------------------------------------------------------- matching


def _names(tensors: list, indices) -> tuple[str, ...]:
    return tuple(tensor_name(tensors[int(i)]) for i in (indices if indices is not None else []) if int(i) >= 0)


def _key(model: schema.ModelT, sg: schema.SubGraphT, op: schema.OperatorT) -> tuple[str, tuple[str, ...]]:
    tensors = sg.tensors or []
    outs = _names(tensors, op.outputs)
    return op_name(model, op), outs if outs else ("<in>",) + _names(tensors, op.inputs)


def _label(model: schema.ModelT, sg: schema.SubGraphT, op: schema.OperatorT) -> str:
    tensors = sg.tensors or []
    names = _names(tensors, op.outputs) or _names(tensors, op.inputs)
    return names[0] if names else ""


def _subgraph_name(sg: schema.SubGraphT, index: int) -> str:
    n = sg.name
    n = n.decode("utf-8", errors="replace") if isinstance(n, bytes) else (n or "")
    return n or f"subgraph {index}"


def _placed(facts_by_key: dict, model, s: int, o: int, sg, op) -> PlacedOperator:
    f: OperatorFacts | None = facts_by_key.get((s, o))
    name = op_name(model, op)
    return PlacedOperator(o, name, _label(model, sg, op), op_kind(name), f.macs if f is not None else 0)


def placement_from_vela(model: schema.ModelT, facts: ModelFacts, vela_model: schema.ModelT) -> Placement:
    """Per subgraph: which input operators Vela moved into ethos-u operators and which it left to the CPU."""
    subgraphs_in, subgraphs_out = model.subgraphs or [], vela_model.subgraphs or []
    if len(subgraphs_in) != len(subgraphs_out):
        raise ToolError(f"Vela's output model has {len(subgraphs_out)} subgraphs, the input model {len(subgraphs_in)}")
    roles = subgraph_roles(model)
    facts_by_key = {(f.subgraph, f.index): f for f in facts.operators}
    out = []
    for s, (sg_in, sg_out) in enumerate(zip(subgraphs_in, subgraphs_out)):
        ops_out = sg_out.operators or []
        ethos_u = sum(op_name(vela_model, op) == _ETHOS_U for op in ops_out)
        left = [op for op in ops_out if op_name(vela_model, op) != _ETHOS_U]
        waiting = Counter(_key(vela_model, sg_out, op) for op in left)
        on_cpu: dict[int, bool] = {}
        ops_in = sg_in.operators or []
        for o, op in enumerate(ops_in):  # first by type and tensor names
            k = _key(model, sg_in, op)
            if waiting[k] > 0:
                waiting[k] -= 1
                on_cpu[o] = True
        # then, for CPU operators whose tensors Vela renamed, by type in order
        by_type = Counter({k[0]: 0 for k in waiting})
        for k, n in waiting.items():
            by_type[k[0]] += n
        for o, op in enumerate(ops_in):
            name = op_name(model, op)
            if o not in on_cpu and by_type[name] > 0:
                by_type[name] -= 1
                on_cpu[o] = True
        cpu = [_placed(facts_by_key, model, s, o, sg_in, op) for o, op in enumerate(ops_in) if o in on_cpu]
        # operators Vela itself added to the CPU side
        for name, n in sorted(by_type.items()):
            cpu += [PlacedOperator(None, name, "", op_kind(name), 0)] * n
        moved = [_placed(facts_by_key, model, s, o, sg_in, op) for o, op in enumerate(ops_in) if o not in on_cpu]
        out.append(SubgraphPlacement(
            index=s, name=_subgraph_name(sg_in, s), role=roles[s],
            npu=tuple(moved) if ethos_u else (), cpu=tuple(cpu), ethos_u_operators=ethos_u,
            removed=() if ethos_u else tuple(moved),
        ))
    return Placement("vela output model", tuple(out))


def placement_analytical(model: schema.ModelT, facts: ModelFacts,
                         on_npu: Callable[[OperatorFacts], bool]) -> Placement:
    """The same accounting for an estimate: ``on_npu`` decides per operator; state operators stay on the CPU."""
    roles = subgraph_roles(model)
    out = []
    for s, sg in enumerate(model.subgraphs or []):
        npu, cpu = [], []
        for f in (f for f in facts.operators if f.subgraph == s):
            p = PlacedOperator(f.index, f.op, f.name, op_kind(f.op), f.macs)
            (npu if on_npu(f) and p.kind is not OpKind.STATE else cpu).append(p)
        out.append(SubgraphPlacement(s, _subgraph_name(sg, s), roles[s], tuple(npu), tuple(cpu),
                                     ethos_u_operators=0))
    return Placement("analytical", tuple(out))


# --------------------------------------------------------------------------- wording


def _op_list(ops: list[PlacedOperator], limit: int = 6) -> str:
    counts = Counter(o.op for o in ops)
    parts = [f"{op} x{n}" if n > 1 else op for op, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return ", ".join(parts[:limit]) + (f", +{len(parts) - limit} more" if len(parts) > limit else "")


def describe_cpu_work(p: Placement) -> str:
    """E.g. '19 operators per inference stay on the CPU (1 compute: GATHER; 18 state/plumbing: VAR_HANDLE x2, ...)'."""
    compute, other = p.cpu_compute, p.cpu_other
    parts = []
    if compute:
        parts.append(f"{len(compute)} compute: {_op_list(compute)}")
    if other:
        parts.append(f"{len(other)} state/plumbing: {_op_list(other)}")
    return f"{p.cpu_operators} of {p.cpu_operators + p.npu_operators} operators per inference run on the CPU " \
           f"({'; '.join(parts)})"


def describe_init(p: Placement) -> str | None:
    init = [s for s in p.subgraphs if s.role is SubgraphRole.INIT]
    if not init:
        return None
    names = ", ".join(f"{s.index} ({s.name})" for s in init)
    return f"{p.init_operators} operators of init subgraph(s) {names} run once at start-up (CALL_ONCE), not per inference"


def split_label(npu: int, cpu: int, init: int) -> str:
    """The model's operators as one cell: 'NPU 42 / CPU 19 (+12 init)' (per inference; init: CALL_ONCE subgraphs)."""
    return f"NPU {npu} / CPU {cpu}" + (f" (+{init} init)" if init else "")


def vela_count_label(counts: dict[str, Any] | None) -> str:
    """Vela's own count (compile.json's vela_operator_counts) as one cell: 'NPU 61 / CPU 0'; '-' without Vela.

    Vela counts its own operations (it splits some operators and adds others), for the last subgraph it
    compiles only: a model with several subgraphs says so."""
    if counts is None:
        return "-"
    return f"NPU {counts['npu']} / CPU {counts['cpu']}" + (" (last subgraph only)" if counts["last_subgraph_only"] else "")
