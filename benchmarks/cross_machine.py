"""One config and seed trained on two machines: how far do the numbers move when only the CPU changes?

    python benchmarks/cross_machine.py --reference results --other results/studies/machines \
        --output results/benchmarks/cross_machine.json

Every result file under `--other` is paired with the file of the same dataset, model and run id under `--reference`
(the run id holds the config hash and seed, so the pair is the same config and seed). Each pair is reported only if
the two ran on different machines (device, CPU, bf16 units, as the ablation table names them). bf16 kernels of
different CPUs (AMX tiles against AVX512_BF16 dot products) accumulate in different orders, and the behavior
embedding (DIN, trained in bf16) then differs too, so a result of one machine is one sample of what the config
gives, not the number. This file is the yardstick for differences between rows trained on different machines (the
ablation table marks such rows): per metric, both values and their difference; per-user paired Wilcoxon tests on test
and validation; whether each stream's embeddings and codes are bit-identical; where the best checkpoint fell.
It reads result files only (no timing): run it anywhere. Writes the JSON and a Markdown table beside it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from eager_bench.provenance import measurement_context
from eager_bench.report.board import per_user_mean, run_machine
from eager_bench.report.collect import METRICS, Run
from eager_bench.report.stats import paired_p_value
from eager_bench.results import atomic_write_bytes, iter_results, write_json

TESTED = ("Recall@5", "NDCG@5", "NDCG@10")


def compare(ref_path: Path, ref: dict[str, Any], other_path: Path, other: dict[str, Any]) -> dict[str, Any]:
    """The pair's machines, input digests, metric differences (other - reference) and paired tests."""
    runs = [Run.from_file(p, r) for p, r in ((ref_path, ref), (other_path, other))]  # each reads its ranks once
    machines = [run_machine(run) for run in runs]
    row: dict[str, Any] = {"dataset": ref["dataset"], "model": ref["model"], "variant": ref["variant"],
                           "profile": ref["profile"], "seed": ref["seed"], "run_id": ref["run_id"],
                           "reference": {"file": str(ref_path), "machine": machines[0]},
                           "other": {"file": str(other_path), "machine": machines[1]}}
    for side, record in (("reference", ref), ("other", other)):
        training = record.get("training") or {}
        row[side].update(best_step=training.get("best_step"), steps=training.get("steps"),
                         precision=training.get("precision"), inputs_sha256=training.get("inputs_sha256"))
    digests = [row[s]["inputs_sha256"] or {} for s in ("reference", "other")]
    row["inputs_identical"] = {f"{stream} {part}": digests[0][stream][part] == digests[1].get(stream, {}).get(part)
                               for stream in digests[0] for part in digests[0][stream]} or None
    row["metrics"] = {}
    for split in ("valid", "test"):
        for metric in METRICS:
            a, b = ref["metrics"][split].get(metric), other["metrics"][split].get(metric)
            if a is None or b is None:
                continue
            entry: dict[str, Any] = {"reference": a, "other": b, "diff": b - a,
                                     "relative": (b - a) / a if a else None}
            if metric in TESTED:
                sides = [per_user_mean([run], metric, split=split) for run in runs]
                same_users = all(sides) and np.array_equal(sides[0][0], sides[1][0])
                entry["wilcoxon_p"] = paired_p_value(sides[1][1], sides[0][1]) if same_users else None
            row["metrics"][f"{split} {metric}"] = entry
    ranks_a, ranks_b = runs[0].ranks(), runs[1].ranks()
    row["users_same_test_rank"] = float(np.mean(ranks_a["test_ranks"] == ranks_b["test_ranks"])) \
        if np.array_equal(ranks_a["users"], ranks_b["users"]) else None
    return row


def pairs(reference: Path, other: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Compared pairs, and a line for each file under `other` left out (no partner, or the same machine)."""
    known = {(r["dataset"], r["model"], r["run_id"]): (p, r) for p, r in iter_results(reference)}
    rows, skipped = [], []
    for path, record in iter_results(other):
        partner = known.get((record["dataset"], record["model"], record["run_id"]))
        if partner is None:
            skipped.append(f"{path}: no result with run id {record['run_id']} under {reference}")
            continue
        row = compare(partner[0], partner[1], path, record)
        if row["reference"]["machine"] == row["other"]["machine"]:
            skipped.append(f"{path}: same machine as {partner[0]} ({row['other']['machine']})")
            continue
        rows.append(row)
    return rows, skipped


def markdown(rows: list[dict[str, Any]], skipped: list[str], command: str) -> str:
    lines = ["<!-- generated by benchmarks/cross_machine.py from result files; do not edit by hand -->", "",
             "# One config, two machines", "", f"Reproduce: `{command}`.", "",
             "Same config hash and seed (the same run id), trained on two machines. `diff` = other - reference; p: "
             "two-sided Wilcoxon signed-rank test on per-user values of the two runs. A difference of this size "
             "between two rows of a table that ran on different machines is the machine, not the rows' settings.", ""]
    for row in rows:
        ref, other = row["reference"], row["other"]
        lines += [f"## {row['dataset']} · {row['model']} `{row['variant']}` · profile `{row['profile']}` · seed "
                  f"{row['seed']}", "",
                  f"- reference: {ref['machine']} (`{ref['file']}`), best step {ref['best_step']} of {ref['steps']}",
                  f"- other: {other['machine']} (`{other['file']}`), best step {other['best_step']} of "
                  f"{other['steps']}"]
        identical = row["inputs_identical"]
        if identical is not None:
            lines.append("- inputs bit-identical: " + ", ".join(f"{k} {'yes' if v else 'no'}"
                                                                for k, v in identical.items()))
        if row["users_same_test_rank"] is not None:
            lines.append(f"- users whose test target got the same rank: {100 * row['users_same_test_rank']:.1f}%")
        lines += ["", "| split | metric | reference | other | diff | relative | p |", "| --- | --- | ---: | ---: | ---: "
                  "| ---: | ---: |"]
        for key, m in row["metrics"].items():
            split, metric = key.split(" ", 1)
            rel = "" if m["relative"] is None else f"{100 * m['relative']:+.1f}%"
            p = m.get("wilcoxon_p")
            p_text = "" if p is None else (f"{p:.2e}" if p < 1e-3 else f"{p:.3f}")
            lines.append(f"| {split} | {metric} | {m['reference']:.4f} | {m['other']:.4f} | {m['diff']:+.4f} | {rel} | "
                         f"{p_text} |")
        lines.append("")
    if not rows:
        lines += ["No pair of one run id on two machines was found.", ""]
    if skipped:
        lines += ["Left out:", ""] + [f"- {s}" for s in skipped] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, default=Path("results"), help="Results folder of the first machine.")
    parser.add_argument("--other", type=Path, default=Path("results/studies/machines"),
                        help="Results folder of the same runs on another machine.")
    parser.add_argument("--output", type=Path, default=Path("results/benchmarks/cross_machine.json"),
                        help="JSON written here, Markdown beside it (.md).")
    args = parser.parse_args(argv)
    for folder in (args.reference, args.other):
        if not folder.is_dir():
            print(f"error: results folder {folder} does not exist", file=sys.stderr)
            return 2
    rows, skipped = pairs(args.reference, args.other)
    command = (f"python benchmarks/cross_machine.py --reference {args.reference} --other {args.other} "
               f"--output {args.output}")
    write_json(args.output, {"benchmark": "one config and seed on two machines", "command": command,
                             "rows": rows, "skipped": skipped, "provenance": measurement_context()})
    md = args.output.with_suffix(".md")
    atomic_write_bytes(md, markdown(rows, skipped, command).encode())
    print(f"wrote {args.output} and {md} ({len(rows)} pair(s), {len(skipped)} left out)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
