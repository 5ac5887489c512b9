"""The command line: the documented outputs, and bad input as one line + exit code 2, no traceback, no result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "eager_bench.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=REPO, timeout=300)


def test_data_stats_json_for_beauty(data_dir: Path) -> None:
    out = cli("data", "stats", "--dataset", "Beauty", "--json", "--data-dir", str(data_dir))
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert (stats["users"], stats["items"], stats["interactions"], stats["avg_len"]) == (22363, 12101, 198502, 8.88)


def test_every_command_has_help() -> None:
    for args in ([], ["run"], ["data"], ["data", "stats"], ["data", "download"], ["data", "list"], ["models"]):
        out = cli(*args, "--help")
        assert out.returncode == 0 and "Usage" in out.stdout, args


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--model", "Nope", "--dataset", "synthetic"], "unknown model 'Nope'"),
        (["run", "--model", "Markov", "--dataset", "Nowhere"], "unknown dataset 'Nowhere'"),
        (["run", "--model", "Markov", "--dataset", "synthetic", "--profile", "huge"], "unknown profile 'huge'"),
        (["run", "--model", "Markov", "--dataset", "synthetic", "--set", "popularity_weight=abc"], "must be a number"),
        (["run", "--model", "Markov", "--dataset", "Beauty", "--data-dir", "/does/not/exist"], "does not exist"),
        (["data", "stats", "--dataset", "Beauty", "--data-dir", "{bad}"], "checksum mismatch"),
        (["run", "--model", "Markov", "--dataset", "synthetic", "--config", "{cfg}"], "malformed YAML"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_result(tmp_path: Path, data_dir: Path, args: list[str],
                                                    message: str) -> None:
    bad = tmp_path / "bad"
    (bad / "Beauty").mkdir(parents=True)
    for name in ("Beauty.txt", "Beauty_item2attributes.json", "Beauty.items.jsonl"):
        (bad / "Beauty" / name).write_bytes((data_dir / "Beauty" / name).read_bytes())
    (bad / "Beauty" / "Beauty.txt").write_text("1 2 3 4 5\n")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("popularity_weight: [1,\n")
    args = [a.replace("{bad}", str(bad)).replace("{cfg}", str(cfg)) for a in args]
    results = tmp_path / "results"
    out = cli(*args, "--results-dir", str(results)) if args[0] == "run" else cli(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert len(out.stderr.strip().splitlines()) == 1
    assert not results.exists() or not list(results.rglob("*.json"))


def test_run_prints_metrics_and_writes_the_result(tmp_path: Path) -> None:
    out = cli("run", "--model", "Markov", "--dataset", "synthetic", "--profile", "smoke",
              "--results-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "Recall@5" in out.stdout
    assert len(list((tmp_path / "synthetic" / "Markov").glob("*.json"))) == 1


def test_dry_run_trains_nothing(tmp_path: Path) -> None:
    out = cli("run", "--model", "Markov", "--dataset", "synthetic", "--dry-run", "--results-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "would run" in out.stdout
    assert not list(tmp_path.rglob("*.json"))
