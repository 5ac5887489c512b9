"""Data layer: statistics match the data README, checksums are enforced, bad files give one clear error."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from eager_bench.data import load_dataset
from eager_bench.data.download import download_dataset
from eager_bench.data.registry import _CACHE
from eager_bench.data.s3rec import load_s3rec
from eager_bench.data.synthetic import make_synthetic
from eager_bench.errors import BenchError

README_STATS = {  # ../shared/data/README.md, "Statistics"
    "Beauty": (22_363, 12_101, 198_502, 8.88),
    "Sports_and_Outdoors": (35_598, 18_357, 296_337, 8.32),
    "Toys_and_Games": (19_412, 11_924, 167_597, 8.63),
    "Yelp": (30_431, 20_033, 316_354, 10.40),
}


@pytest.mark.parametrize("name", sorted(README_STATS))
def test_stats_match_data_readme(data_dir: Path, name: str) -> None:
    stats = load_dataset(name, data_dir).stats()
    assert (stats["users"], stats["items"], stats["interactions"], stats["avg_len"]) == README_STATS[name]


def test_item_text_is_aligned_to_ids(data_dir: Path) -> None:
    beauty = load_dataset("Beauty", data_dir)
    assert len(beauty.item_records) == beauty.n_items
    assert all(record["id"] == i + 1 for i, record in enumerate(beauty.item_records))


def _copy_dataset(data_dir: Path, tmp_path: Path, name: str = "Beauty") -> Path:
    root = tmp_path / "data"
    shutil.copytree(data_dir / name, root / name)
    for path in (root / name).iterdir():
        path.chmod(0o644)
    _CACHE.clear()
    return root


def test_checksum_mismatch_is_a_clear_error(data_dir: Path, tmp_path: Path) -> None:
    root = _copy_dataset(data_dir, tmp_path)
    with (root / "Beauty" / "Beauty.txt").open("a") as handle:
        handle.write("99999 1 2 3\n")
    with pytest.raises(BenchError, match=r"checksum mismatch for .*Beauty\.txt"):
        load_s3rec(root, "Beauty")


def test_missing_file_names_the_file(data_dir: Path, tmp_path: Path) -> None:
    root = _copy_dataset(data_dir, tmp_path)
    (root / "Beauty" / "Beauty_item2attributes.json").unlink()
    with pytest.raises(BenchError, match=r"missing data file .*Beauty_item2attributes\.json"):
        load_s3rec(root, "Beauty")


@pytest.mark.parametrize(
    "content, message",
    [("1 2 x 4\n", r"Toy\.txt:1: non-integer id 'x'"), ("", "empty interactions file"), ("1\n", "has no items")],
)
def test_malformed_interactions_name_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    # An unregistered name has no known checksum, so parsing is what fails.
    folder = tmp_path / "Toy"
    folder.mkdir()
    (folder / "Toy.txt").write_text(content)
    (folder / "Toy_item2attributes.json").write_text("{}")
    (folder / "Toy.items.jsonl").write_text("")
    with pytest.raises(BenchError, match=message):
        load_s3rec(tmp_path, "Toy")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def mirror(data_dir: Path, tmp_path: Path):
    """A local HTTP server on 127.0.0.1 serving a copy of the data folder (there is no internet here)."""
    served = tmp_path / "mirror"
    shutil.copytree(data_dir / "Beauty", served / "Beauty")
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", served
    server.shutdown()
    server.server_close()


def test_download_fetches_and_verifies(mirror, tmp_path: Path) -> None:
    url, _ = mirror
    target = tmp_path / "downloaded"
    written = download_dataset("Beauty", target, mirror=url, quiet=True)
    assert sorted(p.name for p in written) == ["Beauty.items.jsonl", "Beauty.txt", "Beauty_item2attributes.json"]
    assert load_s3rec(target, "Beauty").n_users == 22_363
    assert download_dataset("Beauty", target, mirror=url, quiet=True) == []  # present files are kept


def test_download_rejects_a_corrupted_mirror_and_leaves_no_file(mirror, tmp_path: Path) -> None:
    url, served = mirror
    (served / "Beauty" / "Beauty.txt").write_text("1 2 3\n")
    target = tmp_path / "downloaded"
    with pytest.raises(BenchError, match="checksum mismatch"):
        download_dataset("Beauty", target, mirror=url, quiet=True)
    assert not (target / "Beauty" / "Beauty.txt").exists()


def test_run_downloads_a_missing_dataset_on_first_use(mirror, tmp_path: Path, monkeypatch) -> None:
    url, _ = mirror
    monkeypatch.setenv("EAGER_BENCH_MIRROR", url)
    root = tmp_path / "fresh"
    root.mkdir()
    _CACHE.clear()
    assert load_dataset("Beauty", root).n_items == 12_101
    assert (root / "Beauty" / "Beauty.txt").is_file()


def test_download_from_an_unreachable_host_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="cannot download http://127.0.0.1:9/Beauty/Beauty.txt"):
        download_dataset("Beauty", tmp_path, mirror="http://127.0.0.1:9", quiet=True)


def test_small_datasets() -> None:
    ml = load_dataset("ml-100k")
    assert (ml.n_users, ml.n_items, ml.n_interactions) == (943, 1682, 100_000)
    assert ml.item_records[0]["title"] == "Toy Story"
    first = make_synthetic(seed=3)
    again = make_synthetic(seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(first.sequences, again.sequences))
    assert {int(i) for s in first.sequences for i in s} == set(range(1, first.n_items + 1))
