"""SASRec/BERT4Rec through RecBole 1.2.1: the split RecBole sees is ours, its evaluation agrees with ours, the CLI runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from baselines.bert4rec import BERT4Rec
from baselines.recbole_bridge import write_atomic_inter
from baselines.sasrec import SASRec
from eager_bench.config import resolve_config
from eager_bench.data import load_dataset
from eager_bench.errors import BenchError
from eager_bench.evaluation import CUTOFFS, NO_ITEM, evaluate
from eager_bench.models.base import RunContext
from eager_bench.results import read_run
from eager_bench.split import leave_one_out

REPO = Path(__file__).resolve().parent.parent


def make(cls: type, dataset_name: str, run_dir: Path, variant: str = "default", **overrides: object):
    dataset = load_dataset(dataset_name, None)
    split = leave_one_out(dataset, 50)
    config = resolve_config(cls.config_file, "smoke", variant, overrides=overrides or None)
    cls.validate_config(config)
    return cls(config, dataset, RunContext(run_dir=run_dir, seed=0, show_progress=False)), split


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    model, split = make(SASRec, "synthetic", tmp_path_factory.mktemp("sasrec"), variant="tuned", epochs=2)
    report = model.fit(split)
    return model, split, report


def test_recbole_sees_exactly_our_split(trained) -> None:
    model, split, _ = trained
    for loader, ours in ((model.valid_data, split.valid), (model.test_data, split.test)):
        users, targets, histories = model._rows(loader)
        order = np.argsort(users)
        assert np.array_equal(users[order], ours.users)
        assert np.array_equal(targets[order], ours.targets)
        assert all(np.array_equal(histories[i], h) for i, h in zip(order, ours.histories))
    users, targets, _ = model._rows(model.train_data)
    assert len(targets) == sum(len(s) - 1 for s in split.train)
    assert sorted(targets.tolist()) == sorted(np.concatenate([s[1:] for s in split.train]).tolist())


def test_a_split_that_differs_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import baselines.recbole_bridge as bridge

    def shuffled_inter(split, path):  # swap two users' test targets before RecBole reads the file
        split.test.targets[[0, 1]] = split.test.targets[[1, 0]]
        n = write_atomic_inter(split, path)
        split.test.targets[[0, 1]] = split.test.targets[[1, 0]]
        return n

    monkeypatch.setattr(bridge, "write_atomic_inter", shuffled_inter)
    model, split = make(SASRec, "synthetic", tmp_path)
    assert split.test.targets[0] != split.test.targets[1]
    with pytest.raises(AssertionError, match="test targets differ"):
        model._build(split)


def test_suite_evaluator_agrees_with_recbole_full_sort(trained) -> None:
    model, split, _ = trained
    for part, eval_set in (("test", split.test), ("valid", split.valid)):
        ours = evaluate(model.rank(eval_set), eval_set.targets, split.n_items).metrics
        theirs = model.recbole_evaluate(part)
        for k in CUTOFFS:
            assert ours[f"Recall@{k}"] == pytest.approx(theirs[f"recall@{k}"], abs=1e-6), (part, k)
            assert ours[f"NDCG@{k}"] == pytest.approx(theirs[f"ndcg@{k}"], abs=1e-6), (part, k)
        assert ours["Recall@20"] > 0.0  # a trained model finds some targets, so the comparison is not 0 == 0


def test_report_and_selection_use_validation(trained) -> None:
    _, _, report = trained
    assert report["epochs"] == 2 and len(report["valid_curve"]) == 2
    assert report["best_epoch"] == int(np.argmax(report["valid_curve"]))
    best_note = f"best epoch {report['best_epoch'] + 1} of 2, counted from 1"
    assert any(best_note in note for note in report["notes"])
    assert report["seconds_per_epoch"] > 0
    assert any("NOT masked" in note for note in report["notes"])


def test_recommend_returns_distinct_valid_item_ids(trained) -> None:
    model, split, _ = trained
    histories = split.test.histories[:7] + [np.array([3]), np.arange(1, 80)]
    top = model.recommend(histories, 20)
    assert top.shape == (9, 20)
    assert np.all((top >= 1) & (top <= split.n_items))
    assert all(len(set(row)) == 20 for row in top.tolist())
    everything = model.recommend(histories[:2], split.n_items + 5)
    assert np.all(everything[:, split.n_items:] == NO_ITEM)
    assert all(sorted(row[: split.n_items]) == list(range(1, split.n_items + 1)) for row in everything.tolist())
    with pytest.raises(BenchError, match="outside"):
        model.recommend([np.array([split.n_items + 1])], 5)


def test_killed_run_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    model, split = make(SASRec, "synthetic", tmp_path, variant="tuned", epochs=1)
    model.fit(split)
    progress_file = tmp_path / "recbole" / "progress.json"
    progress = json.loads(progress_file.read_text())
    progress["finished"] = False  # as if the process had been killed after epoch 0
    progress_file.write_text(json.dumps(progress))
    model, split = make(SASRec, "synthetic", tmp_path, variant="tuned", epochs=2)
    report = model.fit(split)
    assert report["epochs"] == 2 and any("Resumed from a checkpoint at epoch 1" in n for n in report["notes"])


def test_time_budget_stops_before_an_epoch_that_would_overrun(tmp_path: Path) -> None:
    model, split = make(SASRec, "synthetic", tmp_path, variant="tuned", epochs=3, max_train_minutes=1e-6)
    report = model.fit(split)
    assert report["epochs"] == 1 and "time budget" in report["stopped_by"]
    assert model.rank(split.test, 5).shape == (len(split.test), 5)  # the best checkpoint is still selected


def test_bert4rec_trains_and_ranks(tmp_path: Path) -> None:
    model, split = make(BERT4Rec, "synthetic", tmp_path, loss_slots="masked")  # the cpu profile's loss
    report = model.fit(split)
    assert report["epochs"] == 1
    assert any("masked positions only" in note for note in report["notes"])
    top = model.rank(split.test, 20)
    assert top.shape == (len(split.test), 20) and all(len(set(r)) == 20 for r in top[:50].tolist())


def test_bert4rec_masked_slot_loss_equals_recboles_loss_and_gradients(tmp_path: Path) -> None:
    import torch

    from baselines.bert4rec import masked_slot_loss

    model, split = make(BERT4Rec, "synthetic", tmp_path)
    model._build(split)
    net = model.net.eval()  # no dropout: both losses see the same forward
    checked = 0
    for batch in model.train_data:
        real = int((batch[net.MASK_INDEX] > 0).sum())
        if real == 0:
            continue
        assert real < batch[net.MASK_INDEX].numel()  # the batch has padding slots, so the test can tell the two apart
        grads = []
        for loss_fn in (lambda b: type(net).calculate_loss(net, b), lambda b: masked_slot_loss(net, b)):
            net.zero_grad()
            loss = loss_fn(batch)
            loss.backward()
            grads.append((loss.item(), [p.grad.clone() for p in net.parameters() if p.grad is not None]))
        (want, want_grads), (got, got_grads) = grads
        assert got == pytest.approx(want, rel=1e-5)
        assert len(got_grads) == len(want_grads)
        for a, b in zip(got_grads, want_grads):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)
        checked += 1
        if checked == 3:
            break
    assert checked == 3


@pytest.mark.parametrize("overrides, message", [
    ({"loss_slots": "some"}, "loss_slots must be one of all, masked"),
    ({"loss_slots": "masked", "loss_type": "BPR", "train_neg_sample_args": {"uniform": 1}},
     "loss_slots: masked needs loss_type: CE"),
])
def test_bert4rec_refuses_a_bad_loss_slots_setting(overrides: dict, message: str) -> None:
    config = resolve_config(BERT4Rec.config_file, "smoke", overrides=overrides)
    with pytest.raises(BenchError, match=message):
        BERT4Rec.validate_config(config)


@pytest.mark.parametrize("overrides, message", [
    ({"loss_type": "CE"}, "needs train_neg_sample_args: null"),
    ({"loss_type": "BCE"}, "loss_type must be CE or BPR"),
    ({"epochs": 0}, "epochs must be >= 1"),
])
def test_bad_configs_are_refused(overrides: dict, message: str) -> None:
    config = resolve_config(SASRec.config_file, "smoke", overrides=overrides)
    with pytest.raises(BenchError, match=message):
        SASRec.validate_config(config)


@pytest.mark.slow
def test_cli_smoke_run_on_ml100k_writes_a_result(tmp_path: Path) -> None:
    env = {**os.environ, "EAGER_BENCH_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    results = tmp_path / "results"
    out = subprocess.run([sys.executable, "-m", "eager_bench.cli", "run", "--model", "SASRec", "--dataset",
                          "ml-100k", "--profile", "smoke", "--results-dir", str(results)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    files = list(results.glob("ml-100k/SASRec/*.json"))
    assert len(files) == 1
    record = read_run(files[0])
    assert record["n_test_users"] == 943 and record["training"]["epochs"] == 1
    assert 0.0 <= record["metrics"]["test"]["NDCG@10"] <= record["metrics"]["test"]["Recall@10"] <= 1.0
    assert record["timing"]["seconds_per_epoch"] > 0
    # RecBole's logs, tensorboard files and checkpoints stay in the run directory, not in the working directory.
    assert not (tmp_path / "log").exists() and not (tmp_path / "log_tensorboard").exists()
    assert list((tmp_path / "home" / "runs").rglob("best.pth"))
