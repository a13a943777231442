"""A quick, seeded run of the decoder fuzzer (the long coverage-guided run is fuzz/run.py)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from fuzz.harness import decode_one
from fuzz.mutate import mutate, split_chunks
from nvcodec.bitstream import format as nvc_format

SEEDS = sorted((Path(__file__).resolve().parents[1] / "fuzz" / "corpus").glob("*.nvc"))


def test_every_family_has_a_seed_that_decodes():
    from nvcodec.families import family_names as available_models

    assert {p.stem for p in SEEDS} >= set(available_models())
    for path in SEEDS:
        assert decode_one(path.read_bytes()).accepted, path.name


def test_mutations_keep_the_framing_valid():
    """The mutator re-frames and re-checksums, so its mutants reach the parsers behind the CRCs."""
    rng = random.Random(0)
    data = SEEDS[0].read_bytes()
    past_crc = 0
    for _ in range(200):
        mutant = mutate(data, rng)
        try:
            nvc_format.read(mutant)
            past_crc += 1
        except nvc_format.CRCError:
            pass
        except Exception:  # any error: any other refusal means the CRCs held
            past_crc += 1
    assert past_crc >= 150
    assert split_chunks(data) is not None


@pytest.mark.parametrize("seed", range(3))
def test_quick_fuzz_finds_nothing(seed):
    rng = random.Random(seed)
    pool = [p.read_bytes() for p in SEEDS]
    stages = set()
    for _ in range(250):
        data = rng.choice(pool)
        for _ in range(rng.randint(1, 3)):
            data = mutate(data, rng)
        stages.add(decode_one(data).stage)  # raises Finding on a crash, a hang or a huge allocation
    assert "render" in stages or "done" in stages  # some mutants got all the way to the renderer
