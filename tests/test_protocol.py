"""The item-order option (eager_bench.data.order) and the protocol study (eager_bench.studies.protocol), on the
synthetic dataset and tiny generated folders at the smoke profile."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from eager_bench.cli import app
from eager_bench.data import load_dataset
from eager_bench.data.dataset import SequenceDataset
from eager_bench.data.order import key_field, parse_order, reorder, view_name
from eager_bench.errors import BenchError
from eager_bench.results import read_run
from eager_bench.runner import RunSpec, run
from eager_bench.split import leave_one_out
from eager_bench.studies import protocol

runner = CliRunner()


def _folder(root: Path, name: str, lines: list[list[int]], records: list[dict] | None) -> Path:
    """An S3-Rec layout folder: `<name>.txt` (user, items in time order) and optionally `<name>.items.jsonl`."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / f"{name}.txt").write_text("".join(" ".join(map(str, [u, *items])) + "\n"
                                                for u, items in enumerate(lines, start=1)))
    if records is not None:
        (folder / f"{name}.items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


# ------------------------------------------------------------------------------------------------ the order option
def test_asin_order_sorts_each_user_by_the_item_key() -> None:
    time_ds, asin_ds = load_dataset("synthetic"), load_dataset("synthetic@order=asin")
    assert (time_ds.order, asin_ds.order) == ("time", "asin")
    keys = {i + 1: r["asin"] for i, r in enumerate(time_ds.item_records)}
    assert len(set(keys.values())) == time_ds.n_items
    for before, after in zip(time_ds.sequences, asin_ds.sequences):
        assert sorted(before.tolist()) == sorted(after.tolist())  # same items per user, only the order changes
        assert [keys[i] for i in after] == sorted(keys[i] for i in before)
    assert asin_ds.n_items == time_ds.n_items and asin_ds.item_records == time_ds.item_records
    # the model sees the base's name (its per-dataset settings); results go by the view name (runner)
    assert asin_ds.name == "synthetic"
    assert asin_ds.stats()["order"] == "asin" and time_ds.stats()["order"] == "time"
    assert asin_ds.stats()["view"] == "synthetic@order=asin" and "view" not in time_ds.stats()


def test_order_is_in_the_split_fingerprint_and_the_data_digest() -> None:
    time_ds, asin_ds = load_dataset("synthetic"), load_dataset("synthetic@order=asin")
    assert leave_one_out(time_ds).fingerprint != leave_one_out(asin_ds).fingerprint
    assert time_ds.data_sha256() != asin_ds.data_sha256()
    # the time order's digest is unchanged by the option (existing results keep theirs)
    plain = SequenceDataset("x", time_ds.sequences, time_ds.n_items)
    assert plain.data_sha256() == time_ds.data_sha256()


def test_equal_keys_keep_their_time_order() -> None:
    records = [{"id": 1, "asin": "B"}, {"id": 2, "asin": "A"}, {"id": 3, "asin": "B"}, {"id": 4, "asin": "A"}]
    ds = SequenceDataset("t", [np.array([3, 1, 2, 4]), np.array([1, 3, 4, 2, 1])], 4, item_records=records)
    out = reorder(ds, "asin")
    assert out.sequences[0].tolist() == [2, 4, 3, 1]  # A-keys in time order (2 before 4), then B-keys (3 before 1)
    assert out.sequences[1].tolist() == [4, 2, 1, 3, 1]
    assert ds.sequences[0].tolist() == [3, 1, 2, 4]  # the base is untouched
    assert reorder(ds, "time") is ds
    with pytest.raises(BenchError, match="already in asin order"):
        reorder(out, "time")


def test_business_id_is_the_key_without_asin() -> None:
    records = [{"id": 1, "business_id": "z"}, {"id": 2, "business_id": "a"}]
    ds = SequenceDataset("y", [np.array([1, 2, 1])], 2, item_records=records)
    assert key_field(ds) == "business_id"
    assert reorder(ds, "asin").sequences[0].tolist() == [2, 1, 1]


def test_names_and_refusals() -> None:
    assert view_name("Beauty", "time") == "Beauty" and view_name("Beauty", "asin") == "Beauty@order=asin"
    assert parse_order("Beauty") == ("Beauty", "time")
    assert parse_order("Beauty@order=asin") == ("Beauty", "asin")
    assert parse_order("Beauty@users=0.1@order=asin") == ("Beauty@users=0.1", "asin")
    with pytest.raises(BenchError, match="the default; name the dataset 'Beauty'"):
        parse_order("Beauty@order=time")
    with pytest.raises(BenchError, match="unknown order 'year'"):
        load_dataset("synthetic@order=year")
    with pytest.raises(BenchError, match="unknown dataset 'nope'"):
        load_dataset("nope@order=asin")


def test_user_folder_view(tmp_path: Path) -> None:
    lines = [[3, 1, 2], [2, 3, 1, 4], [4, 1, 3]]
    _folder(tmp_path, "Shop", lines, [{"id": i, "asin": a, "title": f"t{i}"}
                                      for i, a in zip(range(1, 5), ["d", "c", "b", "a"])])
    _folder(tmp_path, "Bare", lines, None)
    _folder(tmp_path, "Gap", lines, [{"id": 1, "asin": "a", "title": "x"}, {"id": 2, "title": "y"},
                                     {"id": 3, "asin": "c", "title": "z"}, {"id": 4, "asin": "d", "title": "w"}])
    from eager_bench.data import get_spec

    spec = get_spec("Shop@order=asin", tmp_path)
    assert spec.kind == "user" and spec.folder == tmp_path / "Shop"  # the runner's changed-files check applies
    shop = load_dataset("Shop@order=asin", tmp_path)
    assert [s.tolist() for s in shop.sequences] == [[3, 2, 1], [4, 3, 2, 1], [4, 3, 1]]  # descending ids = asin
    with pytest.raises(BenchError, match=r"needs item records with asin or business_id \(.*Bare\.items\.jsonl"):
        load_dataset("Bare@order=asin", tmp_path)
    with pytest.raises(BenchError, match="item 2 has no 'asin'"):
        load_dataset("Gap@order=asin", tmp_path)


def test_a_run_on_the_view_is_a_normal_result_in_its_own_folder(tmp_path: Path) -> None:
    outcome = run(RunSpec("Markov", "synthetic@order=asin", "smoke"), results_dir=tmp_path, show_progress=False)
    assert outcome.path.parent.parent.name == "synthetic@order=asin"
    record = read_run(outcome.path)
    assert record["dataset"] == "synthetic@order=asin"
    view = load_dataset("synthetic@order=asin")
    assert record["provenance"]["split_hash"] == leave_one_out(view, 50).fingerprint
    assert record["provenance"]["data_sha256"] == view.data_sha256()
    plain = run(RunSpec("Markov", "synthetic", "smoke"), results_dir=tmp_path, show_progress=False)
    assert plain.record["run_id"] == record["run_id"]  # same config, different folder
    assert plain.record["provenance"]["split_hash"] != record["provenance"]["split_hash"]


def test_leaderboard_says_which_order_a_section_has(tmp_path: Path) -> None:
    from eager_bench.report import build_report

    for dataset in ("synthetic", "synthetic@order=asin"):
        run(RunSpec("Popularity", dataset, "smoke"), results_dir=tmp_path, show_progress=False)
    written = build_report(tmp_path, formats=["md"], profiles=["smoke"], plots=False, ablations=False)
    text = written[0].read_text()
    assert "## synthetic · profile `smoke` · order `time`" in text
    assert "## synthetic@order=asin · profile `smoke` · order `asin`" in text


# ------------------------------------------------------------------------------------------------ the study
def _study(tmp_path: Path, *extra: str) -> tuple[str, list[dict[str, str]]]:
    out = tmp_path / "out"
    result = runner.invoke(app, ["study", "protocol", "--profile", "smoke", "--results-dir", str(tmp_path / "res"),
                                 "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    with (out / "study_protocol_smoke.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert (out / "plots" / "study_protocol_smoke.png").is_file()
    return (out / "study_protocol_smoke.md").read_text(), rows


def test_study_runs_cheap_models_and_shows_the_rest_pending(tmp_path: Path) -> None:
    text, rows = _study(tmp_path, "--model", "Popularity", "--model", "Markov")
    studies = tmp_path / "res" / "studies"
    for view in ("synthetic", "synthetic@order=asin"):
        for model in ("Popularity", "Markov"):
            assert len(list((studies / view / model).glob("*.json"))) == 1
    everything = [r for r in rows if r["table"] == "metrics"]
    metrics = [r for r in everything if r["model"] in ("Popularity", "Markov")]
    assert {(r["model"], r["order"]) for r in metrics} == {(m, o) for m in ("Popularity", "Markov")
                                                           for o in ("time", "asin")}
    assert all(r["status"] == "done" and r["value"] != "" and r["split_hash"] for r in metrics)
    # a subset run keeps the study's whole grid in its table; the points not asked for are pending, never run
    others = [r for r in everything if r not in metrics]
    assert {r["model"] for r in others} == {"SASRec", "EAGER", "TIGER"} and all(r["status"] != "done" for r in others)
    assert not (studies / "synthetic" / "EAGER").exists() and "not asked for" in text
    # what completes the table is the grid's command, not the subset's (which would leave SASRec etc. pending)
    assert "Complete with: `eager-bench study protocol --profile smoke` (finished points" in text
    assert "Reproduce: `eager-bench study protocol --profile smoke` (this file was last written by" in text
    markov = {r["order"]: float(r["value"]) for r in metrics if r["model"] == "Markov" and r["metric"] == "NDCG@10"}
    record = read_run(next((studies / "synthetic@order=asin" / "Markov").glob("*.json")))
    assert markov["asin"] == pytest.approx(record["metrics"]["test"]["NDCG@10"], rel=1e-5)
    paired = [r for r in rows if r["table"] == "paired"]
    tested = [r for r in paired if r["model"] in ("Popularity", "Markov")]
    assert len(tested) >= 2 and all(r["p_holm"] for r in tested)
    assert not any(r["p_holm"] for r in paired if r not in tested)  # a pair without both results is never tested
    assert "Paired per user over the same users" in text

    # --no-run over all five models: the two cheap ones from their files (reused), the others pending, no file made
    text, rows = _study(tmp_path, "--no-run")
    metrics = [r for r in rows if r["table"] == "metrics"]
    done = {(r["model"], r["order"]) for r in metrics if r["status"] == "done"}
    assert done == {(m, o) for m in ("Popularity", "Markov") for o in ("time", "asin")}
    pending = [r for r in metrics if r["status"] != "done"]
    assert {r["model"] for r in pending} == {"SASRec", "EAGER", "TIGER"}
    assert all(r["value"] == "" for r in pending)  # never invented
    assert all(r["reused"] == "yes" for r in metrics if r["status"] == "done")
    assert "**Pending (6)**" in text and "SASRec (tuned) on synthetic@order=asin" in text
    assert not (tmp_path / "res" / "studies" / "synthetic" / "EAGER").exists()


def test_study_budget_leaves_points_pending(tmp_path: Path) -> None:
    text, rows = _study(tmp_path, "--model", "Markov", "--budget-minutes", "1e-9")
    metrics = [r for r in rows if r["table"] == "metrics" and r["model"] == "Markov"]
    assert [r["status"] for r in metrics if r["metric"] == "Recall@5"] == ["pending", "pending"]
    assert "Stopped by `--budget-minutes 1e-09`" in text and "budget was spent" in text
    assert not (tmp_path / "res" / "studies").exists()


def test_stale_or_foreign_results_are_not_reused(tmp_path: Path) -> None:
    """A Markov result from before the tie rule, or one whose split is not its order's, is rerun in the study
    store and listed; the main store's file is left as it was."""
    res = tmp_path / "res"
    stale = run(RunSpec("Markov", "synthetic", "smoke"), results_dir=res, show_progress=False).path
    record = json.loads(stale.read_text())
    record["provenance"]["git_commit"] = "0" * 40  # unknown to git: falls back to the finish time
    record["provenance"]["finished_at"] = "2024-01-01T00:00:00+00:00"
    stale.write_text(json.dumps(record))
    foreign = run(RunSpec("Popularity", "synthetic@order=asin", "smoke"), results_dir=res, show_progress=False).path
    record = json.loads(foreign.read_text())
    record["provenance"]["split_hash"] = "f" * 64
    foreign.write_text(json.dumps(record))
    before = stale.read_text(), foreign.read_text()

    text, rows = _study(tmp_path, "--model", "Markov", "--model", "Popularity")
    assert "before the tie rule" in text and "is not the asin-order split" in text
    assert (stale.read_text(), foreign.read_text()) == before
    assert (res / "studies" / "synthetic" / "Markov" / stale.name).is_file()
    assert (res / "studies" / "synthetic@order=asin" / "Popularity" / foreign.name).is_file()
    assert all(r["result"].startswith("res/studies/") for r in rows if r["table"] == "metrics" and r["status"] == "done")
    assert protocol.has_tie_rule(read_run(res / "studies" / "synthetic" / "Markov" / stale.name))


def test_closer_and_paper_rows(tmp_path: Path) -> None:
    assert protocol.closer(0.05, 0.08, 0.0836) == "asin"
    assert protocol.closer(0.05, 0.12, 0.0836) == "time"
    assert protocol.closer(0.07, 0.09, 0.08) == "equal"
    assert protocol.closer(None, 0.08, 0.0836) is None
    # a reference file naming the synthetic dataset: the paper row, the verdict and the EAGER line appear
    ref = tmp_path / "reported.csv"
    lines = ["paper,model,dataset,metric,value,status,source"]
    lines += [f"EAGER,EAGER,synthetic,{m},0.5,primary,test" for m in protocol.METRICS]
    lines += [f"TIGER,SASRec,synthetic,{m},0.5,secondary,test" for m in protocol.METRICS]
    ref.write_text("\n".join(lines) + "\n")
    text, rows = _study(tmp_path, "--model", "Markov", "--reference", str(ref))
    assert "| synthetic | Markov | closer to |" not in text  # no paper number for Markov
    assert "| synthetic | Markov | 0.5000 / 0.5000 / 0.5000 / 0.5000 |" in text
    text, rows = _study(tmp_path, "--model", "Markov", "--model", "SASRec", "--reference", str(ref), "--no-run")
    assert "| synthetic | SASRec (tuned) | paper (TIGER's table*) | 0.5000 |" in text
    assert "| synthetic | SASRec (tuned) | closer to | n/a |" in text
    sasrec = [r for r in rows if r["table"] == "metrics" and r["model"] == "SASRec"]
    assert all(r["paper"] == "0.5" and r["closer_to"] == "" and r["paper_note"] for r in sasrec)


def test_help_lists_protocol() -> None:
    result = runner.invoke(app, ["study", "protocol", "--help"])
    assert result.exit_code == 0 and "--budget-minutes" in result.output and "--no-run" in result.output
