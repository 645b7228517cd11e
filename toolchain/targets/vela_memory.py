"""How much memory Vela may take for a model, enforced on its process (RLIMIT_AS).

A few-KB model can declare gigabytes of activations; Vela never allocates activations
(MobileNetV2 int8, 10 MiB of tensors, peaks at 67 MiB RSS and compiles within a 400 MiB
address space), but on absurd shapes its scheduler grows without bound: a 3.4 KB model
declaring 1 GiB of activations reached 14 GB in 90 s. So Vela's child process gets an
address-space limit of ``BASE + PER_DECLARED_BYTE x`` the bytes the model's tensors
declare, at most half of this machine's memory (``TOOLCHAIN_VELA_MEMORY_MIB`` sets that
share instead, e.g. on a shared CI runner). A model whose declared tensors alone ask for
more than that share is refused before Vela starts; Vela hitting its limit is reported
as such (exit 3), not as a crash.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ai_edge_litert import schema_py_generated as schema

from ..core.errors import ConfigError, InputError
from ..core.escape import terminal_text
from ..tflite.graph import NUMPY_DTYPES

MIB = 1 << 20
BASE_BYTES = 1 << 30  # Python, numpy and Vela's C++ core, with room for large graphs
PER_DECLARED_BYTE = 4  # generous for real models (far below 1x); absurd shapes grow without bound, so cap them
MEMORY_ENV = "TOOLCHAIN_VELA_MEMORY_MIB"
MAX_SETTING_MIB = 1 << 30  # 1 PiB
_MIB_SETTING = re.compile(r"[0-9]{1,10}")
# What running out of address space looks like in Vela's output (Python, C++, the dynamic loader, OpenBLAS).
_OUT_OF_MEMORY = re.compile(r"MemoryError|std::bad_alloc|Unable to allocate|Cannot allocate memory|"
                            r"failed to map segment|Memory allocation still failed")


def _mib(n: int) -> str:
    return f"{n / MIB:,.1f} MiB" if n >= MIB else f"{n / 1024:,.1f} KiB"


def declared_tensor_bytes(model: schema.ModelT) -> int:
    """Bytes of every tensor of every subgraph as its shape and type declare them (4 bytes per unknown type)."""
    total = 0
    for sg in model.subgraphs or []:
        for t in sg.tensors or []:
            dtype = NUMPY_DTYPES.get(int(t.type))
            shape = [max(int(d), 0) for d in (t.shape if t.shape is not None else [])]
            total += math.prod(shape) * (dtype.itemsize if dtype is not None else 4)
    return total


def _cgroup_limit() -> int | None:
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def machine_share_bytes() -> int:
    """The memory Vela may use at most on this machine: half of it (or of the container's limit), or the env setting."""
    setting = os.environ.get(MEMORY_ENV)
    if setting is not None:
        # ASCII digits only, and few of them: str.isdigit() also takes '¹²⁸', which int() refuses, and int()
        # refuses more than 4,300 digits
        if not _MIB_SETTING.fullmatch(setting) or not 64 <= int(setting) <= MAX_SETTING_MIB:
            raise ConfigError(f"{MEMORY_ENV} must be a whole number of MiB from 64 to {MAX_SETTING_MIB:,}, "
                              f"got {terminal_text(setting, 40)!r}")
        return int(setting) * MIB
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cgroup = _cgroup_limit()
    return min(physical, cgroup) // 2 if cgroup else physical // 2


@dataclass(frozen=True)
class VelaMemory:
    declared_bytes: int
    limit_bytes: int
    share_bytes: int

    def apply(self) -> None:
        """In Vela's child process, before it starts (subprocess preexec_fn)."""
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (self.limit_bytes, self.limit_bytes))

    def exhausted_message(self, model: str, target: str) -> str:
        return (f"Vela ran out of the {self.limit_bytes // MIB:,} MiB it was allowed compiling {model} for {target} "
                f"(the model declares {_mib(self.declared_bytes)} of tensors; {MEMORY_ENV} sets the share of "
                "this machine Vela may use)")


def vela_memory(model: schema.ModelT, model_name: str) -> VelaMemory:
    """The limit for compiling ``model``; InputError when its declared tensors alone exceed this machine's share."""
    declared = declared_tensor_bytes(model)
    share = machine_share_bytes()
    if PER_DECLARED_BYTE * declared > share:
        raise InputError(
            f"{model_name} declares {_mib(declared)} of tensors: compiling it could take Vela up to "
            f"{_mib(PER_DECLARED_BYTE * declared)}, more than the {share // MIB:,} MiB it may use here "
            f"(half of this machine's memory, or {MEMORY_ENV}); check the model's tensor shapes"
        )
    return VelaMemory(declared, min(share, BASE_BYTES + PER_DECLARED_BYTE * declared), share)


def base_vela_memory() -> VelaMemory:
    """The limit when no model facts are at hand: the base, within this machine's share."""
    share = machine_share_bytes()
    return VelaMemory(0, min(share, BASE_BYTES), share)


def ran_out_of_memory(output: str, returncode: int) -> bool:
    """Vela failed for lack of address space (a Python MemoryError, a C++ bad_alloc, a failed mmap)."""
    return returncode != 0 and _OUT_OF_MEMORY.search(output) is not None
