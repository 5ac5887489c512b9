"""benchmarks/cross_machine.py: one run id on two machines is paired, compared per metric and per user."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from tests.synthetic_results import fake_run, random_ranks

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("cross_machine", ROOT / "benchmarks" / "cross_machine.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _on(path: Path, cpu: str, digest: str) -> None:
    record = json.loads(path.read_text())
    record["provenance"]["hardware"] = {"device": "cpu", "cpu": cpu, "kernels": {"bf16_matrix_units": ["avx512_bf16"]}}
    record["training"] = {"steps": 100, "best_step": 100,
                          "inputs_sha256": {"behavior": {"embeddings": digest, "codes": "c" * 16}}}
    path.write_text(json.dumps(record))


def test_same_run_id_on_two_machines_is_compared_and_the_same_machine_left_out(tmp_path):
    rng = np.random.default_rng(0)
    ranks = random_ranks(rng, 3000, 0.3)
    moved = np.where(rng.random(3000) < 0.5, random_ranks(rng, 3000, 0.6), ranks)  # half the users better
    _on(fake_run(tmp_path / "a", "EAGER", "Beauty", ranks), "AMD EPYC", "a" * 16)
    _on(fake_run(tmp_path / "b", "EAGER", "Beauty", moved), "Intel Xeon", "b" * 16)
    _on(fake_run(tmp_path / "a", "EAGER", "Toys_and_Games", ranks), "AMD EPYC", "a" * 16)
    _on(fake_run(tmp_path / "b", "EAGER", "Toys_and_Games", ranks), "AMD EPYC", "a" * 16)
    fake_run(tmp_path / "b", "EAGER", "Yelp", ranks)  # no partner
    bench = _module()
    out = tmp_path / "out" / "cross_machine.json"
    assert bench.main(["--reference", str(tmp_path / "a"), "--other", str(tmp_path / "b"), "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    [row] = result["rows"]
    assert row["dataset"] == "Beauty" and "Intel Xeon" in row["other"]["machine"]
    assert row["inputs_identical"] == {"behavior embeddings": False, "behavior codes": True}
    ndcg = row["metrics"]["test NDCG@10"]
    assert ndcg["diff"] > 0 and ndcg["wilcoxon_p"] < 1e-6
    assert 0.4 < row["users_same_test_rank"] < 0.9
    assert len(result["skipped"]) == 2 and any("same machine" in s for s in result["skipped"])
    md = out.with_suffix(".md").read_text()
    assert "## Beauty · EAGER `default`" in md and "inputs bit-identical: behavior embeddings no, behavior codes yes" in md


def test_a_missing_folder_is_one_line_and_exit_2(tmp_path, capsys):
    assert _module().main(["--reference", str(tmp_path / "nope"), "--other", str(tmp_path)]) == 2
    assert "results folder" in capsys.readouterr().err
