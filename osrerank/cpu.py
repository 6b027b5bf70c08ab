"""What this CPU can do fast: its model name and the instruction-set flags reduced precision depends on.

Nothing is assumed: bf16 is only worth running where the CPU has bf16 dot products (AVX512-BF16 or AMX);
elsewhere OpenVINO would quietly compute in f32 and the mode would be a lie. ``OSRERANK_CPU_FLAGS``
(comma-separated) replaces the detected flags, to pin a choice or to test what a smaller CPU does.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from .config.environment import get

__all__ = ["RELEVANT_FLAGS", "CpuInfo", "cpu_info"]

RELEVANT_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


@dataclass(frozen=True)
class CpuInfo:
    model: str
    flags: frozenset[str]
    cores: int

    @property
    def bf16(self) -> bool:
        """Native bf16 matrix products (AVX512-BF16 or AMX-BF16)."""
        return bool({"avx512_bf16", "amx_bf16"} & self.flags)

    @property
    def amx(self) -> bool:
        return "amx_tile" in self.flags

    def flags_shown(self) -> str:
        """The flags that matter this CPU has, comma-separated: what a benchmark's header names its CPU by."""
        return ", ".join(f for f in RELEVANT_FLAGS if f in self.flags) or "none of them"

    def shown(self) -> dict[str, object]:
        """For benchmark output and logs: the model and which of the flags that matter it has."""
        return {"model": self.model, "cores": self.cores, "flags": {f: f in self.flags for f in RELEVANT_FLAGS}}


def cpu_info() -> CpuInfo:
    cores = os.cpu_count() or 1
    model, flags = platform.processor() or platform.machine(), frozenset[str]()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = frozenset(value.split())
    override = get("OSRERANK_CPU_FLAGS", keep_empty=True)
    if override is not None:
        flags = frozenset(f.strip() for f in override.split(",") if f.strip())
    return CpuInfo(model or "unknown", flags, cores)
