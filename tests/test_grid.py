"""The grid family: integer context model, CONTEXT coding, a tiny round trip, hostile payloads."""

from __future__ import annotations

import hashlib
import json
import zlib

import numpy as np
import pytest
import torch

from nvcodec import errors
from nvcodec.api import EncodeSettings, RenderRequest, decode, encode, inspect
from nvcodec.bitstream import format as fmt
from nvcodec.bitstream.tensors import CONTEXT_LIMIT, compress_tensors, decompress_tensors
from nvcodec.cli import main
from nvcodec.compress.context import (
    fixed_point,
    integer_mlp,
    laplace_bits,
)
from nvcodec.compress.entropy import (
    MAX_ALPHABET,
    MAX_CONTEXT_REACH,
    SCALE_TABLE,
    ConditionalDecoder,
    ConditionalEncoder,
    conditional_code_length,
    context_counts,
)
from nvcodec.compress.quantize import MAX_SYMBOL
from nvcodec.families.grid.model import Grid, GridConfig
from nvcodec.metrics import psnr

from .conftest import CONFORMANCE, TINY_ENCODES

SETTINGS = TINY_ENCODES["grid"]
VECTOR = CONFORMANCE / "c3_grid_12x20x4.nvc"


@pytest.fixture(scope="module")
def encoded(tiny_encode):
    return tiny_encode("grid")


def test_scale_table_is_the_stated_formula():
    """The normative integers are what the comment's formula gives (a guard against typos)."""
    import math

    for s, (first, decay) in enumerate(SCALE_TABLE):
        b = 0.04 * 2 ** (s / 4)
        p0, p1 = 1 - math.exp(-0.5 / b), 0.5 * (math.exp(-0.5 / b) - math.exp(-1.5 / b))
        assert first == max(1, min(65535, round(65536 * p1 / p0)))
        assert decay == max(1, min(65535, round(65536 * math.exp(-1 / b))))


def test_half_and_integer_centred_tables():
    whole, half = context_counts(5, 30, False), context_counts(5, 30, True)
    assert len(whole) == len(half) == 13 and whole.argmax() == 6
    assert np.array_equal(whole, whole[::-1])  # symmetric about the centre
    assert half[6] == half[7] == 1 << 24  # a half-integer centre between residuals 0 and 1
    assert np.array_equal(half[6::-1][:6], half[7:])  # symmetric about it


def test_integer_mlp_is_exact_whatever_the_batching():
    """Encoder and decoder evaluate the context model on different batches: same integers."""
    torch.manual_seed(0)
    layers = [
        (
            fixed_point(np.random.default_rng(i).normal(0, 3, shape).astype(np.float32)),
            fixed_point(np.random.default_rng(i + 9).normal(0, 3, shape[0]).astype(np.float32)),
        )
        for i, shape in enumerate([(16, 13), (16, 16), (2, 16)])
    ]
    inputs = torch.randint(-40, 40, (5000, 13)).to(torch.float64)
    whole = integer_mlp(inputs, layers)
    rows = torch.cat([integer_mlp(chunk, layers) for chunk in inputs.split(7)])
    assert torch.equal(whole, rows) and torch.equal(whole, torch.floor(whole))
    torch.set_num_threads(1)
    try:
        assert torch.equal(integer_mlp(inputs, layers), whole)
    finally:
        torch.set_num_threads(2)


def test_conditional_coder_round_trip_and_estimate():
    rng = np.random.default_rng(3)
    centres2 = rng.integers(-6, 7, 4000)
    scales = rng.integers(0, 64, 4000)
    symbols = np.clip(np.rint(centres2 / 2 + rng.laplace(0, 2, 4000)), -9, 9).astype(np.int64)
    coder = ConditionalEncoder(-9, 9)
    coder.encode(symbols[:1500], centres2[:1500], scales[:1500])  # two passes in one stream
    coder.encode(symbols[1500:], centres2[1500:], scales[1500:])
    coded = coder.finish()
    decoder = ConditionalDecoder(coded)
    back = np.concatenate(
        [decoder.decode(centres2[:1500], scales[:1500]), decoder.decode(centres2[1500:], scales[1500:])]
    )
    decoder.finish()
    assert np.array_equal(back, symbols)
    ideal = conditional_code_length(symbols, centres2, scales, 18)
    assert abs(8 * coded.payload_bytes - ideal) <= 0.02 * ideal + 64  # the coder floors tiny probabilities


def test_training_rate_is_the_file_tables_code_length():
    """laplace_bits (what training minimizes) equals the integer tables' code length for integer
    values, where the scales are small against the record's symbol range (as in trained grids;
    a scale near the range makes the truncated table cheaper than the Laplace: an overestimate)."""
    rng = np.random.default_rng(5)
    centre = torch.from_numpy(rng.uniform(-3, 3, 3000))
    z = torch.from_numpy(rng.uniform(0, 28, 3000))  # b from 0.04 to 5.1
    values = torch.from_numpy(np.rint(centre.numpy() + rng.laplace(0, 2, 3000)))
    estimate = float(laplace_bits(values, centre, z).sum())
    centres2 = torch.floor(2 * centre + 0.5).long().numpy()
    scales = torch.floor(z + 0.5).long().numpy()
    exact = conditional_code_length(values.long().numpy(), centres2, scales, 20)
    assert abs(estimate - exact) / exact < 0.01


def test_training_rate_knows_the_record_range():
    """Scales as wide as the record's range: the file's table is truncated to the range, and the
    estimate given the reach follows it (without it, it would be about double)."""
    rng = np.random.default_rng(6)
    centre = torch.from_numpy(rng.uniform(-1, 1, 3000))
    z = torch.from_numpy(rng.uniform(0, 63, 3000))  # b up to 2,200 against a range of 4
    values = torch.from_numpy(np.clip(np.rint(centre.numpy() + rng.laplace(0, 1, 3000)), -2, 2))
    centres2 = torch.floor(2 * centre + 0.5).long().numpy()
    exact = conditional_code_length(values.long().numpy(), centres2, torch.floor(z + 0.5).long().numpy(), 4)
    assert abs(float(laplace_bits(values, centre, z, 4).sum()) - exact) / exact < 0.03
    assert float(laplace_bits(values, centre, z).sum()) > 1.5 * exact


def test_integer_context_model_gives_the_same_tables_at_encode_and_decode():
    """The conformance vector's latents: tables computed from the encoder's grid (all values known)
    and from the decoder's (filled in pass by pass) code the same symbols."""
    nvc = fmt.read(VECTOR.read_bytes())
    codec = Grid(GridConfig.from_json(nvc.arch.config)).context_codec()
    decoded = decompress_tensors(nvc, codec)
    for index in codec.levels:
        symbols = decoded[index].astype(np.int64).reshape(-1)
        again = Grid(GridConfig.from_json(nvc.arch.config)).context_codec().encode(index, symbols, decoded[:index])
        assert np.array_equal(again.words, nvc.tensors[index].coded.words)


def test_conformance_vector_latent_and_weight_digests():
    manifest = json.loads((CONFORMANCE / "c3_grid_12x20x4.json").read_text())
    data = VECTOR.read_bytes()
    assert hashlib.sha256(data).hexdigest() == manifest["file_sha256"]
    nvc = fmt.read(data)
    weights = decompress_tensors(nvc, Grid(GridConfig.from_json(nvc.arch.config)).context_codec())
    assert fmt.weights_digest(weights).hex() == manifest["weights_sha256"]
    assert manifest["entropy_models"][-3:] == ["CONTEXT"] * 3


def _corrupt_latent_words(data: bytes) -> bytes:
    """Flip bits in the last TENS record's coder words and fix its CRC: only the payload is wrong."""
    pos, last = fmt.PREAMBLE_SIZE, None
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "little")
        if data[pos + 4 : pos + 8] == b"TENS":
            last = (pos, length)
        pos += 12 + length
    start, length = last
    body = bytearray(data[start + 4 : start + 8 + length])
    for k in range(len(body) - 24, len(body), 3):
        body[k] ^= 0xA5
    return data[: start + 4] + bytes(body) + zlib.crc32(bytes(body)).to_bytes(4, "little") + data[start + 12 + length :]


def test_corrupt_latent_payload_is_a_one_line_error(runner, tmp_path):
    path = tmp_path / "bad.nvc"
    path.write_bytes(_corrupt_latent_words(VECTOR.read_bytes()))
    with pytest.raises(errors.PayloadError):
        decode(path)
    result = runner.invoke(main, ["decode", str(path), "-o", str(tmp_path / "out.mp4")])
    assert result.exit_code == errors.PayloadError.exit_code
    assert len(result.stderr.strip().splitlines()) == 1 and "nvc" in result.stderr


def test_context_record_must_have_step_one():
    data = VECTOR.read_bytes()
    nvc = fmt.read(data)
    records = list(nvc.tensors)
    records[-1] = fmt.TensorRecord(records[-1].index, records[-1].axis, np.array([2.0], np.float16), records[-1].coded)
    with pytest.raises(errors.StructureError, match="step, equal to 1"):
        fmt.read(fmt.write(fmt.NvcFile(nvc.header, nvc.arch, tuple(records), nvc.weights_sha256, nvc.metadata)))


def test_rate_training_off_and_scale_are_refused(tiny_clip, tmp_path):
    with pytest.raises(errors.UsageError, match="drop --rate-training off"):
        encode(tiny_clip, tmp_path / "x.nvc", EncodeSettings(model="grid", rate_training=False))
    with pytest.raises(errors.UsageError, match="coordflow|siren"):
        decode(VECTOR, request=RenderRequest(scale=2.0))


def test_decoder_cost_is_stated_and_small():
    model = Grid(GridConfig(180, 320, 32))
    assert 500 < model.macs_per_pixel() <= 2000
    assert inspect(VECTOR)["decoder_macs_per_pixel"] == round(Grid(GridConfig(12, 20, 4, 3, 8, 8)).macs_per_pixel(), 1)


def test_tiny_round_trip(encoded, tiny_clip):
    path, report = encoded
    assert report.model == "grid" and path.stat().st_size == report.file_bytes
    assert report.psnr == psnr(tiny_clip.frames, decode(path).frames)
    assert abs(report.estimated_bytes - report.file_bytes) / report.file_bytes < 0.03
    info = inspect(path)
    assert info["latent_bytes"] > 0 and [t["model"] for t in info["tensors"]][-7:] == ["context"] * 7
    # 100+20 epochs of 2 steps on 8 frames of 64x36 measured 19.5 dB; a flat grey picture scores about 12 dB: the
    # latents and synthesis must do clearly better than that.
    assert report.psnr > 16


def test_a_step_updates_only_the_slices_it_reads(tiny_clip):
    """Lazy Adam: the frames of one step (4 consecutive) move their slices of each grid and no other."""
    import contextlib

    from nvcodec.train.objectives import objective_for

    model = Grid(GridConfig(36, 64, 8, levels=3))
    objective = objective_for(model, tiny_clip.frames, torch.device("cpu"), "l2", 0, 4)
    before = [g.detach().clone() for g in model.latents]
    loss, _ = objective.step(0, 0, contextlib.nullcontext())
    loss.backward()
    objective.update(1e-2)
    frames = objective.frame_batch(0, 0)
    finest_before, finest = before[-1], model.latents[-1].detach()
    window = range(int(frames[0]) - 1, int(frames[-1]) + 2)  # the frames' slices and one each side
    for t in range(8):
        if t in frames.tolist():
            assert not torch.equal(finest[t], finest_before[t]), t
        elif t not in window:
            assert torch.equal(finest[t], finest_before[t]), t
    assert all(p.grad is None for p in model.latents)  # fit's optimizer never sees them


def test_clips_too_large_for_one_grid_are_refused_before_training():
    with pytest.raises(errors.UsageError, match="--resize"):
        Grid.config_for_budget(1080, 1920 * 2, 8, 0)
    with pytest.raises(errors.UsageError, match="--frames"):
        Grid.config_for_budget(1080, 1920, 2000, 0)
    with pytest.raises(errors.UsageError, match="--frames"):
        Grid.config_for_budget(1080, 1920, 32, 0)  # 76M latents in all
    assert Grid.config_for_budget(1080, 1920, 24, 0).num_frames == 24


def test_a_file_trained_past_its_target_lands_on_it_by_a_latent_dead_zone(tiny_clip, tmp_path):
    """Lambda held far too low (no rate pull) trains a file several times its target; the dead zone
    on the latents lands it within the rate control's tolerance, and the decoder agrees with the report."""
    from dataclasses import replace

    unpriced = replace(SETTINGS, epochs=30, rate_options={"controller_gain": 0.0, "lam": 1e-7, "lam_x_bpp": None})
    free = encode(tiny_clip, tmp_path / "free.nvc", replace(unpriced, lam=1e-7))
    target = free.bpp * 0.88  # the latents are a third of this tiny file
    landed = encode(tiny_clip, tmp_path / "landed.nvc", replace(unpriced, bpp=round(target, 4)))
    assert 0.8 * target < landed.bpp <= 1.03 * target
    assert landed.psnr == psnr(tiny_clip.frames, decode(tmp_path / "landed.nvc").frames)
    assert abs(landed.estimated_bytes - landed.file_bytes) / landed.file_bytes < 0.05
    assert landed.psnr < free.psnr


def test_latent_records_are_not_reused_across_different_coarser_grids():
    """The codec remembers coded grids; a grid with the same symbols under another coarser grid
    (its context) must be coded afresh, or the second file would not decode."""
    model = Grid(GridConfig(12, 20, 4, 3, 8, 8))
    torch.manual_seed(0)
    with torch.no_grad():
        for grid in model.latents:
            grid.copy_(torch.randint(-2, 3, grid.shape).float())
    codec = model.context_codec()
    names = list(model.coded_tensors())
    tensors = [t.detach().numpy().copy() for t in model.coded_tensors().values()]
    decoded = [np.round(t) for t in tensors]
    finest, coarser = names.index("latents.2"), names.index("latents.1")
    first = codec.encode(finest, decoded[finest].astype(np.int64).reshape(-1), decoded)
    decoded[coarser] = np.zeros_like(decoded[coarser])
    second = codec.encode(finest, decoded[finest].astype(np.int64).reshape(-1), decoded)
    assert second is not first
    assert np.array_equal(codec.decode(finest, second, decoded), decoded[finest].astype(np.int64).reshape(-1))


def test_a_latent_range_wider_than_the_coder_and_a_too_fine_step_are_written_and_decoded():
    """Whatever training produced is written: a latent grid spanning +-40,000 (CONTEXT allows R <= 32765,
    step 1) is clamped to +-CONTEXT_LIMIT, and a weight whose learned step is the finest binary16
    (an alphabet of 166,000 symbols) gets the finest step that fits; the file reads and decodes."""
    nvc = fmt.read(VECTOR.read_bytes())
    model = Grid(GridConfig.from_json(nvc.arch.config))
    codec = model.context_codec()
    names = list(model.coded_tensors())
    tensors = [np.asarray(t, np.float32) for t in decompress_tensors(nvc, codec)]
    finest, weight = names.index("latents.2"), 0
    tensors[finest] = np.linspace(-40_000, 40_000, tensors[finest].size, dtype=np.float32).reshape(
        tensors[finest].shape
    )
    tensors[weight] = np.linspace(-0.005, 0.005, tensors[weight].size, dtype=np.float32).reshape(tensors[weight].shape)
    steps = [np.ones(1, np.float16) if i in codec.levels else record.steps for i, record in enumerate(nvc.tensors)]
    steps[weight] = np.full_like(steps[weight], 2.0**-24)
    records, digest = compress_tensors(tensors, steps=steps, context=model.context_codec())
    again = fmt.read(fmt.write(fmt.NvcFile(nvc.header, nvc.arch, records, digest, {})))
    decoded = decompress_tensors(again, Grid(GridConfig.from_json(nvc.arch.config)).context_codec())
    assert np.array_equal(decoded[finest], np.clip(np.rint(tensors[finest]), -CONTEXT_LIMIT, CONTEXT_LIMIT))
    assert records[finest].coded.sym_max - records[finest].coded.sym_min <= MAX_CONTEXT_REACH
    assert records[weight].coded.sym_max - records[weight].coded.sym_min < MAX_ALPHABET
    assert np.abs(decoded[weight] - tensors[weight]).max() <= 0.005 / MAX_SYMBOL


def test_the_dead_zone_is_the_mildest_that_fits_and_never_zeroes_what_rounds_beyond_1():
    """Real sizes need not fall with the zone: the search takes the first zone that fits, from
    below; and it stops at MAX_DEAD_ZONE rather than zero every latent: a file that no zone up to
    that lands keeps plain rounding (over its target, at the quality it trained to)."""
    from nvcodec.compress.ratecontrol import MAX_DEAD_ZONE, PLAIN_ROUNDING, RateControl

    control = RateControl(1.0, 80, 10, 1)  # a target of 100 bytes
    bumpy = {0.5: 120}  # fits from 0.8 on, but a bisection's first probe (20.25) also "fits" far away

    def size_at(zone: float) -> int:
        return bumpy.get(zone, 120 if zone < 0.8 else 99)

    zone = control.latent_dead_zone(size_at, largest=40.0)
    assert 0.8 <= zone < 0.8 * 1.15
    assert control.latent_dead_zone(lambda zone: 90, largest=40.0) == PLAIN_ROUNDING
    assert control.latent_dead_zone(lambda zone: 150, largest=40.0) == PLAIN_ROUNDING
    assert MAX_DEAD_ZONE <= control.latent_dead_zone(lambda zone: 99 if zone >= MAX_DEAD_ZONE else 150, 40.0)
