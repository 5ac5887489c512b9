"""Fetch the public S3-Rec files into the data directory and verify them, as RecBole does on first use.

The interaction and attribute files come from the S3-Rec repository (aHuiWang/CIKM2020-S3Rec, pinned commit). The
aligned item-text files have no single public origin (they were assembled from several repositories, see the data
README); they are fetched from a mirror when one is configured (--mirror or EAGER_BENCH_MIRROR, laid out as
`<mirror>/<Dataset>/<file>`), else the error says what to provide.
"""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from eager_bench import settings
from eager_bench.data.s3rec import ATTRIBUTES, ITEM_TEXT, INTERACTIONS, dataset_files, known_checksums, sha256_file
from eager_bench.errors import BenchError

S3REC_COMMIT = "49a890dcb516c9ed3126564495234ea74d5cd566"
S3REC_RAW = f"https://raw.githubusercontent.com/aHuiWang/CIKM2020-S3Rec/{S3REC_COMMIT}/data"


def source_urls(name: str, mirror: str | None = None) -> dict[str, str | None]:
    """Where each required file of a dataset is downloaded from (None: no public source without a mirror)."""
    mirror = mirror or os.environ.get(settings.MIRROR_ENV)
    urls: dict[str, str | None] = {}
    for pattern in (INTERACTIONS, ATTRIBUTES, ITEM_TEXT):
        filename = pattern.format(name=name)
        if mirror:
            urls[filename] = f"{mirror.rstrip('/')}/{name}/{filename}"
        elif pattern is ITEM_TEXT:
            urls[filename] = None
        else:
            urls[filename] = f"{S3REC_RAW}/{filename}"
    return urls


def _fetch(url: str, target: Path, progress: Progress) -> None:
    """Download to a temporary file beside the target, then rename: a killed download leaves no partial file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        response = urllib.request.urlopen(url, timeout=60)  # noqa: S310 - URL is ours or the user's mirror
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BenchError(f"cannot download {url}: {reason}") from None
    total = int(response.headers.get("Content-Length") or 0) or None
    task = progress.add_task(target.name, total=total)
    handle, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as out, response:
            for block in iter(lambda: response.read(1 << 16), b""):
                out.write(block)
                progress.advance(task, len(block))
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def download_dataset(name: str, data_dir: str | Path | None = None, mirror: str | None = None,
                     force: bool = False, quiet: bool = False) -> list[Path]:
    """Download the missing (or, with force, all) files of a dataset and verify their sha256 sums."""
    root = settings.data_dir(data_dir)
    sums = known_checksums()
    written = []
    urls = source_urls(name, mirror)
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  disable=quiet, transient=True) as progress:
        for filename, url in urls.items():
            target = root / name / filename
            if target.is_file() and not force:
                continue
            if url is None:
                raise BenchError(f"{target} is missing and has no public download: the aligned item text is "
                                 f"assembled from several repositories (see README, 'Data'); copy it there or set "
                                 f"--mirror / {settings.MIRROR_ENV}")
            _fetch(url, target, progress)
            expected = sums.get(f"{name}/{filename}")
            actual = sha256_file(target)
            if expected and actual != expected:
                target.unlink()
                raise BenchError(f"checksum mismatch for {url}: sha256 {actual[:12]}..., expected {expected[:12]}...")
            written.append(target)
    return written


def ensure_dataset(name: str, root: Path) -> None:
    """Download a dataset on first use when its folder is absent; a mistyped data directory is an error instead."""
    if not root.is_dir():
        raise BenchError(f"data directory {root} does not exist (set --data-dir or {settings.DATA_ENV})")
    if not (root / name).exists():
        download_dataset(name, root)
