"""Datasets that are not hard-coded in the registry, in the order a name is looked up:

1. the entry-point group `eager_bench.datasets` (a package adds datasets as it adds models): the object an entry
   point names is a DatasetSpec, a callable `(data_dir: Path) -> SequenceDataset`, or a folder (str / Path) in one
   of the two formats below;
2. `datasets.yaml` in the data directory: `NAME: {path: folder, format: s3rec|recbole, stem: file stem,
   description: text}`, every key optional (path defaults to NAME, relative paths are relative to the data directory;
   stem defaults to the folder's name; format is detected from the files);
3. a folder `NAME/` in the data directory holding `NAME.txt` (S3-Rec) or `NAME.inter` (RecBole atomic).
"""

from __future__ import annotations

import re
from dataclasses import replace
from importlib.metadata import EntryPoint, entry_points
from os import PathLike
from pathlib import Path
from typing import Any, Callable

import yaml

from eager_bench.data.dataset import SequenceDataset
from eager_bench.data.spec import DatasetSpec
from eager_bench.errors import BenchError

GROUP = "eager_bench.datasets"
CONFIG = "datasets.yaml"
FORMATS = {"s3rec": ".txt", "recbole": ".inter"}  # format -> the file that must exist, as <stem><suffix>
CONFIG_KEYS = ("path", "format", "stem", "description")
# A name becomes a results folder and a cache-file prefix: no separators, no leading dot.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def detect_format(folder: Path, stem: str) -> str:
    found = [fmt for fmt, suffix in FORMATS.items() if (folder / f"{stem}{suffix}").is_file()]
    if len(found) == 1:
        return found[0]
    if found:
        raise BenchError(f"dataset folder {folder} has both {stem}.txt and {stem}.inter: keep one, or name the "
                         f"format in {CONFIG} (format: s3rec | recbole)")
    raise BenchError(f"dataset folder {folder} has neither {stem}.txt (S3-Rec) nor {stem}.inter (RecBole atomic)")


def read_folder(name: str, folder: Path, stem: str, fmt: str) -> SequenceDataset:
    if not folder.is_dir():
        raise BenchError(f"dataset {name}: folder {folder} does not exist")
    required = folder / f"{stem}{FORMATS[fmt]}"
    if not required.is_file():
        raise BenchError(f"dataset {name}: {required} does not exist (format {fmt})")
    if fmt == "s3rec":
        from eager_bench.data.s3rec_folder import read_s3rec_folder

        return read_s3rec_folder(name, folder, stem)
    from eager_bench.data.recbole_atomic import read_recbole_folder

    return read_recbole_folder(name, folder, stem)


def folder_spec(name: str, folder: Path, kind: str = "user", stem: str | None = None, fmt: str | None = None,
                description: str | None = None) -> DatasetSpec:
    """A spec reading `folder`; the format is fixed now (so `run --all` fails before training on a folder that
    holds neither format), the files are parsed on load."""
    stem = stem or folder.name
    fmt = fmt or detect_format(folder, stem)
    return DatasetSpec(name, kind, description or f"{fmt} files {folder / stem}.*",
                       lambda _root: read_folder(name, folder, stem, fmt), folder=folder)


# --------------------------------------------------------------------------------------------------- entry points
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def _plugin_loader(name: str, where: str, make: Callable[[Path], Any]) -> Callable[[Path], SequenceDataset]:
    def load(root: Path) -> SequenceDataset:
        dataset = make(root)
        if not isinstance(dataset, SequenceDataset):
            raise BenchError(f"dataset {name!r} ({where}) returned {type(dataset).__name__}, not a SequenceDataset")
        if dataset.name != name:  # caches and result folders go by the name users type
            dataset.name = name
        return dataset

    return load


def plugin_spec(name: str, entry: EntryPoint) -> DatasetSpec:
    try:
        target = entry.load()
    except Exception as exc:  # a broken plugin must not take the CLI down with a traceback
        raise BenchError(f"dataset {name!r} ({entry.value}) failed to import: {exc}") from None
    if isinstance(target, DatasetSpec):
        return replace(target, name=name)  # results and caches go by the name users type
    if isinstance(target, (str, PathLike)):
        return folder_spec(name, Path(target), kind="plugin", description=f"plugin {entry.value}")
    if callable(target):
        doc = (getattr(target, "__doc__", None) or "").strip().splitlines()
        return DatasetSpec(name, "plugin", doc[0] if doc else f"plugin {entry.value}",
                           _plugin_loader(name, entry.value, target))
    raise BenchError(f"dataset {name!r} ({entry.value}) is not a DatasetSpec, a loader or a folder")


# ----------------------------------------------------------------------------------------------- datasets.yaml
def read_config(root: Path) -> dict[str, dict[str, Any]]:
    path = root / CONFIG
    if not path.is_file():
        return {}
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise BenchError(f"{path}{f':{mark.line + 1}' if mark else ''}: malformed YAML") from None
    if not isinstance(raw, dict):
        raise BenchError(f"{path}: expected a mapping NAME: {{path, format, stem, description}}")
    entries = {}
    for name, entry in raw.items():
        entry = entry or {}
        if not isinstance(entry, dict):
            raise BenchError(f"{path}: entry {name!r} must be a mapping with keys {', '.join(CONFIG_KEYS)}")
        unknown = sorted(set(entry) - set(CONFIG_KEYS))
        if unknown:
            raise BenchError(f"{path}: entry {name!r}: unknown key {unknown[0]!r} (known: {', '.join(CONFIG_KEYS)})")
        if entry.get("format") is not None and entry["format"] not in FORMATS:
            raise BenchError(f"{path}: entry {name!r}: format must be one of {', '.join(FORMATS)}, "
                             f"got {entry['format']!r}")
        entries[str(name)] = entry
    return entries


def config_spec(name: str, entry: dict[str, Any], root: Path) -> DatasetSpec:
    folder = Path(str(entry.get("path") or name)).expanduser()
    folder = folder if folder.is_absolute() else root / folder
    if not folder.is_dir():
        raise BenchError(f"{root / CONFIG}: entry {name!r}: folder {folder} does not exist")
    return folder_spec(name, folder, stem=entry.get("stem"), fmt=entry.get("format"),
                       description=entry.get("description"))


# ------------------------------------------------------------------------------------------------------ lookup
def find_spec(name: str, root: Path) -> DatasetSpec | None:
    """The spec `name` resolves to outside the registry (see the module docstring), or None."""
    plugins = _entry_points()
    if name in plugins:
        return plugin_spec(name, plugins[name])
    config = read_config(root)
    if name in config:
        return config_spec(name, config[name], root)
    if NAME.fullmatch(name) and (root / name).is_dir():
        return folder_spec(name, root / name)
    return None


def _listed_folder(folder: Path) -> DatasetSpec:
    """A folder for `data list`: one that cannot be loaded (both formats in it) is listed with the reason, so one
    odd folder does not hide the others."""
    try:
        return folder_spec(folder.name, folder)
    except BenchError as exc:
        def refuse(_root: Path) -> SequenceDataset:
            raise exc

        return DatasetSpec(folder.name, "user", f"cannot load: {exc}", refuse, folder=folder)


def discovered_specs(root: Path, taken: set[str]) -> list[DatasetSpec]:
    """Every dataset `find_spec` would resolve that is not in `taken` (for `data list`); a folder that holds
    neither format is not a dataset and is skipped rather than reported."""
    specs = [plugin_spec(name, ep) for name, ep in sorted(_entry_points().items()) if name not in taken]
    seen = taken | {s.name for s in specs}
    config = read_config(root)
    specs += [config_spec(name, entry, root) for name, entry in config.items() if name not in seen]
    seen |= set(config)
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            if folder.name in seen or not folder.is_dir() or not NAME.fullmatch(folder.name):
                continue
            if any((folder / f"{folder.name}{suffix}").is_file() for suffix in FORMATS.values()):
                specs.append(_listed_folder(folder))
    return specs
