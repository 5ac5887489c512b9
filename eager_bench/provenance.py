"""Where a number came from: code version, package versions, hardware."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from eager_bench.compute import kernel_report

TRACKED_PACKAGES = ("eager-bench", "torch", "numpy", "scipy", "pandas", "recbole", "sentence-transformers",
                    "transformers", "scikit-learn", "ray")
REPO_ROOT = Path(__file__).resolve().parent.parent


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state() -> dict[str, Any]:
    commit = _git("rev-parse", "HEAD")
    if commit is None and os.environ.get("EAGER_BENCH_GIT_COMMIT"):
        # A copy of the tree without .git (a remote GPU box, an unpacked sdist): the launcher states the commit.
        return {"git_commit": os.environ["EAGER_BENCH_GIT_COMMIT"], "git_dirty": None, "git_source": "environment"}
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit or "unknown", "git_dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str]:
    found = {}
    for name in TRACKED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def hardware(device: str = "cpu") -> dict[str, Any]:
    info: dict[str, Any] = {"machine": platform.machine(), "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
                            "python": platform.python_version(), "platform": platform.platform(), "device": device}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["kernels"] = kernel_report()
        if device.startswith("cuda") and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def measurement_context(device: str = "cpu") -> dict[str, Any]:
    """Where and when a measurement outside the runner (a benchmark, a code-quality report) was taken.

    The 1-minute load average is kept because this machine is shared: a timing taken under load is not comparable
    with one taken on a quiet machine.
    """
    return {"created": now_iso(), **git_state(), "packages": package_versions(), "hardware": hardware(device),
            "load_avg_1min": round(os.getloadavg()[0], 2)}
