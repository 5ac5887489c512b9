"""The allocator policy: applied by the threads policy every trained model goes through, recorded, refused when
misspelt, and (its whole claim) the same numbers as glibc's own behaviour, only with fewer page faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eager_bench.allocator import ALLOCATOR_ENV, _glibc, allocator_policy
from eager_bench.errors import BenchError

REPO = Path(__file__).resolve().parent.parent
needs_glibc = pytest.mark.skipif(_glibc() is None, reason="the tuned policy only acts on glibc")

# A few training steps of a network whose activations (batch 512 x 8192 floats = 16 MiB) lie above glibc's initial
# mmap threshold, so the system policy maps and unmaps them every step: the parameters' bytes, the allocator's report
# and the minor page faults of the 30 steps after the first three come back as JSON.
TRAIN = """
import hashlib, json, resource
import torch
from eager_bench.allocator import allocator_report
from eager_bench.compute import apply_threads
apply_threads(1)
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(64, 8192), torch.nn.GELU(), torch.nn.Dropout(0.1), torch.nn.Linear(8192, 8))
opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
x, y = torch.randn(512, 64), torch.randint(0, 8, (512,))
def step():
    loss = torch.nn.functional.cross_entropy(net(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
step(); step(); step()  # the first steps touch every page for the first time under either policy
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(30):
    step()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in net.parameters())).hexdigest()
print(json.dumps({"digest": digest, "allocator": allocator_report(), "faults": faults}))
"""


def _train(policy: str) -> dict:
    env = {**os.environ, ALLOCATOR_ENV: policy}
    out = subprocess.run([sys.executable, "-c", TRAIN], capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_policy_comes_from_the_machine_setting(monkeypatch):
    monkeypatch.delenv(ALLOCATOR_ENV, raising=False)
    assert allocator_policy() == "tuned"
    monkeypatch.setenv(ALLOCATOR_ENV, "system")
    assert allocator_policy() == "system"
    monkeypatch.setenv(ALLOCATOR_ENV, "jemalloc")
    with pytest.raises(BenchError, match=ALLOCATOR_ENV):
        allocator_policy()


@needs_glibc
def test_tuned_allocator_trains_the_same_bits_with_fewer_page_faults():
    system, tuned = _train("system"), _train("tuned")
    assert system["allocator"]["applied"] is False and system["allocator"]["policy"] == "system"
    assert tuned["allocator"]["applied"] is True and tuned["allocator"]["mmap_threshold"] == 32 * 2 ** 20
    assert tuned["digest"] == system["digest"]  # same arithmetic, only where the buffers live
    # Over 30 steps, measured 5 times each on the 2-core machine: system 335k-716k faults, tuned 0-17.6k (a few
    # 16 MiB buffers first-touched when the heap grows once more).
    assert tuned["faults"] * 10 < system["faults"], (tuned["faults"], system["faults"])


def test_a_misspelt_policy_is_one_line_and_exit_2(tmp_path):
    env = {**os.environ, ALLOCATOR_ENV: "jemalloc"}
    out = subprocess.run([sys.executable, "-m", "eager_bench.cli", "kernels"], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=120)
    assert out.returncode == 2
    assert ALLOCATOR_ENV in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
