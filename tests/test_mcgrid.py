"""The mcgrid family: intra and predicted frames, motion coded under the context model, random access."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nvcodec import errors
from nvcodec.api import EncodeSettings, decode, encode, inspect
from nvcodec.bitstream import format as fmt
from nvcodec.bitstream.tensors import CONTEXT_LIMIT, compress_tensors, decompress_tensors
from nvcodec.cli import main
from nvcodec.compress.entropy import MAX_CONTEXT_REACH
from nvcodec.compress.ratecontrol import LambdaController
from nvcodec.families.mcgrid.model import RANDOM_ACCESS, MCGrid, MCGridConfig
from nvcodec.families.mcgrid.motion import initial_motion
from nvcodec.io import Video
from nvcodec.metrics import psnr
from nvcodec.train.objectives import objective_for
from nvcodec.train.rate import RateTerm

from .conftest import CONFORMANCE
from .test_grid import _corrupt_latent_words


@pytest.fixture(scope="module")
def encoded(tiny_encode):
    return tiny_encode("mcgrid")


@pytest.fixture(scope="module")
def encoded_ra(tiny_encode):
    return tiny_encode("mcgrid_ra")


def _model(nvc: fmt.NvcFile) -> MCGrid:
    return MCGrid(MCGridConfig.from_json(nvc.arch.config))


def test_tiny_round_trip_with_predicted_frames(encoded, tiny_clip):
    path, report = encoded
    nvc = fmt.read(path.read_bytes())
    config = MCGridConfig.from_json(nvc.arch.config)
    assert config.num_frames == 8 and config.gop > 1  # frame 0 intra, frames 1-7 predicted
    frames = decode(path).frames
    assert report.psnr == psnr(tiny_clip.frames, frames)
    # 150 steps of the 8-frame group (64x36, 1.5 bpp) measured 22.2 dB, every frame 21.8-22.5 dB; grey
    # scores about 12 dB: the intra frame and the predictions from it must do clearly better
    assert report.psnr > 19
    assert all(psnr(tiny_clip.frames[t : t + 1], frames[t : t + 1]) > 17 for t in range(1, 8))
    info = inspect(path)
    assert [t["model"] for t in info["tensors"]][-(config.levels + 2) :] == ["context"] * (config.levels + 2)


def test_random_access_round_trip_with_p_and_b_frames(encoded_ra, tiny_clip):
    path, report = encoded_ra
    data = path.read_bytes()
    nvc = fmt.read(data)
    config = MCGridConfig.from_json(nvc.arch.config)
    assert config.order == RANDOM_ACCESS and nvc.arch.config["order"] == 1
    assert [len(config.references(t)) for t in range(8)] == [0, 2, 2, 2, 2, 2, 2, 1]  # I, six B, P
    assert int.from_bytes(data[10:12], "little") == 4 and nvc.header.min_reader_minor == 4  # format 1.4
    frames = decode(path).frames
    assert report.psnr == psnr(tiny_clip.frames, frames)
    # as the low-delay encode: 150 steps measured 22.2 dB, every frame 21.8-22.5 dB
    assert report.psnr > 19
    assert all(psnr(tiny_clip.frames[t : t + 1], frames[t : t + 1]) > 17 for t in range(1, 8))
    assert np.array_equal(decode(path, frames=(2, 4)).frames, frames[2:4])
    assert len(nvc.tensors) == 24 + config.levels + 4  # two motion fields per frame


def test_a_group_in_random_access_order_codes_each_frame_once_after_its_references():
    for length in (1, 2, 3, 6, 16, 17):
        config = MCGridConfig(36, 64, length, gop=32, order=RANDOM_ACCESS)
        order = config.coding_order(0)
        assert sorted(order) == list(range(length)) and order[0] == 0
        assert all(order.index(r) < order.index(f) for f in order for r in config.references(f))
    config = MCGridConfig(36, 64, 6, gop=6, order=RANDOM_ACCESS)
    assert config.coding_order(0) == [0, 5, 2, 1, 3, 4]
    assert [config.references(f) for f in (5, 2, 1, 3, 4)] == [(0,), (0, 5), (0, 2), (2, 5), (3, 5)]
    assert [config.depth(f) for f in (0, 5, 2, 1, 3, 4)] == [0, 1, 2, 3, 3, 4]


@pytest.mark.parametrize("fixture", ["encoded", "encoded_ra"])
def test_motion_is_coded_and_the_context_model_gives_the_same_symbols_on_inter_frames(fixture, request):
    """The motion of the predicted frames (non-zero, started from optical flow) and their latents:
    the tables computed from the encoder's whole grid code the same words as the decoder's."""
    nvc = fmt.read(request.getfixturevalue(fixture)[0].read_bytes())
    codec = _model(nvc).context_codec()
    decoded = decompress_tensors(nvc, codec)
    motion = sorted(codec.levels)[-4 if fixture == "encoded_ra" else -2 :]
    assert any(np.abs(decoded[i][1:]).max() > 0 for i in motion)  # predicted frames move
    assert all(np.abs(decoded[i][0]).max() == 0 for i in motion)  # the intra frame has none
    for index in codec.levels:
        symbols = decoded[index].astype(np.int64).reshape(-1)
        again = _model(nvc).context_codec().encode(index, symbols, decoded[:index])
        assert np.array_equal(again.words, nvc.tensors[index].coded.words)


def test_corrupt_motion_payload_is_a_one_line_error(encoded, runner, tmp_path):
    path = tmp_path / "bad.nvc"
    path.write_bytes(_corrupt_latent_words(encoded[0].read_bytes()))  # the last record: vertical motion
    result = runner.invoke(main, ["decode", str(path), "-o", str(tmp_path / "out.mp4")])
    assert result.exit_code == errors.PayloadError.exit_code
    assert len(result.stderr.strip().splitlines()) == 1 and "nvc" in result.stderr


def test_random_access_renders_only_the_frames_a_range_needs(encoded):
    nvc = fmt.read(encoded[0].read_bytes())
    whole = decode(encoded[0]).frames
    assert np.array_equal(decode(encoded[0], frames=(5, 7)).frames, whole[5:7])
    model = MCGrid(MCGridConfig(36, 64, 40, gop=8))
    with torch.no_grad():
        model.synthesize(torch.arange(17, 20))  # group 16..23: frames 16 (intra) to 19
        assert model.frames_rendered == 4
        model.synthesize(torch.arange(20, 22))  # goes on from frame 19, rendered last
        assert model.frames_rendered == 6
    assert nvc.arch.family == "mcgrid"
    model = MCGrid(MCGridConfig(36, 64, 16, gop=8, order=RANDOM_ACCESS))
    with torch.no_grad():
        model.synthesize(torch.tensor([9]))  # B frame 9 needs 8 (intra), 15 (P) and 11 (B from 8 and 15)
        assert model.frames_rendered == 4
        model.synthesize(torch.tensor([10]))  # from 9 and 11, kept from the call before
        assert model.frames_rendered == 5


def test_initial_motion_finds_a_shift():
    """DIS flow, one vector per block in quarter pixels: a picture moved 3 pixels right comes from x - 3."""
    rng = np.random.default_rng(0)
    base = (rng.random((48, 80, 3)) * 255).astype(np.uint8)
    base = np.repeat(np.repeat(base[::4, ::4], 4, 0), 4, 1)[:48, :80]
    frames = np.stack([base, np.roll(base, 3, axis=1)])
    motion = initial_motion(frames, MCGridConfig(48, 80, 2, gop=8))
    assert motion.shape == (2, 2, 3, 5) and not motion[0].any()
    assert np.median(motion[1, 0, :, 1:-1]) == -12 and np.median(motion[1, 1]) == 0


def test_decoder_cost_is_stated_and_within_the_budget():
    split = MCGrid(MCGridConfig(180, 320, 32)).macs_split()
    assert set(split) == {"motion", "residual", "synthesis"} and sum(split.values()) <= 2000


VECTOR = CONFORMANCE / "c5_mcgrid_16x24x6.nvc"


@pytest.mark.parametrize(
    "vector, minor",
    [("c5_mcgrid_16x24x6", 3), ("c6_mcgrid_ra_16x24x6", 4)],  # the family (1.3), its random-access order (1.4)
)
def test_streams_carry_the_minor_version_their_features_were_added_in(vector, minor):
    """Written as 1.<minor>, and a stream that claims a lower minimum is refused."""
    data = (CONFORMANCE / f"{vector}.nvc").read_bytes()
    nvc = fmt.read(data)
    assert int.from_bytes(data[10:12], "little") == minor and nvc.header.min_reader_minor == minor
    length = int.from_bytes(data[fmt.PREAMBLE_SIZE : fmt.PREAMBLE_SIZE + 4], "little")
    rest = data[fmt.PREAMBLE_SIZE + fmt.CHUNK_OVERHEAD + length :]
    forged = fmt.chunk(fmt.ChunkType.NHDR, fmt.header_payload(replace(nvc.header, min_reader_minor=minor - 1)))
    with pytest.raises(errors.StructureError, match=f"mcgrid stream must carry NHDR min_reader_minor {minor}"):
        fmt.read(data[: fmt.PREAMBLE_SIZE] + forged + rest)


def test_a_latent_and_motion_range_wider_than_the_coder_is_written_and_decoded():
    """Whatever training produced is written: latents and motion spanning +-40,000 are clamped to
    +-CONTEXT_LIMIT (CONTEXT allows R <= 32765) and the file reads and decodes."""
    nvc = fmt.read(VECTOR.read_bytes())
    model = _model(nvc)
    codec = model.context_codec()
    tensors = [np.asarray(t, np.float32) for t in decompress_tensors(nvc, codec)]
    wide = sorted(codec.levels)[-3:]  # the finest latents and both motion grids
    for index in wide:
        tensors[index] = np.linspace(-40_000, 40_000, tensors[index].size, dtype=np.float32).reshape(
            tensors[index].shape
        )
    steps = [record.steps for record in nvc.tensors]
    records, digest = compress_tensors(tensors, steps=steps, context=model.context_codec())
    again = fmt.read(fmt.write(fmt.NvcFile(nvc.header, nvc.arch, records, digest, {})))
    decoded = decompress_tensors(again, _model(nvc).context_codec())
    for index in wide:
        assert np.array_equal(decoded[index], np.clip(np.rint(tensors[index]), -CONTEXT_LIMIT, CONTEXT_LIMIT))
        assert records[index].coded.sym_max - records[index].coded.sym_min <= MAX_CONTEXT_REACH


def test_a_one_frame_clip_is_an_intra_frame_that_decodes(tiny_clip, tmp_path):
    """The decoder renders coded frames in padded groups: a one-frame file must not ask for frame 1."""
    one = Video(tiny_clip.frames[:1], tiny_clip.fps)
    report = encode(one, tmp_path / "one.nvc", EncodeSettings(model="mcgrid", bpp=30.0, epochs=3, resume=False))
    assert decode(tmp_path / "one.nvc").frames.shape == (1, 36, 64, 3)
    assert report.psnr == psnr(one.frames, decode(tmp_path / "one.nvc").frames)


def test_gop_order_and_finest_are_options_of_the_command_line_stored_in_the_file(runner, sample_path, tmp_path):
    out = tmp_path / "g.nvc"
    args = ["encode", str(sample_path), "-o", str(out), "--frames", "0:6", "--resize", "32x18", "--bpp", "20"]
    args += ["--epochs", "2", "--no-resume", "--no-audio", "-q", "--model", "mcgrid", "--gop", "3", "--order", "1"]
    result = runner.invoke(main, [*args, "--finest", "2"])
    assert result.exit_code == 0, result.output
    config = MCGridConfig.from_json(fmt.read(out.read_bytes()).arch.config)
    assert (config.gop, config.order, config.finest) == (3, RANDOM_ACCESS, 2)
    result = runner.invoke(main, [*args, "--finest", "3"])
    assert result.exit_code != 0 and "finest" in result.stderr
    result = runner.invoke(main, [*args[:-6], "--model", "grid", "--gop", "3"])
    assert result.exit_code != 0 and "--gop is not an option of grid; it applies to --model mcgrid" in result.stderr


def _group_of_four(options: dict):
    """The mcgrid objective of one low-delay group of four black 16x16 frames."""
    config = MCGridConfig(height=16, width=16, num_frames=4, gop=4)
    frames = np.zeros((4, 16, 16, 3), np.uint8)
    return objective_for(MCGrid(config), frames, torch.device("cpu"), "l2", 0, 4, options)


def test_lambda_is_not_steered_while_only_the_intra_frames_train():
    """The intra phase's rate estimate counts predicted frames whose latents are still zero: steering by
    it drove lambda to its floor before the whole groups started (their rate then grew unpriced)."""
    objective = _group_of_four({"intra_share": 0.5})
    objective.schedule("train", 0.2)
    assert objective.frame_batch(0, 0).tolist() == [0, 1] and not objective.steers_lambda()
    objective.schedule("train", 0.6)
    assert objective.frame_batch(0, 0).tolist() == [0, 1, 2, 3] and objective.steers_lambda()
    objective.schedule("finetune", 0.0)
    assert objective.steers_lambda()

    # RateTerm.observe on a bare controller
    rate = SimpleNamespace(
        controller=LambdaController(target_bits=100.0, lam=1.0), settings=SimpleNamespace(num_pixels=10)
    )
    RateTerm.observe(rate, torch.tensor(10.0), steer=False)
    assert rate.controller.lam == 1.0
    RateTerm.observe(rate, torch.tensor(10.0))
    assert rate.controller.lam < 1.0


def test_frame_weights_count_the_frames_made_from_each():
    """Low delay, a group of 4: the intra frame counts 1 + its 3 followers, P frame f 1 + propagation
    x the frames after it in the group (lambda per depth)."""
    assert _group_of_four({"propagation": 0.25}).weights == [4.0, 1.5, 1.25, 1.0]
    assert _group_of_four({"propagation": 0.0}).weights == [4.0, 1.0, 1.0, 1.0]


def test_a_step_moves_only_the_latents_of_the_frames_it_renders_and_prices():
    """The slice before a group is context for the group's intra frame, read as a constant: trained on
    that frame's rate alone (Adam turns any gradient into a full step), a group's last predicted frame
    grew to 10-15x the size of its group's others and decoded below its own prediction."""
    import contextlib

    from nvcodec.compress.proxy import ProxyMode

    config = MCGridConfig(height=16, width=16, num_frames=4, gop=2)
    frames = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    model = MCGrid(config)
    with torch.no_grad():
        for grid in model.latents[: config.levels]:
            grid.normal_(0.0, 3.0)  # large latents: the rate has a gradient everywhere
    objective = objective_for(model, frames, torch.device("cpu"), "l2", 0, 2, {"intra_share": 0.0})
    objective.rate = SimpleNamespace(
        mode=ProxyMode.NOISE, controller=SimpleNamespace(lam=1.0), settings=SimpleNamespace(num_pixels=4 * 256)
    )
    objective.schedule("train", 0.5)
    index = next(i for i in range(2) if objective.frame_batch(0, i).tolist() == [2, 3])
    before = [grid.detach().clone() for grid in model.latents]
    loss, _ = objective.step(0, index, contextlib.nullcontext())
    loss.backward()
    objective.update(1e-2)
    for level in range(config.levels):
        latents = model.latents[level].detach()
        assert torch.equal(latents[:2], before[level][:2]), level  # frame 1 was read, as context only
        assert not torch.equal(latents[2:], before[level][2:]), level
