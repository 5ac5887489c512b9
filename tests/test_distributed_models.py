"""EAGER and TIGER under torchrun: 2 gloo processes train the same model as one process (same global batches).

Run directly by torchrun, this file is the worker: both ranks run EAGER and TIGER (smoke size, synthetic data,
stand-in codes, dropout off so that sharding the batch changes no random draw) through `run_distributed`; rank 0
writes the result files. The test reruns both in one process and compares the logged global losses and the metrics.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import baselines.tiger as tiger_module
from eager_bench.distributed import init_distributed, run_distributed, shutdown
from eager_bench.eager import model as eager_model
from eager_bench.results import read_run
from eager_bench.runner import RunSpec, run
from tests.test_distributed import free_port
from tests.test_eager import standin_inputs
from tests.test_tiger import StandInIDs

REPO = Path(__file__).resolve().parent.parent

# Odd global batches (65 rows: 33 + 32) check the uneven split; STT is off because its random masks are drawn per
# row, so a rank's draws differ from the single process's (the loss is the same in distribution, not bit for bit).
SPECS = {
    "EAGER": RunSpec("EAGER", "synthetic", profile="smoke", variant="no_transfer",
                     overrides={"dropout": 0.0, "batch_size": 65, "steps": 20, "eval_every": 10, "log_every": 5,
                                "branch": 12}),
    "TIGER": RunSpec("TIGER", "synthetic", profile="smoke",
                     overrides={"dropout": 0.0, "batch_size": 65, "max_steps": 20, "eval_every": 5}),
}


def _tiger_stand_in(dataset, split, config, seed, device="cpu", show_progress=False):
    return StandInIDs().fit(np.zeros((dataset.n_items, 1)), seed=seed)


def use_stand_ins() -> None:
    """Small codes instead of MiniLM/DIN trees and an RQ-VAE: this test is about the training step."""
    eager_model.stream_inputs = standin_inputs
    tiger_module.build_semantic_ids = _tiger_stand_in


def training_curve(record: dict[str, Any]) -> list[float]:
    training = record["training"]
    if record["model"] == "EAGER":
        return [loss for _, loss in training["losses"]]
    return [point["loss"] for point in training["valid_curve"]]


def worker_main(out: Path) -> None:
    import torch

    torch.set_num_threads(1)
    use_stand_ins()
    ctx = init_distributed("cpu")
    paths = {}
    for name, spec in SPECS.items():
        outcome = run_distributed(spec, results_dir=out.parent / "results")
        if outcome is not None:
            paths[name] = str(outcome.path)
    if ctx.is_main:
        out.write_text(json.dumps({"world_size": ctx.world_size, "paths": paths}))
    shutdown(ctx)


@pytest.mark.slow
def test_eager_and_tiger_train_the_same_under_two_gloo_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    out = tmp_path / "ddp.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "EAGER_BENCH_HOME": str(tmp_path / "ddp-home")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), __file__, str(out)]
    with subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as torchrun:
        try:
            _, stderr = torchrun.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(torchrun.pid, signal.SIGKILL)
            raise
    assert torchrun.returncode == 0, stderr[-3000:]
    ddp = json.loads(out.read_text())
    assert ddp["world_size"] == 2 and sorted(ddp["paths"]) == ["EAGER", "TIGER"]

    # The same runs in one process, from a fresh home (no checkpoint of the 2-process run to resume from).
    monkeypatch.setenv("EAGER_BENCH_HOME", str(tmp_path / "single-home"))
    monkeypatch.setattr(eager_model, "stream_inputs", standin_inputs)
    monkeypatch.setattr(tiger_module, "build_semantic_ids", _tiger_stand_in)
    for name, spec in SPECS.items():
        two = read_run(Path(ddp["paths"][name]))
        one = run(spec, results_dir=tmp_path / "single", show_progress=False).record
        assert two["config_hash"] == one["config_hash"], name
        assert (two["training"]["world_size"], one["training"]["world_size"]) == (2, 1), name
        curve_two, curve_one = training_curve(two), training_curve(one)
        assert len(curve_one) >= 2 and curve_one[-1] < curve_one[0], name  # it learns: matching curves mean something
        np.testing.assert_allclose(curve_two, curve_one, rtol=2e-4, err_msg=name)
        for metric, value in one["metrics"]["test"].items():
            assert two["metrics"]["test"][metric] == pytest.approx(value, abs=0.02), (name, metric)


if __name__ == "__main__":  # the torchrun worker
    worker_main(Path(sys.argv[1]))
