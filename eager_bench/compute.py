"""How this process computes: which instruction set torch, MKL, oneDNN and numpy dispatch to, how many threads
torch uses, whether the CPU has native bf16 matrix units, and so which precision a model trains in. Recorded in
every result's provenance.

Precision policy (every trained model's `precision` key): `fp32`; `bf16` = torch.autocast to bfloat16 (matrix
products in bf16, reductions and losses in fp32, weights and optimizer state in fp32); `auto` = bf16 on CUDA and on
a CPU with native bf16 matrix instructions (AMX or AVX512_BF16), fp32 elsewhere. Without those units bf16 is
emulated and slower than fp32. Numbers made under `auto` therefore depend on the CPU, so the smoke profiles that CI
freezes pin `fp32`.

Float reductions give different last bits on different instruction sets and thread counts, so a trained model's
metric can move between machines. `alternate_kernel_env` names the settings that make THIS machine compute like a
different one (a lower instruction set for every library, another thread count): `reproduce --freeze` measures the
spread under them, and CI runs the frozen check a second time under them.
"""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, ContextManager

from eager_bench.allocator import ALLOCATOR_ENV, allocator_report, apply_allocator_policy
from eager_bench.errors import BenchError

THREADS_ENV = "EAGER_BENCH_THREADS"  # a machine setting: overrides every model's `threads` (not part of the config)
# Read by the libraries at start-up, so they only take effect in a new process.
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA",
              "NPY_DISABLE_CPU_FEATURES", "OMP_NUM_THREADS", "MKL_NUM_THREADS", THREADS_ENV, ALLOCATOR_ENV)
BF16_MATRIX_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo names of native bf16 matrix instructions


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as the kernel reports them (empty where /proc/cpuinfo is absent)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def bf16_matrix_units() -> list[str]:
    return [f for f in BF16_MATRIX_FLAGS if f in cpu_flags()]


PRECISIONS = ("auto", "fp32", "bf16")


def resolve_precision(setting: str, device: str = "cpu") -> str:
    """`fp32` or `bf16` for a model's `precision` setting on this device (see the module docstring)."""
    if setting not in PRECISIONS:
        raise BenchError(f"precision must be one of {', '.join(PRECISIONS)}, got {setting!r}")
    if setting != "auto":
        return setting
    if str(device).startswith("cuda"):
        return "bf16"
    return "bf16" if bf16_matrix_units() else "fp32"


DROPOUT_RNGS = ("auto", "torch", "bulk")


def resolve_dropout_rng(setting: str, device: str = "cpu") -> str:
    """`torch` or `bulk` dropout masks (eager_bench.fast_dropout) for a model's `dropout_rng`: auto = bulk on CPU,
    where torch draws one Bernoulli per element, and torch on CUDA, where its dropout is already cheap."""
    if setting not in DROPOUT_RNGS:
        raise BenchError(f"dropout_rng must be one of {', '.join(DROPOUT_RNGS)}, got {setting!r}")
    if setting != "auto":
        return setting
    return "torch" if str(device).startswith("cuda") else "bulk"


def autocast(precision: str, device: str = "cpu") -> ContextManager[Any]:
    """The forward pass (and loss) of a training step in `precision`; backward and optimizer step stay outside."""
    if precision == "fp32":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type="cuda" if str(device).startswith("cuda") else "cpu", dtype=torch.bfloat16)


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, which containers and taskset narrow), not the host's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def resolve_threads(configured: int) -> int:
    """Torch threads for a run: EAGER_BENCH_THREADS if set, else the model's `threads`; 0 = every usable core."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if raw:
        if not raw.isdigit():
            raise BenchError(f"{THREADS_ENV}={raw!r}: expected an integer >= 0")
        configured = int(raw)
    if configured < 0:
        raise BenchError(f"threads must be >= 0, got {configured}")
    return configured if configured > 0 else usable_cores()


def apply_threads(configured: int) -> int:
    """Set this process's torch threads (resolve_threads) and apply the allocator policy (eager_bench.allocator,
    once per process): the one call every trained model makes before it trains. Returns the threads."""
    import torch

    threads = resolve_threads(int(configured))
    torch.set_num_threads(threads)
    apply_allocator_policy()  # every model that trains comes through here
    return threads


def kernel_report() -> dict[str, Any]:
    """What provenance records: the instruction set torch dispatches to, numpy's active SIMD targets, bf16 units,
    threads, and every kernel-selecting environment variable that was set."""
    info: dict[str, Any] = {"bf16_matrix_units": bf16_matrix_units(), "usable_cores": usable_cores()}
    try:
        import torch

        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        pass
    info["numpy_simd"] = _numpy_dispatch_targets(active_only=True)
    info["env"] = {k: os.environ[k] for k in KERNEL_ENV if k in os.environ}
    info["allocator"] = allocator_report()
    return info


def _numpy_dispatch_targets(active_only: bool = False) -> list[str]:
    """numpy's runtime SIMD dispatch targets (all it was built with, or those this process runs)."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # pragma: no cover - numpy < 2
        return []
    return [t for t in __cpu_dispatch__ if not active_only or __cpu_features__.get(t)]


def alternate_kernel_env(threads: int | None = None) -> dict[str, str]:
    """Environment for a process that computes like a different machine: one instruction-set level below this
    CPU's best for torch (ATen), oneDNN and numpy, MKL's vendor-neutral code path, and `threads` torch threads
    (default: 2 where the process may use two cores, else 1). Decided from the CPU's flags, so it is the same
    whatever the caller's environment.

    MKL picks its kernels by CPU vendor: on an AMD CPU MKL_ENABLE_INSTRUCTIONS changes nothing (measured: identical
    sgemm bits for AVX512, AVX2 and SSE4_2), while an Intel CPU runs its AVX-512 kernels. MKL_CBWR=COMPATIBLE
    (MKL's conditional bitwise reproducibility, SSE2 baseline path) gives a different summation order on either,
    which is what a machine of the other vendor does to a matrix product."""
    flags = cpu_flags()
    if "avx512f" in flags:
        env = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
        npy_off = ["X86_V4", "AVX512_ICL", "AVX512_SPR", "AVX512F", "AVX512_SKX", "AVX512_CLX", "AVX512_CNL"]
    elif "avx2" in flags:
        env = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41"}
        npy_off = ["X86_V3", "AVX2", "FMA3"]
    else:  # pragma: no cover - a pre-AVX2 or non-x86 CPU: only the thread count differs
        env, npy_off = {}, []
    env["MKL_CBWR"] = "COMPATIBLE"
    targets = _numpy_dispatch_targets()
    off = [t for t in npy_off if t in targets]
    if off:
        env["NPY_DISABLE_CPU_FEATURES"] = ",".join(off)  # numpy reads commas or spaces; commas survive `env $()`
    env[THREADS_ENV] = str(threads if threads is not None else min(2, usable_cores()))
    return env
