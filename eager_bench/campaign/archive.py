"""Checksummed tar.gz archives: every archive carries `manifest.json` with the sha256 and size of each other member.

Reading verifies everything before anything is used: only regular files, no absolute or `..` paths, every member
listed in the manifest with the same sha256, every listed file present. A mismatch is one BenchError line naming the
member, so a truncated transfer or an edited file is refused instead of being copied into results/.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from eager_bench.errors import BenchError

MANIFEST = "manifest.json"
SHUFFLED = ".shuffle4"  # a member stored byte-plane shuffled (float32 .npy: ~8% smaller compressed), restored on read


def shuffle4(data: bytes) -> bytes:
    """Bytes regrouped by their position in each 4-byte word (all first bytes, then all second bytes, ...): the
    exponent bytes of float32 data then compress well. len(data) must be a multiple of 4."""
    import numpy as np

    return np.frombuffer(data, dtype=np.uint8).reshape(-1, 4).T.tobytes()


def unshuffle4(data: bytes) -> bytes:
    import numpy as np

    return np.frombuffer(data, dtype=np.uint8).reshape(4, -1).T.tobytes()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def safe_member(name: str) -> str:
    """A member name as a clean relative POSIX path, or a BenchError."""
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or any(part in ("..", "") for part in path.parts) or "\\" in name:
        raise BenchError(f"archive member {name!r}: not a plain relative path")
    return str(path)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0  # fixed metadata: same inputs, same archive bytes
    tar.addfile(info, io.BytesIO(data))


def write_archive(path: Path, files: Iterable[tuple[str, Path | bytes]], meta: dict[str, Any],
                  level: int = 6, shuffle_suffixes: tuple[str, ...] = (".npy",)) -> dict[str, Any]:
    """Write `path` (tar.gz) with `files` ((member name, source file or bytes), in the order given) and a manifest
    holding `meta` plus {"files": {name: {"sha256", "bytes"}}} (sha256 of the original bytes). Members ending in
    `shuffle_suffixes` are stored byte-shuffled under name + SHUFFLED. Returns the manifest."""
    entries: list[tuple[str, bytes]] = []
    listed: dict[str, dict[str, Any]] = {}
    for name, source in files:
        name = safe_member(name)
        if name == MANIFEST or name in listed:
            raise BenchError(f"archive {path.name}: member {name} given twice")
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        entries.append((name, data))
        listed[name] = {"sha256": sha256_bytes(data), "bytes": len(data)}
    manifest = {**meta, "files": listed}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=level, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
        for name, data in entries:
            if name.endswith(shuffle_suffixes) and len(data) % 4 == 0:
                _add(tar, name + SHUFFLED, shuffle4(data))
            else:
                _add(tar, name, data)
    tmp.replace(path)
    return manifest


def read_archive(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(manifest, {member: bytes}) of an archive written by write_archive, every member verified."""
    if not path.is_file():
        raise BenchError(f"{path}: no such archive")
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for info in tar:
                name = safe_member(info.name)
                if not info.isfile():
                    raise BenchError(f"{path.name}: member {name} is not a regular file")
                if name in members:
                    raise BenchError(f"{path.name}: member {name} appears twice")
                handle = tar.extractfile(info)
                data = handle.read() if handle else b""
                if name.endswith(SHUFFLED):
                    if len(data) % 4:
                        raise BenchError(f"{path.name}: member {name} is damaged (length not a multiple of 4)")
                    name, data = name[: -len(SHUFFLED)], unshuffle4(data)
                    if name in members:
                        raise BenchError(f"{path.name}: member {name} appears twice")
                members[name] = data
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile) as exc:
        raise BenchError(f"{path}: unreadable archive ({exc})") from None
    if MANIFEST not in members:
        raise BenchError(f"{path.name}: no {MANIFEST} inside; not an eager-bench campaign archive")
    try:
        manifest = json.loads(members.pop(MANIFEST))
        listed = manifest["files"]
    except (ValueError, KeyError, TypeError):
        raise BenchError(f"{path.name}: {MANIFEST} is malformed") from None
    for name, data in members.items():
        if name not in listed:
            raise BenchError(f"{path.name}: member {name} is not in the manifest")
        if sha256_bytes(data) != listed[name].get("sha256"):
            raise BenchError(f"{path.name}: member {name} does not match its sha256 in the manifest "
                             "(changed or damaged after packing)")
    missing = sorted(set(listed) - set(members))
    if missing:
        raise BenchError(f"{path.name}: {len(missing)} file(s) of the manifest are missing (first: {missing[0]})")
    return manifest, members
