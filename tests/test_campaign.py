"""`eager-bench campaign`: the GPU campaign's code path on a CPU at smoke size (plan -> pack -> run -> unpack), plus
the pieces it relies on: run ids equal to `eager-bench run`'s, verified archives, the budget rule of the scheduler."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from eager_bench.campaign.archive import read_archive, write_archive
from eager_bench.campaign.execute import Job, concurrency, entry_point_shim, schedule
from eager_bench.campaign.plan import GRID, parse_model_overrides, plan_cells
from eager_bench.errors import BenchError
from eager_bench.results import read_ranks, read_run, REQUIRED_KEYS
from eager_bench.runner import RunSpec, planned_path

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "eager_bench.cli", "campaign"]
SMOKE = ["--profile", "smoke", "--datasets", "synthetic", "--models", "EAGER", "--models", "TIGER", "--models",
         "SASRec", "--variants", "default", "--variants", "no_transfer", "--cell-minutes", "0.1"]


def cli(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([*CLI, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    if check and out.returncode != 0:
        raise AssertionError(f"campaign {' '.join(args)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return out


# ------------------------------------------------------------------------------------------------ plan


def test_plan_follows_the_priority_order_with_run_ids_of_eager_bench_run(tmp_path: Path) -> None:
    cells = plan_cells(profile="smoke", datasets=["synthetic", "ml-100k"], results_dirs=[tmp_path])
    assert [(c.model, c.variant) for c in cells[::2]] == list(GRID)  # tier by tier, datasets inside a tier
    assert [c.dataset for c in cells[:2]] == ["synthetic", "ml-100k"]
    for cell in cells:
        assert cell.state == "to run" and cell.overrides == {"max_train_minutes": 6.0}
        assert planned_path(cell.spec(), tmp_path) == tmp_path / cell.relative_path()
        assert cell.run_args()[-2:] == ["--set", "max_train_minutes=6.0"]
    # --cell-minutes 0: exactly the ids of a plain `eager-bench run --profile smoke`
    plain = plan_cells(profile="smoke", datasets=["synthetic"], models=["TIGER"], cell_minutes=0)
    assert plain[0].overrides == {}
    assert planned_path(RunSpec("TIGER", "synthetic", "smoke"), tmp_path) == tmp_path / plain[0].relative_path()
    # a result file with the cell's run id makes it committed
    first = cells[0]
    (tmp_path / first.relative_path()).parent.mkdir(parents=True)
    (tmp_path / first.relative_path()).write_text("{}")
    again = plan_cells(profile="smoke", datasets=["synthetic", "ml-100k"], results_dirs=[tmp_path])
    assert [c.state for c in again].count("committed") == 1 and again[0].state == "committed"


def test_model_overrides_enter_the_run_id_and_bad_ones_are_one_line() -> None:
    assert parse_model_overrides(["EAGER:compile=true", "EAGER:beam_width=32"]) == \
        {"EAGER": {"compile": True, "beam_width": 32}}
    base = plan_cells(profile="smoke", datasets=["synthetic"], models=["EAGER"], variants=["default"])[0]
    tuned = plan_cells(profile="smoke", datasets=["synthetic"], models=["EAGER"], variants=["default"],
                       model_overrides={"EAGER": {"compile": True}})[0]
    assert tuned.run_id != base.run_id and "compile=true" in " ".join(tuned.run_args())
    with pytest.raises(BenchError, match="MODEL:key=value"):
        parse_model_overrides(["compile=true"])
    with pytest.raises(BenchError, match="not in the campaign grid"):
        plan_cells(profile="smoke", datasets=["synthetic"], models=["Markov"])
    with pytest.raises(BenchError, match="unknown config key"):
        plan_cells(profile="smoke", datasets=["synthetic"], models=["EAGER"], model_overrides={"EAGER": {"nope": 1}})


# ------------------------------------------------------------------------------------------------ archives


def test_archive_round_trip_and_every_kind_of_damage_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("alpha")
    archive = tmp_path / "x.tar.gz"
    write_archive(archive, [("dir/a.txt", src), ("b.bin", b"\x00\x01")], {"format": "test"})
    manifest, members = read_archive(archive)
    assert manifest["format"] == "test" and members == {"dir/a.txt": b"alpha", "b.bin": b"\x00\x01"}

    def rewrite(path: Path, edit) -> None:
        with tarfile.open(archive, "r:gz") as tar:
            items = [(info, tar.extractfile(info).read()) for info in tar]
        with tarfile.open(path, "w:gz") as tar:
            for info, data in edit(items):
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

    tampered = tmp_path / "t.tar.gz"
    rewrite(tampered, lambda items: [(i, b"alphA" if i.name == "dir/a.txt" else d) for i, d in items])
    with pytest.raises(BenchError, match="dir/a.txt does not match its sha256"):
        read_archive(tampered)
    dropped = tmp_path / "d.tar.gz"
    rewrite(dropped, lambda items: [(i, d) for i, d in items if i.name != "b.bin"])
    with pytest.raises(BenchError, match="missing"):
        read_archive(dropped)
    extra = tmp_path / "e.tar.gz"
    rewrite(extra, lambda items: [*items, (tarfile.TarInfo("../evil"), b"x")])
    with pytest.raises(BenchError, match="not a plain relative path"):
        read_archive(extra)
    (tmp_path / "junk.tar.gz").write_bytes(b"not gzip")
    with pytest.raises(BenchError, match="unreadable archive"):
        read_archive(tmp_path / "junk.tar.gz")


# ------------------------------------------------------------------------------------------------ scheduler


def _sleep(seconds: float, rc: int = 0) -> list[str]:
    return [sys.executable, "-c", f"import time, sys; time.sleep({seconds}); sys.exit({rc})"]


def test_schedule_keeps_priority_defers_what_cannot_fit_and_kills_at_the_deadline(tmp_path: Path) -> None:
    jobs = [Job("inputs", "inputs", _sleep(0.2), est_s=0),
            Job("a", "cell", _sleep(0.2), est_s=1, deps=["inputs"]),
            Job("bad-inputs", "inputs", _sleep(0.1, rc=3), est_s=0),
            Job("b", "cell", _sleep(0.1), est_s=1, deps=["bad-inputs"]),
            Job("too-long", "cell", _sleep(0.1), est_s=60),
            Job("overrun", "cell", _sleep(30), est_s=2)]
    start = time.monotonic()
    schedule(jobs, dict(os.environ), tmp_path, tmp_path / "logs", max_parallel=2, deadline=start + 5.0,
             reserve_s=1.0, echo=lambda _: None, poll_s=0.05)
    state = {j.key: j.state for j in jobs}
    assert state == {"inputs": "finished", "a": "finished", "bad-inputs": "failed", "b": "blocked",
                     "too-long": "deferred", "overrun": "killed"}
    assert time.monotonic() - start < 10
    by_key = {j.key: j for j in jobs}
    assert by_key["a"].start >= by_key["inputs"].end  # a cell starts after its inputs
    assert (tmp_path / "logs" / "overrun.log").is_file()
    mean, peak = concurrency(by_key["overrun"], jobs)
    assert 1.0 <= mean <= 2.0 and peak <= 2


def test_entry_point_shim_gives_a_bare_tree_the_model_entry_points(tmp_path: Path, monkeypatch) -> None:
    import importlib.metadata as metadata

    assert entry_point_shim(tmp_path) is None  # installed here: nothing to do
    monkeypatch.setattr(metadata, "entry_points", lambda **_: [])
    shim = entry_point_shim(tmp_path)
    dist = metadata.Distribution.at(next(shim.glob("*.dist-info")))
    assert dist.metadata["Name"] == "eager-bench"
    names = {ep.name for ep in dist.entry_points if ep.group == "eager_bench.models"}
    assert {"EAGER", "TIGER", "SASRec", "BERT4Rec"} <= names


def test_parts_are_filled_first_fit_in_priority_order() -> None:
    from eager_bench.campaign.pack import assign_parts

    assert assign_parts([20, 30, 20, 30], common=2, limit=56) == [[0, 1], [2, 3]]
    assert assign_parts([20, 40, 20, 30], common=2, limit=56) == [[0, 2], [1], [3]]
    assert assign_parts([60], common=2, limit=56) is None


def test_pack_refuses_a_folder_that_would_travel_with_every_call() -> None:
    from eager_bench.campaign.pack import check_out_dir

    with pytest.raises(BenchError, match="not ignored by git"):
        check_out_dir(REPO / "eager_bench" / "campaign" / "pack-here")
    assert check_out_dir(REPO / ".device" / "campaign") is None


# ------------------------------------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict:
    """plan -> pack -> run (CPU, 1 at a time) -> unpack, each through the CLI as a session and device.sh would."""
    root = tmp_path_factory.mktemp("campaign")
    env = {**os.environ, "EAGER_BENCH_DATA": str(data_dir), "EAGER_BENCH_HOME": str(root / "home"),
           "OMP_NUM_THREADS": "1"}
    committed = root / "committed"
    committed.mkdir()
    before = [c.to_dict() for c in plan_cells(profile="smoke", datasets=["synthetic"],
                                              models=["EAGER", "TIGER", "SASRec"], variants=["default", "no_transfer"],
                                              results_dirs=[committed], cell_minutes=0.1)]
    _fake_wheel(root / "wheels")
    packed = cli("pack", "--out", str(root / "pack"), *SMOKE, "--build", "all", "--allow-dirty",
                 "--wheels", str(root / "wheels"), "--results-dir", str(committed), env=env)
    start = time.monotonic()
    ran = cli("run", "--pack", str(root / "pack"), "--out", str(root / "out"), "--device", "cpu",
              "--budget-minutes", "2.5", "--max-parallel", "1", "--threads-per-run", "1", "--overhead-seconds", "15",
              "--stage", str(root / "stage"), "--results-dir", str(committed), env=env)
    run_s = time.monotonic() - start
    unpacked = cli("unpack", str(root / "out"), "--results-dir", str(committed), "--home", str(root / "home2"),
                   env=env)
    after = json.loads(cli("plan", *SMOKE, "--json", "--results-dir", str(committed), env=env).stdout)
    return {"root": root, "env": env, "committed": committed, "before": before, "after": after, "pack": packed,
            "run": ran, "run_s": run_s, "unpack": unpacked}


@pytest.mark.slow
def test_campaign_runs_every_cell_and_returns_result_files_of_the_local_schema(campaign: dict) -> None:
    root, committed = campaign["root"], campaign["committed"]
    assert [(c["model"], c["variant"]) for c in campaign["before"]] == \
        [("EAGER", "default"), ("TIGER", "default"), ("SASRec", "default"), ("EAGER", "no_transfer")]
    assert [c["state"] for c in campaign["before"]] == ["to run"] * 4
    index = json.loads((root / "pack" / "pack.json").read_text())
    assert [p["datasets"] for p in index["parts"]] == [["synthetic"]] and index["git_dirty"] in (True, False)
    assert campaign["run_s"] < 150  # the call ends inside its budget
    assert (root / "stage" / "site" / "campaign_fake" / "__init__.py").is_file()  # the packed wheels, installed
    summary = json.loads((root / "out" / "summary.json").read_text())
    assert summary["states"] == {"finished": 4}, summary
    for cell in campaign["before"]:
        path = committed / cell["dataset"] / cell["model"] / f"{cell['run_id']}.json"
        record = read_run(path)
        assert set(REQUIRED_KEYS) <= set(record) and record["run_id"] == cell["run_id"]
        assert record["config"]["max_train_minutes"] == 0.1 and record["profile"] == "smoke"
        assert record["provenance"]["hardware"]["device"] == "cpu" and record["provenance"]["git_commit"]
        assert record["provenance"]["data_files"] == {} and record["provenance"]["split_hash"]
        ranks = read_ranks(path)
        assert len(ranks["test_ranks"]) == record["n_test_users"]
    bench = [json.loads(p.read_text()) for p in (committed / "benchmarks").glob("campaign-smoke-*.json")]
    assert len(bench) == 1 and len(bench[0]["runs"]) == 4
    row = next(r for r in bench[0]["runs"] if r["model"] == "EAGER")
    assert row["updates_per_s"] > 0 and row["concurrent_max"] == 1 and "hardware" in bench[0]
    # a second plan finds every cell committed
    assert [c["state"] for c in campaign["after"]] == ["committed"] * 4


@pytest.mark.slow
def test_unpack_refuses_a_tampered_archive_and_a_changed_result(campaign: dict, tmp_path: Path) -> None:
    out, env = campaign["root"] / "out", campaign["env"]
    with tarfile.open(out / "results.tar.gz", "r:gz") as tar:
        items = [(info, tar.extractfile(info).read()) for info in tar]
    victim = next(i.name for i, _ in items if i.name.endswith(".json") and i.name.startswith("results/"))
    tampered = tmp_path / "results.tar.gz"
    with tarfile.open(tampered, "w:gz") as tar:
        for info, data in items:
            if info.name == victim:
                data = data.replace(b'"NDCG@10": 0.', b'"NDCG@10": 9.', 1)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    fresh = tmp_path / "fresh"
    bad = cli("unpack", str(tampered), "--results-dir", str(fresh), env=env, check=False)
    assert bad.returncode == 2
    lines = [line for line in bad.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and victim in lines[0] and "sha256" in lines[0]
    assert not fresh.exists()  # nothing was written
    # a returned file that would replace a different committed one is refused, identical ones are fine
    from eager_bench.campaign.unpack import unpack

    committed, home = campaign["committed"], tmp_path / "home"
    again = unpack([out], committed, home, echo=lambda _: None)
    assert again["added"] == [] and len(again["present"]) == 9 and not again["warnings"]
    target = committed / victim[len("results/"):]
    target.write_text(target.read_text().replace('"seed": 0', '"seed": 0 ', 1))
    with pytest.raises(BenchError, match="refusing to replace"):
        unpack([out], committed, home, echo=lambda _: None)


def test_a_cell_stops_holding_its_slot_while_a_long_input_build_runs(tmp_path: Path) -> None:
    jobs = [Job("inputs", "inputs", _sleep(1.5), est_s=0), Job("x", "cell", _sleep(0.1), est_s=1, deps=["inputs"]),
            Job("y", "cell", _sleep(0.1), est_s=1)]
    schedule(jobs, dict(os.environ), tmp_path, tmp_path / "logs", max_parallel=2, deadline=time.monotonic() + 20,
             reserve_s=1, echo=lambda _: None, poll_s=0.05, hold_s=0.3)
    inputs, x, y = jobs
    assert [j.state for j in jobs] == ["finished"] * 3
    assert inputs.start + 0.3 <= y.start < inputs.end <= x.start


def _fake_wheel(folder: Path) -> Path:
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "campaign_fake-0.1-py3-none-any.whl"
    info = "campaign_fake-0.1.dist-info"
    files = {"campaign_fake/__init__.py": "VALUE = 42\n",
             f"{info}/METADATA": "Metadata-Version: 2.1\nName: campaign-fake\nVersion: 0.1\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return wheel


def test_packed_wheels_are_installed_once_into_the_stage(tmp_path: Path) -> None:
    from eager_bench.campaign.execute import Stage, install_wheels

    _fake_wheel(tmp_path / "stage" / "wheels")
    stage = Stage(root=tmp_path / "stage", datasets=[], git_commit=None, git_dirty=False, profile=None, groups={},
                  packed_files=set())
    site = install_wheels(stage, echo=lambda _: None)
    assert (site / "campaign_fake" / "__init__.py").read_text() == "VALUE = 42\n"
    marker = (site / ".installed").stat().st_mtime_ns
    assert install_wheels(stage, echo=lambda _: None) == site and (site / ".installed").stat().st_mtime_ns == marker


def _part(folder: Path, number: int, datasets: list[str], commit: str = "abc") -> None:
    from eager_bench.campaign.archive import sha256_file
    from eager_bench.campaign.pack import PACK_FORMAT

    groups = {}
    for name in datasets:
        file = folder / f"{name}.tar.gz"
        write_archive(file, [(f"data/{name}/{name}.txt", f"1 2 3 {number}\n".encode()),
                             (f"home/cache/embeddings/{name}-text-x.npy", b"\x00" * 16)], {"format": PACK_FORMAT})
        groups[name] = {"file": file.name, "sha256": sha256_file(file), "dataset": name}
    (folder / "part.json").write_text(json.dumps({"format": PACK_FORMAT, "part": number, "git_commit": commit,
                                                  "profile": "paper", "plan": {"cell_minutes": 6.0},
                                                  "groups": groups}))


def test_parts_carried_in_two_calls_are_staged_together_and_damage_is_refused(tmp_path: Path) -> None:
    from eager_bench.campaign.execute import stage_pack

    first, second, stage = tmp_path / "call1" / "pack", tmp_path / "call2" / "pack", tmp_path / "stage"
    _part(first / "part-1", 1, ["Beauty", "Sports_and_Outdoors"])
    _part(second / "part-2", 2, ["Toys_and_Games"])
    assert stage_pack(first, stage, echo=lambda _: None).datasets == ["Beauty", "Sports_and_Outdoors"]
    staged = stage_pack(second, stage, echo=lambda _: None)  # the second call carries part 2 only
    assert staged.datasets == ["Beauty", "Sports_and_Outdoors", "Toys_and_Games"]
    assert staged.git_commit == "abc" and staged.plan == {"cell_minutes": 6.0}
    assert (stage / "data" / "Toys_and_Games" / "Toys_and_Games.txt").read_text() == "1 2 3 2\n"
    assert "home/cache/embeddings/Beauty-text-x.npy" in staged.packed_files
    (second / "part-2" / "Toys_and_Games.tar.gz").write_bytes(b"damaged")
    part = json.loads((second / "part-2" / "part.json").read_text())
    part["groups"]["Toys_and_Games"]["sha256"] = "0" * 64  # a new pack whose tarball did not arrive intact
    (second / "part-2" / "part.json").write_text(json.dumps(part))
    with pytest.raises(BenchError, match="damaged in transfer"):
        stage_pack(second, stage, echo=lambda _: None)
    _part(tmp_path / "other" / "part-3", 3, ["Yelp"], commit="def")
    with pytest.raises(BenchError, match="different commits"):
        stage_pack(tmp_path / "other", stage, echo=lambda _: None)
    assert not (stage / "data" / "Yelp").exists()  # refused before anything was unpacked


def test_returned_caches_are_split_under_the_per_file_limit(tmp_path: Path, monkeypatch) -> None:
    from eager_bench.campaign import execute

    monkeypatch.setattr(execute, "RETURN_FILE_LIMIT", 100)
    files = []
    for i, n in enumerate([60, 60, 30, 150, 60]):
        path = tmp_path / f"c{i}.npy"
        path.write_bytes(os.urandom(n))
        files.append((f"home/cache/embeddings/c{i}.npy", path))
    note = execute.write_caches(tmp_path / "out", files, {"format": "x"}, max_files=2)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["caches-2.tar.gz", "caches.tar.gz"]
    assert set(read_archive(tmp_path / "out" / "caches.tar.gz")[1]) == {"home/cache/embeddings/c0.npy"}
    assert set(read_archive(tmp_path / "out" / "caches-2.tar.gz")[1]) == {"home/cache/embeddings/c1.npy",
                                                                          "home/cache/embeddings/c2.npy"}
    assert note.startswith("2 new cache file(s) not returned") and "c3.npy" in note


def test_every_campaign_command_has_help() -> None:
    from typer.testing import CliRunner

    from eager_bench.cli import app

    runner = CliRunner()
    for args in (["campaign"], ["campaign", "plan"], ["campaign", "pack"], ["campaign", "run"],
                 ["campaign", "unpack"]):
        out = runner.invoke(app, [*args, "--help"])
        assert out.exit_code == 0 and "Usage" in out.output, (args, out.output)
    bare = runner.invoke(app, ["campaign"])
    assert bare.exit_code == 0 and "unpack" in bare.output
