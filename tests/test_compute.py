"""Threads and kernel switches: the machine setting overrides the model's `threads`, the alternate environment really
sends a new process down a lower instruction set, and no command prints a warning on a clean install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eager_bench.compute import (KERNEL_ENV, THREADS_ENV, alternate_kernel_env, cpu_flags, resolve_threads,
                                  usable_cores)
from eager_bench.errors import BenchError

REPO = Path(__file__).resolve().parent.parent


def test_threads_come_from_the_machine_setting_then_the_config(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert resolve_threads(1) == 1
    assert resolve_threads(0) == usable_cores()  # 0 = every core the process may use
    monkeypatch.setenv(THREADS_ENV, "2")
    assert resolve_threads(1) == 2
    monkeypatch.setenv(THREADS_ENV, "two")
    with pytest.raises(BenchError, match=THREADS_ENV):
        resolve_threads(1)


def _report(env: dict[str, str]) -> dict:
    # start from an environment without kernel switches: the suite itself may run under the alternate ones
    clean = {k: v for k, v in os.environ.items() if k not in KERNEL_ENV or k == "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-m", "eager_bench.cli", "kernels"], capture_output=True, text=True,
                         env={**clean, **env}, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_alternate_environment_lowers_every_library_one_level():
    alternate = alternate_kernel_env(threads=1)
    assert alternate[THREADS_ENV] == "1"
    native, lowered = _report({}), _report(alternate)
    if "avx512f" in cpu_flags():
        assert native["torch_cpu_capability"] == "AVX512" and lowered["torch_cpu_capability"] == "AVX2"
        assert "X86_V4" in native["numpy_simd"] and "X86_V4" not in lowered["numpy_simd"]
    elif "avx2" in cpu_flags():
        assert native["torch_cpu_capability"] == "AVX2" and lowered["torch_cpu_capability"] == "DEFAULT"
    assert {k: lowered["env"][k] for k in alternate} == alternate  # recorded as provenance


def test_alternate_env_lines_feed_env(tmp_path):
    out = subprocess.run([sys.executable, "-m", "eager_bench.cli", "kernels", "--alternate-env"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert all("=" in line for line in lines) and any(line.startswith(f"{THREADS_ENV}=") for line in lines)


@pytest.mark.parametrize("args", [["models"], ["data", "list"], ["kernels"],
                                  ["run", "--all", "--dry-run", "--datasets", "synthetic"],
                                  ["run", "--model", "SASRec", "--dataset", "synthetic", "--profile", "smoke"]])
def test_no_command_prints_a_warning(args, tmp_path):
    # the interpreter's own warning filters, as a user's shell would start it; nothing may reach the screen
    out = subprocess.run([sys.executable, "-m", "eager_bench.cli", *args,
                          *(["--results-dir", str(tmp_path)] if args[0] == "run" else [])],
                         capture_output=True, text=True, cwd=REPO, timeout=300,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"})
    assert out.returncode == 0, out.stderr
    assert "Warning" not in out.stderr and "warn" not in out.stderr.lower(), out.stderr
