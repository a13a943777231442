"""Fuzz the decoder: coverage-guided with atheris (libFuzzer) if installed, else seeded random.

    pip install atheris
    python fuzz/run.py --inputs 10000            # stops at the first finding and saves it
    python fuzz/run.py --engine random --inputs 2000
    python fuzz/run.py --coverage                 # line coverage of the corpus it kept

Seeds come from fuzz/corpus/ (`python fuzz/make_corpus.py` writes them). A finding is saved
under fuzz/findings/ (atheris: libFuzzer's crash-* files; random: finding-N.nvc) to be replayed
with `python fuzz/run.py --replay FILE`.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = ROOT / "fuzz" / "corpus"
FINDINGS = ROOT / "fuzz" / "findings"


def seeds() -> list[bytes]:
    files = sorted(CORPUS.glob("*.nvc"))
    if not files:
        sys.exit(f"no seeds in {CORPUS}: run python fuzz/make_corpus.py first")
    return [f.read_bytes() for f in files]


def run_random(inputs: int, seed: int) -> None:
    from fuzz.harness import Finding, decode_one
    from fuzz.mutate import mutate

    rng, pool = random.Random(seed), seeds()
    accepted, stages, start = 0, {}, time.monotonic()
    for n in range(inputs):
        data = rng.choice(pool)
        for _ in range(rng.randint(1, 3)):
            data = mutate(data, rng)
        try:
            outcome = decode_one(data)
        except Finding as exc:
            FINDINGS.mkdir(exist_ok=True)
            path = FINDINGS / f"finding-{n}.nvc"
            path.write_bytes(data)
            sys.exit(f"finding after {n + 1} inputs: {exc} (saved {path})")
        accepted += outcome.accepted
        stages[outcome.stage] = stages.get(outcome.stage, 0) + 1
        if outcome.accepted and len(pool) < 500:
            pool.append(data)  # decodable mutants become seeds
    print(
        f"{inputs} inputs in {time.monotonic() - start:.0f} s, 0 findings; decoded to pixels: {accepted}; "
        f"furthest stage reached: {stages}; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB"
    )


def run_atheris(inputs: int, seed: int) -> None:
    import atheris

    with atheris.instrument_imports(include=["nvcodec", "fuzz"]):
        from nvcodec.families import load_all

        load_all()  # every family, so its code counts as coverage
        from fuzz.harness import decode_one
        from fuzz.mutate import mutate

    def test_one_input(data: bytes) -> None:
        decode_one(data)  # a Finding propagates: libFuzzer saves the input and stops

    def custom_mutator(data: bytes, max_size: int, seed_value: int) -> bytes:
        rng = random.Random(seed_value)
        out = mutate(data, rng, byte_mutator=lambda payload, _rng: atheris.Mutate(payload, len(payload) + 64))
        return out[:max_size]

    FINDINGS.mkdir(exist_ok=True)
    work = ROOT / "fuzz" / "work-corpus"  # grows with what libFuzzer keeps; the seeds stay untouched
    work.mkdir(exist_ok=True)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 + 1024  # baseline + 1 GiB
    args = [
        sys.argv[0],
        str(work),
        str(CORPUS),
        f"-runs={inputs}",
        f"-seed={seed}",
        "-timeout=5",
        f"-rss_limit_mb={rss_mb}",
        "-max_len=262144",
        f"-artifact_prefix={FINDINGS}/",
        "-print_final_stats=1",
    ]
    atheris.Setup(args, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


def replay(path: str) -> None:
    from fuzz.harness import decode_one

    print(decode_one(Path(path).read_bytes()))


DECODER_FILES = (
    "bitstream/*.py",
    "compress/entropy.py",
    "compress/quantize.py",
    "compress/varint.py",
    "render.py",
    "models/*.py",
    "families/__init__.py",
    "families/*/__init__.py",
    "families/*/model.py",
)


def corpus_coverage() -> None:
    """Line coverage of the decoder's files over the seeds and what the fuzzer kept (coverage.py)."""
    import coverage

    package = ROOT / "nvcodec"
    cov = coverage.Coverage(include=[str(package / pattern) for pattern in DECODER_FILES])
    cov.start()
    from fuzz.harness import decode_one

    files = sorted(CORPUS.glob("*.nvc")) + sorted((ROOT / "fuzz" / "work-corpus").glob("*"))
    stages: dict[str, int] = {}
    for path in files:
        stage = decode_one(path.read_bytes()).stage
        stages[stage] = stages.get(stage, 0) + 1
    cov.stop()
    print(f"{len(files)} corpus inputs; furthest stage reached: {stages}")
    percent = cov.report(show_missing=False, skip_empty=True)
    print(f"line coverage of the decoder's files: {percent:.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--engine", choices=("atheris", "random"), default="atheris")
    parser.add_argument("--replay", metavar="FILE")
    parser.add_argument("--coverage", action="store_true", help="Line coverage of the kept corpus (coverage.py).")
    opts = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    if opts.replay:
        replay(opts.replay)
    elif opts.coverage:
        corpus_coverage()
    elif opts.engine == "atheris":
        run_atheris(opts.inputs, opts.seed)
    else:
        run_random(opts.inputs, opts.seed)


if __name__ == "__main__":
    main()
