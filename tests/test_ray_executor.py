"""The Ray executor on a local 2-CPU Ray: same result files as the local executor, failures reported, no half files."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from eager_bench import results
from eager_bench.errors import BenchError
from eager_bench.executors import run_grid_with
from eager_bench.executors.ray_executor import import_ray, ray_executor, run_grid_ray, start_ray
from eager_bench.grid import plan
from eager_bench.results import read_ranks, read_run
from eager_bench.runner import RunSpec, run

REPO = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow,  # starting Ray takes 10-20 s on two cores
              pytest.mark.filterwarnings("ignore:pkg_resources is deprecated")]  # ray 2.6.3 imports it


@pytest.fixture(scope="module")
def ray_cluster():
    ray = import_ray()
    # Functions defined in this test module travel to the workers by value (tests/ is not importable there).
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    started = start_ray(None, num_cpus=2)
    yield ray
    if started:
        ray.shutdown()


def smoke_grid(results_dir: Path):
    return plan(["Popularity", "Markov"], ["synthetic"], [0, 1], "smoke", results_dir)


def quiet_console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200), buffer


def fail_on_seed_1(spec: RunSpec, **kwargs):
    if spec.seed == 1:
        raise BenchError(f"injected failure for {spec.model} seed 1")
    return run(spec, **kwargs)


def die_once(spec: RunSpec, **kwargs):
    """Kill the worker process mid-run the first time (marker file in the shared home), then run normally."""
    marker = Path(os.environ["EAGER_BENCH_HOME"]) / f"died-{spec.model}-{spec.seed}"
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        os._exit(1)
    return run(spec, **kwargs)


def die_always(spec: RunSpec, **kwargs):
    os._exit(1)


def test_ray_grid_writes_the_same_results_as_the_local_executor(ray_cluster, tmp_path: Path) -> None:
    console, _ = quiet_console()
    local = run_grid_with("local", smoke_grid(tmp_path / "local"), tmp_path / "local", None, "cpu", False, console)
    on_ray = run_grid_with("ray", smoke_grid(tmp_path / "ray"), tmp_path / "ray", None, "cpu", False, console)
    assert len(local) == len(on_ray) == 4 and not any(o.cached for o in on_ray)
    for a, b in zip(local, on_ray):
        assert a.path.relative_to(tmp_path / "local") == b.path.relative_to(tmp_path / "ray")
        assert b.path.is_file() and read_run(b.path) == b.record
        assert b.record["metrics"] == a.record["metrics"]
        assert b.record["config_hash"] == a.record["config_hash"]
        assert b.record["provenance"]["hardware"]["device"] == "cpu"
        ranks_a, ranks_b = read_ranks(a.path), read_ranks(b.path)
        assert set(ranks_a) == set(ranks_b)
        for key in ranks_a:
            assert np.array_equal(ranks_a[key], ranks_b[key]), key
    assert not list((tmp_path / "ray").rglob("*.tmp"))
    # A second pass finds every run cached and submits nothing.
    again = run_grid_ray(smoke_grid(tmp_path / "ray"), tmp_path / "ray", None, "cpu", False, console)
    assert [o.cached for o in again] == [True] * 4


def test_the_single_run_executor_fits_run_grid(ray_cluster, tmp_path: Path) -> None:
    spec = RunSpec("Markov", "synthetic", profile="smoke", seed=3)
    remote = ray_executor(spec, results_dir=tmp_path / "ray", show_progress=False)
    local = run(spec, results_dir=tmp_path / "local", show_progress=False)
    assert not remote.cached and remote.record["metrics"] == local.record["metrics"]
    assert remote.path.name == local.path.name
    assert ray_executor(spec, results_dir=tmp_path / "ray").cached


def test_a_failing_run_is_reported_and_the_others_finish(ray_cluster, tmp_path: Path) -> None:
    console, out = quiet_console()
    items = smoke_grid(tmp_path)
    outcomes = run_grid_ray(items, tmp_path, None, "cpu", False, console, runner=fail_on_seed_1)
    assert sorted((o.record["model"], o.record["seed"]) for o in outcomes) == [("Markov", 0), ("Popularity", 0)]
    text = out.getvalue()
    assert "Popularity/default on synthetic seed 1: FAILED BenchError: injected failure for Popularity seed 1" in text
    assert "2 of 4 run(s) failed" in text
    assert sorted(p.name for p in tmp_path.rglob("*.json")) == sorted(o.path.name for o in outcomes)


def test_a_worker_killed_mid_run_is_retried(ray_cluster, tmp_path: Path, isolated_home: Path) -> None:
    console, out = quiet_console()
    items = smoke_grid(tmp_path)[:2]
    outcomes = run_grid_ray(items, tmp_path, None, "cpu", False, console, runner=die_once, max_retries=1)
    assert len(outcomes) == 2 and all(o.path.is_file() for o in outcomes)
    assert (isolated_home / "died-Popularity-0").exists()  # the first attempt really died
    assert "FAILED" not in out.getvalue()


def test_a_worker_that_keeps_dying_leaves_no_result_file(ray_cluster, tmp_path: Path) -> None:
    console, out = quiet_console()
    items = smoke_grid(tmp_path)[:1]
    assert run_grid_ray(items, tmp_path, None, "cpu", False, console, runner=die_always, max_retries=0) == []
    assert "FAILED" in out.getvalue() and "1 of 1 run(s) failed" in out.getvalue()
    assert not list(tmp_path.rglob("*.json")) and not list(tmp_path.rglob("*.npz"))


def test_a_gpu_request_the_cluster_cannot_meet_is_an_error(ray_cluster, tmp_path: Path) -> None:
    if ray_cluster.cluster_resources().get("GPU", 0):
        pytest.skip("this Ray cluster has a GPU")
    console, _ = quiet_console()
    with pytest.raises(BenchError, match=r"asks for 1 GPU\(s\) but the Ray cluster has 0"):
        run_grid_ray(smoke_grid(tmp_path)[:1], tmp_path, None, "cuda", False, console)


@pytest.mark.parametrize("fail_at", [1, 2])
def test_an_interrupted_result_write_leaves_no_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    fail_at: int) -> None:
    """The store renames sidecar then JSON into place; dying at either rename leaves no JSON and no temp file."""
    calls = []
    real_replace = os.replace

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == fail_at:
            raise KeyboardInterrupt  # stands in for a kill between write and rename
        real_replace(src, dst)

    monkeypatch.setattr(results.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        run(RunSpec("Popularity", "synthetic", profile="smoke"), results_dir=tmp_path, show_progress=False)
    assert not list(tmp_path.rglob("*.json")) and not list(tmp_path.rglob("*.tmp"))


def test_address_needs_the_ray_executor(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="--address needs --executor ray"):
        run_grid_with("local", [], tmp_path, None, "cpu", False, Console(), address="auto")
    with pytest.raises(BenchError, match="unknown executor 'dask'"):
        run_grid_with("dask", [], tmp_path, None, "cpu", False, Console())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_existing_cluster_by_address(tmp_path: Path, isolated_home: Path) -> None:
    """`ray start --head` in its own process group stands in for a cluster; the grid connects by address.

    The head's workers take their environment from the head (as on a real cluster), not from this driver.
    """
    ray = import_ray()
    if ray.is_initialized():
        ray.shutdown()  # the module's in-process Ray: this test drives a separate head
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "EAGER_BENCH_HOME": str(isolated_home)}
    temp_dir = tempfile.mkdtemp(prefix="ebray")  # short (socket paths) and ours: /tmp/ray stays untouched
    head = subprocess.Popen([str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
                             "--port", str(port), "--num-cpus", "2", "--include-dashboard", "false",
                             "--ray-client-server-port", str(free_port()), "--dashboard-agent-listen-port",
                             str(free_port()), "--temp-dir", temp_dir],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        console, out = quiet_console()
        items = smoke_grid(tmp_path / "ray")[:2]
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:  # the head needs a few seconds before it accepts drivers
            try:
                outcomes = run_grid_ray(items, tmp_path / "ray", None, "cpu", False, console, address=address)
                break
            except BenchError:
                if time.monotonic() > deadline or head.poll() is not None:
                    raise
                time.sleep(2)
        assert not ray.is_initialized()  # the driver disconnected; the cluster stays up
        local = [run(item.spec, results_dir=tmp_path / "local", show_progress=False) for item in items]
        assert [o.record["metrics"] for o in outcomes] == [o.record["metrics"] for o in local]
        assert [o.path.name for o in outcomes] == [o.path.name for o in local]
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # the head and every process it started share its process group
        head.wait(timeout=60)
        shutil.rmtree(temp_dir, ignore_errors=True)
