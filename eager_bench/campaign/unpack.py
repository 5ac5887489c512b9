"""`campaign unpack`: verify the archive a GPU call returned and add its files to results/ (and its caches to
EAGER_BENCH_HOME). Everything is checked before anything is written: the sha256 manifest, every result file read back
with the suite's own reader (schema version, required keys) with its ranks sidecar beside it and its path matching its
dataset, model and run id; a file that would replace a different existing one is refused (identical ones are
reported as already present). Logs stay in the archive."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Callable

from eager_bench.campaign.archive import read_archive
from eager_bench.campaign.execute import RESULTS_FORMAT
from eager_bench.errors import BenchError
from eager_bench.results import atomic_write_bytes, ranks_path, read_run, result_path


def _archives(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = [p for p in [path / "results.tar.gz", *sorted(path.glob("caches*.tar.gz"))] if p.is_file()]
            if not inside:
                raise BenchError(f"{path}: no results.tar.gz or caches.tar.gz inside")
            found += inside
        else:
            found.append(path)
    return found


def _check_record(name: str, data: bytes, members: dict[str, bytes], archive: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / Path(name).name
        probe.write_bytes(data)
        try:
            record = read_run(probe)
        except BenchError as exc:
            raise BenchError(f"{archive}: {name}: {str(exc).split(': ', 1)[-1]}") from None
    rel = name[len("results/"):]
    expected = result_path(Path("."), record["dataset"], record["model"], record["run_id"]).as_posix()
    if rel != expected:
        raise BenchError(f"{archive}: {name} holds {record['model']} on {record['dataset']} run {record['run_id']}, "
                         f"which belongs at results/{expected}")
    if f"results/{ranks_path(Path(rel)).as_posix()}" not in members:
        raise BenchError(f"{archive}: {name} has no ranks sidecar beside it")
    if "hardware" not in record["provenance"]:
        raise BenchError(f"{archive}: {name} records no hardware in its provenance")
    return record


def unpack(paths: list[Path], results_dir: Path, home: Path, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Verify every archive, then copy: results/... -> results_dir, benchmarks/... -> results_dir/benchmarks,
    home/... -> home. Returns {"added": [...], "present": [...], "warnings": [...]}."""
    from eager_bench.runner import RunSpec, prepare

    plans: list[tuple[Path, bytes, str]] = []  # (destination, bytes, archive name)
    warnings: list[str] = []
    for archive in _archives(paths):
        manifest, members = read_archive(archive)
        if manifest.get("format") != RESULTS_FORMAT:
            raise BenchError(f"{archive.name}: not a campaign results archive (format {manifest.get('format')!r})")
        cells = {(c["dataset"], c["model"], c["run_id"]): c for c in manifest.get("cells", [])}
        for name in sorted(members, key=lambda n: (n.endswith(".json"), n)):  # sidecars before their JSON
            data = members[name]
            top, _, rest = name.partition("/")
            if top == "results":
                if name.endswith(".json"):
                    record = _check_record(name, data, members, archive.name)
                    cell = cells.get((record["dataset"], record["model"], record["run_id"]))
                    if cell is not None:
                        try:
                            here = prepare(RunSpec(model=cell["model"], dataset=cell["dataset"],
                                                   profile=cell["profile"], seed=cell["seed"],
                                                   variant=cell["variant"], overrides=cell["overrides"] or None))[3]
                        except BenchError as exc:
                            here = f"unplannable here ({exc})"
                        if here != record["run_id"]:
                            warnings.append(f"{name}: this checkout plans that cell as {here}; the file keeps its id "
                                            "(the code changed since the pack)")
                elif not name.endswith(".ranks.npz"):
                    raise BenchError(f"{archive.name}: unexpected member {name}")
                plans.append((results_dir / rest, data, archive.name))
            elif top == "benchmarks":
                try:
                    json.loads(data)
                except ValueError:
                    raise BenchError(f"{archive.name}: {name} is not JSON") from None
                plans.append((results_dir / "benchmarks" / rest, data, archive.name))
            elif top == "home":
                plans.append((home / rest, data, archive.name))
            elif top != "logs":
                raise BenchError(f"{archive.name}: unexpected member {name}")
    conflicts = [dest for dest, data, _ in plans if dest.is_file() and dest.read_bytes() != data]
    if conflicts:
        raise BenchError(f"{len(conflicts)} returned file(s) differ from files already there, refusing to replace "
                         f"them (first: {conflicts[0]}); move the old file away if the new one should win")
    added, present = [], []
    for dest, data, _ in plans:
        if dest.is_file():
            present.append(str(dest))
            continue
        atomic_write_bytes(dest, data)
        added.append(str(dest))
    for dest in added:
        if dest.endswith(".json") and "/benchmarks/" not in dest:
            echo(f"added {dest}")
    return {"added": added, "present": present, "warnings": warnings}
