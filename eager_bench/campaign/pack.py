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
    """(member, file) of the data files a dataset's loader reads and checksums, plus every other file of its
    folder in the data directory (side files such as <Name>.alignment.json)."""
    from eager_bench.data import load_dataset

    root = settings.data_dir(data_dir).resolve()
    paths = {(root / rel).resolve() for rel in load_dataset(name, data_dir).file_sha256}
    if (root / name).is_dir():
        paths |= {p.resolve() for p in (root / name).rglob("*") if p.is_file() and not p.name.startswith(".")}
    files = []
    for path in sorted(paths):
        try:
            inside = path.relative_to(root)
        except ValueError:
            raise BenchError(f"dataset {name} reads {path}, outside the data directory {root}; the campaign packs "
                             "only files under it") from None
        files.append((f"data/{inside.as_posix()}", path))
    return files


def _home_member(path: Path) -> str:
    home = settings.home_dir().resolve()
    try:
        return f"home/{path.resolve().relative_to(home).as_posix()}"
    except ValueError:
        raise BenchError(f"cache file {path} is not under EAGER_BENCH_HOME {home}") from None


def assign_parts(sizes: list[int], common: int, limit: float) -> list[list[int]] | None:
    """First fit in priority order: each group (index) goes into the first part with room, so part 1 holds the
    highest-priority datasets; every part also carries `common`. None if a group alone does not fit."""
    parts: list[list[int]] = []
    used: list[int] = []
    for i, size in enumerate(sizes):
        if common + size > limit:
            return None
        for p, total in enumerate(used):
            if total + size <= limit:
                parts[p].append(i)
                used[p] += size
                break
        else:
            parts.append([i])
            used.append(common + size)
    return parts


def pack(cells: list[Cell], out: Path, data_dir: Path | None, steps: set[str], wheels: Path | None,
         part_mib: float, allow_dirty: bool, plan_args: dict[str, Any], max_parts: int = 2,
         echo=print) -> dict[str, Any]:
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
            # two passes: what the GPU machine cannot make (text embeddings), then what it could rebuild
            with recording() as needed:
                built = build_inputs(mine, data_dir, "cpu", steps & {"text"})
            with recording() as rebuildable:
                built += [line for line in build_inputs(mine, data_dir, "cpu", steps) if line not in built]
            for line in built:
                echo(f"  input ready: {line}")
            needed_files = sorted(p for p in needed if p.is_file())
            extra_files = sorted(p for p in rebuildable - needed if p.is_file())
            data = _dataset_files(name, data_dir)
            group = {"name": name, "cells": len(mine)}
            for kind, members in (("full", data + [(_home_member(p), p) for p in needed_files + extra_files]),
                                  ("lean", data + [(_home_member(p), p) for p in needed_files])):
                if kind == "lean" and not extra_files:
                    group["lean"] = group["full"]
                    continue
                file = scratch / kind / f"{name}.tar.gz"
                manifest = write_archive(file, members, {"format": PACK_FORMAT, "group": name, "dataset": name,
                                                         "inputs": built if kind == "full" else
                                                         [b for b in built if "text embeddings" in b]})
                group[kind] = {"file": file, "bytes": file.stat().st_size, "sha256": sha256_file(file),
                               "files": len(manifest["files"])}
            groups.append(group)
            echo(f"  {name}: {len(mine)} cell(s); {group['full']['bytes'] / MIB:.1f} MiB with DIN and codes, "
                 f"{group['lean']['bytes'] / MIB:.1f} MiB with data and text embeddings only")

        choice = {g["name"]: "full" for g in groups}
        dropped: list[str] = []
        while True:
            kept = [g for g in groups if g["name"] not in dropped]
            parts = assign_parts([g[choice[g["name"]]]["bytes"] for g in kept], common_bytes, limit)
            if parts is not None and len(parts) <= max_parts:
                break
            full = [g["name"] for g in kept if choice[g["name"]] == "full" and g["full"] is not g["lean"]]
            if full:  # the lowest-priority dataset leaves its DIN and codes to the GPU machine
                choice[full[-1]] = "lean"
                continue
            if len(kept) <= 1:
                raise BenchError(f"dataset {kept[0]['name']} packs to {kept[0]['lean']['bytes'] / MIB:.1f} MiB, "
                                 f"more than one call can carry ({limit / MIB:.1f} MiB per part beside a "
                                 f"{tree / MIB:.1f} MiB tree)")
            dropped.append(kept[-1]["name"])  # it waits for the next pack
        for name in dropped:
            echo(f"  not packed (no room in {max_parts} part(s); pack it next time): {name}")
        for name, kind in choice.items():
            if kind == "lean" and name not in dropped:
                echo(f"  {name}: packed without DIN and codes (the GPU machine builds them first)")
        parts = [[{**kept[i][choice[kept[i]["name"]]], "name": kept[i]["name"], "cells": kept[i]["cells"]}
                  for i in part] for part in parts]

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
                shutil.move(str(group["file"]), folder / f"{group['name']}.tar.gz")
                entries[group["name"]] = {"file": f"{group['name']}.tar.gz", "sha256": group["sha256"],
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
             "not_packed": dropped, "cells": [c.to_dict() for c in todo if c.dataset not in dropped]}
    (out / "pack.json").write_text(json.dumps(index, indent=1) + "\n")
    return index
