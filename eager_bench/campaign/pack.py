"""`campaign pack`: what a bare GPU machine needs besides the code (which travels with the working tree): the data
files of the planned datasets, the cached inputs their cells read (built here first where missing), and wheels.

Layout (the folder must be ignored by git, e.g. .device/campaign: .gitignore ignores /.device/):
  <out>/pack.json                   the index: parts, datasets per part, sizes, what to carry in which call
  <out>/part-1/part.json            this part's groups with their sha256, the commit and profile packed
  <out>/part-1/<Dataset>.tar.gz     one group per dataset: data/<Dataset>/..., home/cache/... (+ manifest.json)
  <out>/part-1/common.tar.gz        wheels/*.whl (in every part)
Each part is self-contained for its datasets, so a call that carries only part 2 still runs part 2's cells, and a
call that finds part 1 already staged on a warm machine runs both. Parts are filled in dataset priority order
while they stay under the per-call limit (64 MiB of working tree, minus what the tree itself takes).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from eager_bench import settings
from eager_bench.campaign.archive import sha256_file, write_archive
from eager_bench.campaign.inputs import build_inputs, recording
from eager_bench.campaign.plan import Cell
from eager_bench.errors import BenchError
from eager_bench.provenance import REPO_ROOT, git_state, now_iso

PACK_FORMAT = "eager-bench-campaign-pack/1"
TREE_LIMIT_MIB = 64.0  # the device tool's limit on what travels per call (tree + carried paths)
CODE_PATHS = ("eager_bench", "baselines", "pyproject.toml")
MIB = 1 << 20


def _git(*args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None


def code_changes() -> list[str] | None:
    """Code files that differ from HEAD (modified, added, untracked), or None without git."""
    out = _git("status", "--porcelain", "--", *CODE_PATHS)
    if out is None or out.returncode != 0:
        return None
    return [line[3:] for line in out.stdout.splitlines() if line.strip()]


def travelling_tree_bytes() -> int:
    """Bytes of the files the device tool sends with every call (tracked + untracked-not-ignored)."""
    out = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if out is None or out.returncode != 0:
        return 0
    total = 0
    for name in filter(None, out.stdout.split("\0")):
        path = REPO_ROOT / name
        if path.is_file():
            total += path.stat().st_size
    return total


def check_out_dir(out: Path) -> str | None:
    """A pack inside the repository must be ignored by git (else it travels with every call); returns a warning
    for a folder outside it (the device tool carries only paths inside the repository)."""
    try:
        rel = out.resolve().relative_to(REPO_ROOT)
    except ValueError:
        return f"{out} is outside the repository: the device tool can only carry paths inside it"
    ignored = _git("check-ignore", "-q", str(rel / "part-1"))
    if ignored is not None and ignored.returncode == 1:
        raise BenchError(f"{out} is not ignored by git, so it would travel with every device call; use "
                         ".device/campaign (ignored by .gitignore) or add it to .git/info/exclude")
    return None


def _dataset_files(name: str, data_dir: Path | None) -> list[tuple[str, Path]]:
    """(member, file) of the data files a dataset's loader reads and checksums."""
    from eager_bench.data import load_dataset

    root = settings.data_dir(data_dir).resolve()
    files = []
    for rel in sorted(load_dataset(name, data_dir).file_sha256):
        path = (root / rel).resolve()
        try:
            inside = path.relative_to(root)
        except ValueError:
            raise BenchError(f"dataset {name} reads {rel}, outside the data directory {root}; the campaign packs "
                             "only files under it") from None
        files.append((f"data/{inside.as_posix()}", path))
    return files


def _home_member(path: Path) -> str:
    home = settings.home_dir().resolve()
    try:
        return f"home/{path.resolve().relative_to(home).as_posix()}"
    except ValueError:
        raise BenchError(f"cache file {path} is not under EAGER_BENCH_HOME {home}") from None


def pack(cells: list[Cell], out: Path, data_dir: Path | None, steps: set[str], wheels: Path | None,
         part_mib: float, allow_dirty: bool, plan_args: dict[str, Any], echo=print) -> dict[str, Any]:
    """Build missing inputs (steps, on this CPU), write the parts, return the index written to <out>/pack.json."""
    todo = [c for c in cells if c.state == "to run"]
    if not todo:
        raise BenchError("nothing to pack: every planned cell is committed or unavailable (see `campaign plan`)")
    changed = code_changes()
    if changed and not allow_dirty:
        raise BenchError(f"{len(changed)} code file(s) differ from HEAD (first: {changed[0]}); commit them first so "
                         "the results name the code that made them, or pass --allow-dirty")
    warning = check_out_dir(out)
    if warning:
        echo(f"warning: {warning}")
    git = git_state()
    tree = travelling_tree_bytes()
    limit = min(part_mib, TREE_LIMIT_MIB - tree / MIB - 1.0) * MIB
    if limit <= 4 * MIB:
        raise BenchError(f"the working tree that travels is {tree / MIB:.1f} MiB: no room for a pack part")
    datasets = list(dict.fromkeys(c.dataset for c in todo))

    with tempfile.TemporaryDirectory(prefix="campaign-pack-") as scratch_name:
        scratch = Path(scratch_name)
        groups: list[dict[str, Any]] = []
        wheel_files = sorted(Path(wheels).glob("*.whl")) if wheels else []
        common_meta = {"format": PACK_FORMAT, "group": "common", "dataset": None}
        common = write_archive(scratch / "common.tar.gz", [(f"wheels/{w.name}", w) for w in wheel_files],
                               common_meta)
        common_bytes = (scratch / "common.tar.gz").stat().st_size
        for name in datasets:
            mine = [c for c in todo if c.dataset == name]
            with recording() as touched:
                built = build_inputs(mine, data_dir, "cpu", steps)
            for line in built:
                echo(f"  input ready: {line}")
            cache_files = sorted(p for p in touched if p.is_file())
            members = _dataset_files(name, data_dir) + [(_home_member(p), p) for p in cache_files]
            file = scratch / f"{name}.tar.gz"
            manifest = write_archive(file, members, {"format": PACK_FORMAT, "group": name, "dataset": name,
                                                     "inputs": built})
            size = file.stat().st_size
            if size + common_bytes > limit:
                raise BenchError(f"dataset {name} packs to {size / MIB:.1f} MiB, more than one call can carry "
                                 f"({limit / MIB:.1f} MiB per part beside a {tree / MIB:.1f} MiB tree)")
            groups.append({"name": name, "file": file, "bytes": size, "sha256": sha256_file(file),
                           "files": len(manifest["files"]), "cells": len(mine)})
            echo(f"  {name}: {len(members)} file(s), {size / MIB:.1f} MiB compressed, {len(mine)} cell(s)")

        parts: list[list[dict[str, Any]]] = [[]]
        for group in groups:  # in dataset priority order, never splitting a dataset
            used = common_bytes + sum(g["bytes"] for g in parts[-1])
            if parts[-1] and used + group["bytes"] > limit:
                parts.append([])
            parts[-1].append(group)

        for old in out.glob("part-*"):  # an earlier pack in the same folder
            if (old / "part.json").is_file():
                shutil.rmtree(old)
        out.mkdir(parents=True, exist_ok=True)
        index_parts = []
        for number, members in enumerate(parts, start=1):
            folder = out / f"part-{number}"
            folder.mkdir(parents=True)
            shutil.copyfile(scratch / "common.tar.gz", folder / "common.tar.gz")
            entries = {"common": {"file": "common.tar.gz", "sha256": sha256_file(folder / "common.tar.gz"),
                                  "bytes": common_bytes, "dataset": None, "files": len(common["files"])}}
            for group in members:
                shutil.move(str(group["file"]), folder / group["file"].name)
                entries[group["name"]] = {"file": group["file"].name, "sha256": group["sha256"],
                                          "bytes": group["bytes"], "dataset": group["name"],
                                          "files": group["files"]}
            part = {"format": PACK_FORMAT, "part": number, "of": len(parts), "created": now_iso(),
                    "git_commit": git["git_commit"], "git_dirty": bool(changed), "code_changes": changed or [],
                    "profile": todo[0].profile, "plan": plan_args, "datasets": [g["name"] for g in members],
                    "groups": entries}
            (folder / "part.json").write_text(json.dumps(part, indent=1) + "\n")
            size = sum(e["bytes"] for e in entries.values())
            index_parts.append({"part": number, "folder": str(folder), "datasets": part["datasets"],
                                "bytes": size, "cells": sum(g["cells"] for g in members)})
    index = {"format": PACK_FORMAT, "created": now_iso(), "git_commit": git["git_commit"],
             "git_dirty": bool(changed), "profile": todo[0].profile, "plan": plan_args, "tree_bytes": tree,
             "part_limit_bytes": int(limit), "wheels": [w.name for w in wheel_files], "parts": index_parts,
             "cells": [c.to_dict() for c in todo]}
    (out / "pack.json").write_text(json.dumps(index, indent=1) + "\n")
    return index
