"""Bring your own dataset: a folder in S3-Rec or RecBole atomic format runs every model with no code change; ids are
re-indexed with the mapping saved; file sums reach provenance; bad files give one line naming file and line."""

from __future__ import annotations

import hashlib
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from eager_bench.cli import main
from eager_bench.data import load_dataset
from eager_bench.data.notes import collecting
from eager_bench.data.text_source import semantic_kind
from eager_bench.errors import BenchError
from eager_bench.models.registry import model_names

N_USERS, N_ITEMS, N_TOPICS = 60, 40, 4
COLORS = ["red", "blue", "green", "amber"]


def walks(seed: int = 0) -> list[list[int]]:
    """Per user a walk round one topic's ring of items (0-based), a little noise: learnable, every item used."""
    rng = np.random.default_rng(seed)
    rings = [[i for i in range(N_ITEMS) if i % N_TOPICS == t] for t in range(N_TOPICS)]
    users = []
    for u in range(N_USERS):
        ring, pos = rings[u % N_TOPICS], int(rng.integers(N_ITEMS // N_TOPICS))
        seq = []
        for _ in range(int(rng.integers(5, 10))):
            pos = (pos + 1) % len(ring)
            seq.append(int(rng.integers(N_ITEMS)) if rng.random() < 0.1 else ring[pos])
        users.append(seq)
    users[0][: N_ITEMS // 2] = list(range(N_ITEMS // 2))  # every item occurs, so the catalogue is all 40
    users[1][: N_ITEMS // 2] = list(range(N_ITEMS // 2, N_ITEMS))
    return users


def s3rec_raw(i: int) -> int:
    return 1000 + 7 * i  # raw ids with gaps: the reader must re-index them to 1..40


def write_s3rec(root: Path, name: str, text: bool = True, attributes: bool = True) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    lines = [" ".join(str(x) for x in [500 + 3 * u, *(s3rec_raw(i) for i in seq)]) for u, seq in enumerate(walks())]
    (folder / f"{name}.txt").write_text("\n".join(lines) + "\n")
    if attributes:
        attrs = {str(s3rec_raw(i)): [i % N_TOPICS, 10 + i % 3, 20 + i % 5] for i in range(N_ITEMS)}
        (folder / f"{name}_item2attributes.json").write_text(json.dumps(attrs))
    if text:
        with (folder / f"{name}.items.jsonl").open("w") as out:
            for i in reversed(range(N_ITEMS)):  # any order: records are matched by id
                out.write(json.dumps({"id": s3rec_raw(i), "title": f"{COLORS[i % N_TOPICS]} thing {i}",
                                      "categories": [["Shop", f"{COLORS[i % N_TOPICS]} things"]]}) + "\n")
    return folder


def write_recbole(root: Path, name: str, text: bool = True) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    rows = []
    for u, seq in enumerate(walks()):
        for pos, i in enumerate(seq):
            rows.append((f"u{u:03d}", f"sku-{i:02d}", 1_600_000_000 + 60 * pos, f"{(u + pos) % 5}.0"))
    order = np.random.default_rng(1).permutation(len(rows))  # file order is not time order
    body = "".join(f"{rows[r][0]}\t{rows[r][1]}\t{rows[r][3]}\t{rows[r][2]}\n" for r in order)
    (folder / f"{name}.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + body)
    if text:
        item_rows = "".join(f"sku-{i:02d}\t{COLORS[i % N_TOPICS]} thing {i}\t{COLORS[i % N_TOPICS]}\t{i}.5\n"
                            for i in range(N_ITEMS))
        (folder / f"{name}.item").write_text("item_id:token\ttitle:token_seq\tcolor:token\tprice:float\n"
                                             + item_rows)
    return folder


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The real entry point in this process: exit code, stdout, stderr (BenchError -> exit 2 is main()'s job)."""
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["eager-bench", *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.out, out.err


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("EAGER_BENCH_DATA", str(root))
    return root


# ------------------------------------------------------------------------------------------- end to end, CLI
@pytest.mark.slow
@pytest.mark.parametrize("fmt, name", [("s3rec", "ShopTxt"), ("recbole", "ShopAtomic"), ("s3rec", "ShopAttrs")])
def test_every_model_runs_on_a_user_folder(data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           fmt: str, name: str) -> None:
    if fmt == "recbole":
        folder = write_recbole(data_root, name)
    else:
        folder = write_s3rec(data_root, name, text=name != "ShopAttrs")
    results = tmp_path / "results"
    code, out, err = cli(capsys, "run", "--all", "--datasets", name, "--profile", "smoke",
                         "--results-dir", str(results))
    assert code == 0, err
    expected_sums = {f"{name}/{p.name}": sha256(p) for p in folder.iterdir()}
    for model in model_names():
        files = list((results / name / model).glob("*.json"))
        assert files, (model, out)  # one per planned variant (SASRec: default and tuned)
        for path in files:
            record = json.loads(path.read_text())
            assert record["provenance"]["data_files"] == expected_sums
            fallback = [n for n in record["notes"] if "attribute embeddings instead" in n]
            uses_text = model in ("EAGER", "TIGER")
            assert bool(fallback) == (uses_text and name == "ShopAttrs"), (model, record["notes"])


def test_text_models_refuse_a_dataset_with_neither_text_nor_attributes(
        data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_recbole(data_root, "ShopBare", text=False)
    results = tmp_path / "results"
    code, _, err = cli(capsys, "run", "--model", "TIGER", "--dataset", "ShopBare", "--profile", "smoke",
                       "--results-dir", str(results))
    assert code == 2
    assert "ShopBare/ShopBare.item" in err and "TIGER" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not list(results.rglob("*.json"))
    # a model that needs no text runs on the same folder
    code, _, err = cli(capsys, "run", "--model", "Popularity", "--dataset", "ShopBare", "--profile", "smoke",
                       "--results-dir", str(results))
    assert code == 0, err


def test_data_stats_on_a_user_folder(data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_recbole(data_root, "ShopAtomic")
    code, out, err = cli(capsys, "data", "stats", "--dataset", "ShopAtomic", "--json")
    assert code == 0, err
    stats = json.loads(out)
    assert (stats["users"], stats["items"], stats["format"]) == (N_USERS, N_ITEMS, "recbole")
    assert stats["interactions"] == sum(len(s) for s in walks())
    assert Path(stats["id_map"]).is_file()
    (data_root / "Both").mkdir()
    (data_root / "Both" / "Both.txt").write_text("1 2 3 4\n")
    (data_root / "Both" / "Both.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n")
    code, out, err = cli(capsys, "data", "list")
    assert code == 0, err
    assert "ShopAtomic" in out and "user" in out and "Both" in out  # one odd folder does not hide the others


# --------------------------------------------------------------------------------------- reading and re-indexing
def test_s3rec_folder_is_reindexed_with_the_mapping_saved(data_root: Path) -> None:
    write_s3rec(data_root, "ShopTxt")
    ds = load_dataset("ShopTxt")
    assert (ds.n_users, ds.n_items) == (N_USERS, N_ITEMS)
    # ascending raw ids -> 1..n: raw 1000 + 7i is item i + 1
    assert [list(s) for s in ds.sequences] == [[i + 1 for i in seq] for seq in walks()]
    assert ds.item_records[0]["raw_id"] == s3rec_raw(0) and ds.item_records[0]["id"] == 1
    assert ds.attributes[1] and len(ds.attributes) == N_ITEMS
    id_map = json.loads(Path(ds.origin["id_map"]).read_text())
    assert id_map["items"] == [s3rec_raw(i) for i in range(N_ITEMS)]
    assert id_map["users"] == [500 + 3 * u for u in range(N_USERS)]
    assert id_map["files"] == ds.file_sha256


def test_recbole_folder_orders_by_time_with_file_order_ties(data_root: Path) -> None:
    folder = data_root / "Tiny"
    folder.mkdir()
    (folder / "Tiny.inter").write_text(textwrap.dedent("""\
        item_id:token\tuser_id:token\ttimestamp:float
        b\tv\t5
        a\tw\t3
        c\tv\t1
        d\tw\t3
        a\tv\t9
        e\tw\t2
        """))
    ds = load_dataset("Tiny")
    id_map = json.loads(Path(ds.origin["id_map"]).read_text())
    assert id_map["users"] == ["v", "w"] and id_map["items"] == ["b", "a", "c", "d", "e"]  # first appearance
    ids = {raw: i + 1 for i, raw in enumerate(id_map["items"])}
    assert [list(s) for s in ds.sequences] == [[ids["c"], ids["b"], ids["a"]],  # v: 1, 5, 9
                                               [ids["e"], ids["a"], ids["d"]]]  # w: 2, then the tie at 3 in file order
    assert ds.item_records is None and ds.missing == {"text": str(folder / "Tiny.item")}
    assert ds.file_sha256 == {"Tiny/Tiny.inter": sha256(folder / "Tiny.inter")}


def test_recbole_item_fields_become_the_item_text(data_root: Path) -> None:
    from eager_bench.embeddings.text import item_texts

    write_recbole(data_root, "ShopAtomic")
    ds = load_dataset("ShopAtomic")
    first = json.loads(Path(ds.origin["id_map"]).read_text())["items"][0]
    i = int(first.split("-")[1])
    assert item_texts(ds)[0] == f"title: {COLORS[i % N_TOPICS]} thing {i}; color: {COLORS[i % N_TOPICS]}"


def test_an_edited_folder_is_read_again(data_root: Path) -> None:
    folder = write_s3rec(data_root, "ShopTxt")
    assert load_dataset("ShopTxt").n_users == N_USERS
    with (folder / "ShopTxt.txt").open("a") as out:
        out.write("9999 1000 1007 1014\n")
    assert load_dataset("ShopTxt").n_users == N_USERS + 1


def test_attribute_fallback_is_declared_and_the_refusal_names_the_files(data_root: Path) -> None:
    write_s3rec(data_root, "ShopAttrs", text=False)
    write_s3rec(data_root, "ShopNothing", text=False, attributes=False)
    with collecting() as notes:
        assert semantic_kind(load_dataset("ShopAttrs")) == "attributes"
    assert len(notes) == 1 and "ShopAttrs.items.jsonl is absent" in notes[0]
    with pytest.raises(BenchError, match=r"ShopNothing\.items\.jsonl or .*ShopNothing_item2attributes\.json"):
        semantic_kind(load_dataset("ShopNothing"))


# ------------------------------------------------------------------------------------ other ways to register
def test_datasets_yaml_names_a_folder_and_a_stem(data_root: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = tmp_path / "exports"
    write_recbole(elsewhere, "dump")
    (data_root / "datasets.yaml").write_text(f"MyShop:\n  path: {elsewhere / 'dump'}\n  format: recbole\n"
                                             "  description: our shop\n")
    code, out, err = cli(capsys, "data", "stats", "--dataset", "MyShop", "--json")
    assert code == 0, err
    stats = json.loads(out)
    assert (stats["dataset"], stats["users"]) == ("MyShop", N_USERS)
    assert load_dataset("MyShop").file_sha256.keys() == {"dump/dump.inter", "dump/dump.item"}
    (data_root / "datasets.yaml").write_text("MyShop:\n  formt: recbole\n")
    code, _, err = cli(capsys, "data", "stats", "--dataset", "MyShop")
    assert code == 2 and "datasets.yaml: entry 'MyShop': unknown key 'formt'" in err


def test_entry_point_group_registers_a_dataset(data_root: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = tmp_path / "plugin"
    (plugin / "shop_plugin-1.0.dist-info").mkdir(parents=True)
    (plugin / "shop_plugin-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: shop-plugin\n"
                                                                 "Version: 1.0\n")
    (plugin / "shop_plugin-1.0.dist-info" / "entry_points.txt").write_text(
        "[eager_bench.datasets]\nPluggedShop = shop_plugin:load\nPluggedFolder = shop_plugin:FOLDER\n")
    write_s3rec(tmp_path / "shipped", "packaged")
    (plugin / "shop_plugin.py").write_text(textwrap.dedent(f"""\
        from pathlib import Path
        from eager_bench.data.synthetic import make_synthetic
        FOLDER = Path({str(tmp_path / 'shipped' / 'packaged')!r})

        def load(data_dir):
            \"\"\"A shop dataset from a package.\"\"\"
            return make_synthetic(n_users=20, n_items=10)
        """))
    monkeypatch.syspath_prepend(str(plugin))
    assert load_dataset("PluggedShop").name == "PluggedShop"
    assert load_dataset("PluggedShop").n_items == 10
    assert load_dataset("PluggedFolder").n_items == N_ITEMS


# ----------------------------------------------------------------------------------------------- bad files
S3REC_GOOD = "1 10 11 12\n2 11 12 13\n"
INTER_HEAD = "user_id:token\titem_id:token\ttimestamp:float\n"
INTER_GOOD = "u1\ti1\t1\nu1\ti2\t2\nu1\ti3\t3\n"


@pytest.mark.parametrize("files, message", [
    ({"Bad.txt": S3REC_GOOD + "3 10 x 12\n"}, "Bad/Bad.txt:3: non-integer id 'x'"),
    ({"Bad.txt": S3REC_GOOD + "3 10 1.5 12\n"}, "Bad/Bad.txt:3: non-integer id '1.5'"),
    ({"Bad.txt": "1 10 11 12\n\n7\n"}, "Bad/Bad.txt:3: user 7 has no items"),
    ({"Bad.txt": S3REC_GOOD + "3 10\n"}, "Bad/Bad.txt:3: user 3 has 1 item(s); leave-one-out needs at least 3"),
    ({"Bad.txt": S3REC_GOOD + "1 10 11 12\n"}, "Bad/Bad.txt:3: user 1 already has line 1"),
    ({"Bad.txt": "", }, "Bad/Bad.txt: no interactions"),
    ({"Bad.txt": S3REC_GOOD, "Bad_item2attributes.json": '{"10": [1],\n "11": [2\n'},
     "Bad/Bad_item2attributes.json:3: malformed JSON"),
    ({"Bad.txt": S3REC_GOOD, "Bad.items.jsonl": '{"id": 10, "title": "a"}\n{"title": "no id"}\n'},
     "Bad/Bad.items.jsonl:2: malformed item record"),
    ({"Bad.txt": S3REC_GOOD, "Bad.items.jsonl": '{"id": 10, "title": "a"}\n'},
     "Bad/Bad.items.jsonl: no record for 3 of the 4 items in Bad.txt, first 11"),
    ({"Bad.inter": INTER_HEAD + INTER_GOOD + "u2\ti1\t4\textra\n"},
     "Bad/Bad.inter:5: 4 tab-separated field(s), the header has 3"),
    ({"Bad.inter": INTER_HEAD + INTER_GOOD + "u2\ti1\n"},
     "Bad/Bad.inter:5: 2 tab-separated field(s), the header has 3"),
    ({"Bad.inter": "user_id:token\titem_id:token\n" + "u1\ti1\n"},
     "Bad/Bad.inter:1: missing column timestamp:float"),
    ({"Bad.inter": INTER_HEAD + "u1\ti1\tyesterday\n" + INTER_GOOD}, "Bad/Bad.inter:2: timestamp 'yesterday' is not"),
    ({"Bad.inter": INTER_HEAD + INTER_GOOD + "\ti1\t4\n"}, "Bad/Bad.inter:5: empty user_id"),
    ({"Bad.inter": INTER_HEAD + INTER_GOOD + "u2\t\t4\n"}, "Bad/Bad.inter:5: empty item_id"),
    ({"Bad.inter": "user_id\titem_id:token\ttimestamp:float\n" + INTER_GOOD},
     "Bad/Bad.inter:1: header column 'user_id' is not name:type"),
    ({"Bad.inter": INTER_HEAD + INTER_GOOD + "u2\ti1\t4\nu2\ti2\t5\n"},
     "Bad/Bad.inter:5: user 'u2' has 2 interaction(s)"),
    ({"Bad.inter": INTER_HEAD + INTER_GOOD, "Bad.item": "item_id:token\ttitle:token_seq\ni1\tone\ni2\n"},
     "Bad/Bad.item:3: 1 tab-separated field(s), the header has 2"),
    ({"Bad.inter": INTER_HEAD + INTER_GOOD, "Bad.item": "item_id:token\ttitle:token_seq\ni1\tone\ni2\ttwo\n"},
     "Bad/Bad.item: no row for 1 of the 3 items in Bad.inter, first 'i3'"),
    ({"Bad.txt": S3REC_GOOD, "Bad.inter": INTER_HEAD + INTER_GOOD}, "has both Bad.txt and Bad.inter"),
], ids=lambda value: None if isinstance(value, dict) else value.split(": ", 1)[-1][:40])
def test_bad_files_are_one_line_exit_2_and_no_result(data_root: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str], files: dict[str, str],
                                                    message: str) -> None:
    folder = data_root / "Bad"
    folder.mkdir()
    for filename, content in files.items():
        (folder / filename).write_text(content)
    results = tmp_path / "results"
    code, _, err = cli(capsys, "run", "--model", "Popularity", "--dataset", "Bad", "--profile", "smoke",
                       "--results-dir", str(results))
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not results.exists() or not list(results.rglob("*.json"))


def test_a_bad_file_stops_a_grid_before_any_result(data_root: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (data_root / "Bad").mkdir()
    (data_root / "Bad" / "Bad.inter").write_text(INTER_HEAD + "u1\ti1\n")
    results = tmp_path / "results"
    code, _, err = cli(capsys, "run", "--all", "--datasets", "Bad", "--profile", "smoke",
                       "--results-dir", str(results))
    assert code == 2 and "Bad/Bad.inter:2: 2 tab-separated field(s)" in err
    assert len(err.strip().splitlines()) == 1
    assert not results.exists() or not list(results.rglob("*.json"))


def test_unknown_name_without_a_folder_says_what_was_looked_for(data_root: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "data", "stats", "--dataset", "Nowhere")
    assert code == 2 and "unknown dataset 'Nowhere'" in err and "Nowhere.inter" in err
    (data_root / "Empty").mkdir()
    code, _, err = cli(capsys, "data", "stats", "--dataset", "Empty")
    assert code == 2 and "has neither Empty.txt (S3-Rec) nor Empty.inter" in err


def test_a_result_of_other_files_is_not_reused(data_root: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A user's folder can change under the same name: the finished result (and any checkpoint) of the old files
    must not stand in for the new ones."""
    folder = write_s3rec(data_root, "ShopTxt")
    results = tmp_path / "results"
    args = ("run", "--model", "Markov", "--dataset", "ShopTxt", "--profile", "smoke", "--results-dir", str(results))
    assert cli(capsys, *args)[0] == 0
    assert "cached" in cli(capsys, *args)[1]  # same files: reused
    with (folder / "ShopTxt.txt").open("a") as out:
        out.write("9999 1000 1007 1014\n")
    code, _, err = cli(capsys, *args)
    assert code == 2 and "computed on other files of ShopTxt" in err and "--force" in err
    assert cli(capsys, *args, "--force")[0] == 0
