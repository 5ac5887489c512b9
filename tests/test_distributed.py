"""torch DDP helpers: 2 processes under torchrun (gloo, CPU) follow the single-process loss curve; device checks.

Run directly by torchrun, this file is the worker: it trains a tiny next-item model on the synthetic dataset's
training pairs and rank 0 writes the per-step global losses as JSON (the test compares them with one process).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from eager_bench.distributed import (DistContext, all_reduce_mean, all_reduce_sum, any_rank, batch_size, current,
                                     global_mean, init_distributed, loss_module, run_distributed, save_on_main,
                                     shard_batch, shard_batches, shutdown, unwrap, wrap_model)
from eager_bench.data import load_dataset
from eager_bench.errors import BenchError
from eager_bench.models.base import Recommender
from eager_bench.models import registry
from eager_bench.results import read_run
from eager_bench.runner import RunSpec, run
from eager_bench.split import Split, leave_one_out

REPO = Path(__file__).resolve().parent.parent
STEPS = 12


class NextItem(nn.Module):
    """Last item of the history -> scores over the catalogue (an embedding and a linear layer, deterministic)."""

    def __init__(self, n_items: int, dim: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_items + 1, dim)
        self.out = nn.Linear(dim, n_items + 1)

    def forward(self, last: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.embed(last)))


def global_batches(global_batch: int, steps: int, split: Split | None = None) -> tuple[int, list[tuple[torch.Tensor, torch.Tensor]]]:
    """The same shuffled (last item, next item) batches on every rank: seeded, independent of rank."""
    if split is None:
        split = leave_one_out(load_dataset("synthetic"))
    prefixes, targets = split.train_pairs()
    last = torch.tensor([p[-1] for p in prefixes])
    target = torch.as_tensor(targets)
    order = torch.randperm(len(last), generator=torch.Generator().manual_seed(0))
    batches = [(last[order[i * global_batch:(i + 1) * global_batch]], target[order[i * global_batch:(i + 1) * global_batch]])
               for i in range(steps)]
    return split.n_items, batches


def train(ctx: DistContext, global_batch: int, steps: int = STEPS) -> tuple[list[float], torch.Tensor]:
    """SGD with momentum on the global batches; returns the global mean loss per step and the final weights."""
    n_items, batches = global_batches(global_batch, steps)
    torch.manual_seed(0)
    model = wrap_model(NextItem(n_items).to(ctx.device), ctx)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    losses = []
    for batch, (last, target) in zip(batches, shard_batches(batches, ctx)):
        loss_sum = nn.functional.cross_entropy(model(last), target, reduction="sum")
        optimizer.zero_grad()
        global_mean(loss_sum, batch_size(batch), ctx).backward()
        optimizer.step()
        losses.append(float(all_reduce_sum(loss_sum, ctx)) / batch_size(batch))
    weights = torch.cat([p.detach().flatten() for p in unwrap(model).parameters()])
    return losses, weights


class DDPNextItem(Recommender):
    """A benchmark model written the way EAGER/TIGER should use the helpers: same code for 1 and N processes."""

    config_file = None  # the test writes the YAML and sets it (the model lives in a test file)
    data_parallel = True

    def fit(self, split: Split) -> dict:
        ddp = current(self.context.device)
        torch.manual_seed(self.context.seed)
        self.net = NextItem(self.n_items).to(ddp.device)
        step_loss = loss_module(self.net, self._loss_sum, ddp)
        optimizer = torch.optim.SGD(self.net.parameters(), lr=self.config["lr"], momentum=0.9)
        _, batches = global_batches(self.config["batch_size"], self.config["steps"], split)
        losses = []
        for batch in batches:
            last, target = shard_batch(batch, ddp)
            loss = global_mean(step_loss(last.to(ddp.device), target.to(ddp.device)), batch_size(batch), ddp)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(all_reduce_sum(loss.detach(), ddp)) / ddp.world_size)
        save_on_main(self.net.state_dict(), self.context.checkpoint_path("net.pt"), ddp)
        return {"losses": losses, "world_size": ddp.world_size}

    def _loss_sum(self, last: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(self.net(last), target, reduction="sum")

    @torch.no_grad()
    def recommend(self, histories: list[np.ndarray], k: int) -> np.ndarray:
        last = torch.tensor([h[-1] for h in histories])
        scores = self.net(last.to(next(self.net.parameters()).device)).cpu()
        scores[:, 0] = -torch.inf
        return scores.topk(k, dim=1).indices.numpy()


MODEL_YAML = """defaults:
  batch_size: 33  # (int) global batch
  steps: 12       # (int) optimizer steps
  lr: 0.5         # (float) SGD learning rate
profiles: {smoke: {}, cpu: {}, paper: {}}
"""


def use_test_model(config_file: Path) -> None:
    config_file.write_text(MODEL_YAML)
    DDPNextItem.config_file = config_file
    registry.register("DDPNextItem", DDPNextItem)


def worker_main(out: Path, global_batches_: list[int]) -> None:
    torch.set_num_threads(1)
    ctx = init_distributed("cpu")
    report: dict = {"world_size": ctx.world_size, "backend": ctx.backend,
                    "rank_mean": float(all_reduce_mean(torch.tensor(float(ctx.rank)), ctx)), "runs": {},
                    # only rank 1's clock ran out: both ranks must agree to stop
                    "any_rank": [any_rank(ctx.rank == 1, ctx), any_rank(False, ctx)]}
    for global_batch in global_batches_:
        losses, weights = train(ctx, global_batch)
        # Every rank ends with the same weights (DDP keeps replicas in sync): compare them through an all-reduce.
        spread = float((all_reduce_sum(weights, ctx) / ctx.world_size - weights).abs().max())
        save_on_main(weights, out.with_name(f"weights-{global_batch}.pt"), ctx)
        report["runs"][str(global_batch)] = {"losses": losses, "replica_spread": spread}
    if ctx.is_main:
        out.write_text(json.dumps(report))
    # A whole benchmark run: both ranks train, rank 0 alone writes; then again, cached (no rank may hang).
    # The group stays up between them: a torchrun process joins it once.
    use_test_model(out.with_name(f"ddp_next_item-{ctx.rank}.yaml"))
    spec = RunSpec("DDPNextItem", "synthetic", profile="smoke")
    first = run_distributed(spec, results_dir=out.parent / "results")
    second = run_distributed(spec, results_dir=out.parent / "results")
    if first is not None:
        out.with_name("runs.json").write_text(json.dumps({"first_cached": first.cached,
                                                          "second_cached": second.cached,
                                                          "path": str(first.path)}))
    shutdown(ctx)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_follow_the_single_process_loss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "ddp.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    # Global batch 32 splits 16/16; 33 splits 17/16 (global_mean keeps the step exact).
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), __file__, str(out), "32", "33"]
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as torchrun:
        try:
            _, stderr = torchrun.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            os.killpg(torchrun.pid, signal.SIGKILL)  # torchrun and both workers: no orphan keeps the port
            raise
    assert torchrun.returncode == 0, stderr[-3000:]
    ddp = json.loads(out.read_text())
    assert (ddp["world_size"], ddp["backend"], ddp["rank_mean"]) == (2, "gloo", 0.5)
    assert ddp["any_rank"] == [True, False]
    for global_batch in (32, 33):
        curve = ddp["runs"][str(global_batch)]
        assert curve["replica_spread"] == 0.0
        single, weights = train(init_distributed("cpu"), global_batch)
        assert single[-1] < single[0] * 0.9  # it does learn, so matching curves mean something
        np.testing.assert_allclose(curve["losses"], single, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(torch.load(tmp_path / f"weights-{global_batch}.pt"), weights, rtol=1e-4,
                                   atol=1e-5)

    # The benchmark run under torchrun: one result file, written by rank 0, matching one process.
    runs = json.loads((tmp_path / "runs.json").read_text())
    assert (runs["first_cached"], runs["second_cached"]) == (False, True)
    assert [p.name for p in (tmp_path / "results").rglob("*.json")] == [Path(runs["path"]).name]
    ddp_record = read_run(Path(runs["path"]))
    (tmp_path / "single.yaml").write_text(MODEL_YAML)
    monkeypatch.setattr(DDPNextItem, "config_file", tmp_path / "single.yaml")
    monkeypatch.setitem(registry._EXTRA, "DDPNextItem", DDPNextItem)  # in-process only, undone after the test
    single_record = run(RunSpec("DDPNextItem", "synthetic", profile="smoke"), results_dir=tmp_path / "single",
                        show_progress=False).record
    assert (ddp_record["training"]["world_size"], single_record["training"]["world_size"]) == (2, 1)
    np.testing.assert_allclose(ddp_record["training"]["losses"], single_record["training"]["losses"], rtol=1e-5)
    for name, value in single_record["metrics"]["test"].items():
        assert ddp_record["metrics"]["test"][name] == pytest.approx(value, abs=1e-3), name


def test_single_process_without_torchrun(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    ctx = init_distributed("cpu")
    assert (ctx.rank, ctx.world_size, ctx.backend, ctx.is_main) == (0, 1, None, True)
    model = nn.Linear(2, 2)
    assert wrap_model(model, ctx) is model and unwrap(model) is model
    batch = {"x": torch.arange(6).reshape(3, 2), "y": torch.arange(3)}
    assert shard_batch(batch, ctx) is batch
    assert float(all_reduce_sum(2.5, ctx)) == 2.5
    assert any_rank(True, ctx) is True and any_rank(False, ctx) is False
    save_on_main({"a": 1}, tmp_path / "ckpt" / "c.pt", ctx)
    assert torch.load(tmp_path / "ckpt" / "c.pt") == {"a": 1} and not list(tmp_path.rglob("*.tmp"))
    shutdown(ctx)


def test_shards_cover_the_global_batch_exactly_once() -> None:
    batch = (torch.arange(7), torch.arange(7) * 10)
    parts = [shard_batch(batch, DistContext(r, 3, r, torch.device("cpu"), "gloo")) for r in range(3)]
    assert [batch_size(p) for p in parts] == [3, 2, 2]
    assert torch.equal(torch.cat([p[0] for p in parts]), batch[0])
    assert torch.equal(torch.cat([p[1] for p in parts]), batch[1])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path: Path) -> None:
    from eager_bench.runner import RunSpec, run

    with pytest.raises(BenchError, match="--device cuda: no CUDA device is available"):
        run(RunSpec("Popularity", "synthetic", profile="smoke"), results_dir=tmp_path, device="cuda",
            show_progress=False)
    assert not list(tmp_path.rglob("*.json"))
    with pytest.raises(BenchError, match="--device cuda:1: no CUDA device"):
        init_distributed("cuda:1")


if __name__ == "__main__":  # the torchrun worker
    worker_main(Path(sys.argv[1]), [int(arg) for arg in sys.argv[2:]])


def test_a_model_without_data_parallel_training_refuses_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun sets; the check comes before any process group
    with pytest.raises(BenchError, match="Markov does not train data-parallel"):
        run_distributed(RunSpec("Markov", "synthetic", profile="smoke"))
