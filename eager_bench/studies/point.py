"""Run one study point in its own process, so the result's peak RSS is that point's alone:
`python -m eager_bench.studies.point '<json RunSpec fields>' RESULTS_DIR DATA_DIR DEVICE`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from eager_bench.runner import RunSpec
from eager_bench.studies.store import find_or_run
from eager_bench.studies.subsample import register_view


def main(argv: list[str]) -> None:
    fields = json.loads(argv[0])
    results = Path(argv[1]) if argv[1] else None
    data = Path(argv[2]) if argv[2] else None
    spec = RunSpec(**fields)
    register_view(spec.dataset)
    find_or_run(spec, results, data, argv[3])


if __name__ == "__main__":
    main(sys.argv[1:])
