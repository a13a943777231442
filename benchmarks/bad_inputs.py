"""Run every bad-input case of tests/test_bad_inputs.py through the installed ``nvc`` and write
the table of messages, exit codes and times to benchmarks/results/bad_inputs/.

    python benchmarks/bad_inputs.py

The time is the whole process, from start to the error (the answer a user waits for).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the cases are the test suite's own
from tests.test_bad_inputs import CASES, fill, make_inputs

OUT = Path(__file__).parent / "results" / "bad_inputs"


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        inputs = make_inputs(Path(folder))
        for case in CASES:
            args = fill(case.args, inputs)
            start = time.monotonic()
            done = subprocess.run(["nvc", *args], capture_output=True, text=True, timeout=600)
            seconds = time.monotonic() - start
            message = done.stderr.strip().replace(folder, "<tmp>").replace(inputs["sample"], "<sample>")
            shown = " ".join(a.replace(folder, "<tmp>").replace(inputs["sample"], "<sample>") for a in args)
            ok = done.returncode == case.exit_code and all(w.format(**inputs) in done.stderr for w in case.words)
            rows.append(
                f"| {case.what} | `nvc {shown}` | {done.returncode} | {message.replace('|', '/')} | "
                f"{seconds:.2f} | {'yes' if ok else 'NO'} |"
            )
            print(rows[-1], flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    table = "\n".join(
        [
            "# Bad inputs: message, exit code and time to the answer",
            "",
            "Made by `python benchmarks/bad_inputs.py`; <tmp> is a temporary folder, <sample> the bundled clip.",
            "Exit codes: 2 usage, 3 input, 4 rate, 5 bitstream, 6 output (see the README).",
            "",
            "| case | command | exit | message | seconds | as tested |",
            "|---|---|---:|---|---:|---|",
            *rows,
            "",
        ]
    )
    (OUT / "results.md").write_text(table)
    print(f"wrote {OUT / 'results.md'}")


if __name__ == "__main__":
    main()
