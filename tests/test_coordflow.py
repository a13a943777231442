"""CoordFlow: parallel layers (eqs. 1-4), the weighted loss, sizing, round trip, decode-time applications."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
import torch

from nvcodec import errors
from nvcodec.api import RenderRequest, decode, encode
from nvcodec.cli import main
from nvcodec.families import declaration
from nvcodec.families.coordflow.model import PALETTE, CoordFlow, CoordFlowConfig
from nvcodec.families.coordflow.objective import combined, pixel_weights
from nvcodec.io import Video, read_video, write_video
from nvcodec.metrics import psnr
from nvcodec.train.objectives import objective_for

from .conftest import CONFORMANCE, TINY_ENCODES, moving_pattern

SETTINGS = TINY_ENCODES["coordflow"]


@pytest.fixture(scope="module")
def encoded(tiny_encode):
    return tiny_encode("coordflow")


def small_model(**changes) -> CoordFlow:
    torch.manual_seed(0)
    return CoordFlow(replace(CoordFlow.config_for_budget(36, 64, 8, 6_000), **changes)).eval()


def random_coords(n: int = 500) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    coords = torch.rand(n, 3, generator=g)
    coords[:, 2] = torch.randint(0, 8, (n,), generator=g) / 7  # frame times, as in training
    return coords


def test_registered_with_honest_capabilities():
    assert CoordFlow.capabilities == {"pixelwise", "any_scale", "any_time", "layers"}
    assert CoordFlow.render_option_names == {"segmentation", "remove_layer", "stabilize"}


def test_stacked_layers_equal_one_network_per_layer():
    """The batched evaluation is exactly n independent CoordFlow layers mixed by softmax (eqs. 1-4)."""
    model = small_model(layers=3)
    with torch.no_grad():  # a non-trivial flow, different per layer
        model.flow.last.bias.copy_(torch.tensor([0.2, 0.3, 0.1, -0.05, 0.0, -0.4, -0.2, 0.1, -0.1, 0.1, 0.3, 0.2]))
    coords = random_coords()
    n, hidden = 3, model.config.color_hidden
    aspect = torch.tensor([1.0, 36 / 64])
    rgbs, alphas = [], []
    for i in range(n):

        def net(mlp, x, i=i):
            layers = [*mlp.hidden, mlp.last]
            for j, lin in enumerate(layers):
                w = lin.weight.view(n, lin.out_features, lin.in_features)[i]
                x = x @ w.T + lin.bias.view(n, -1)[i]
                x = torch.relu(x) if j < len(layers) - 1 else x
            return x

        log_s, theta, dx, dy = net(model.flow, model.pe_t(coords[:, 2])).unbind(-1)
        u, v = ((coords[:, :2] * 2 - 1) * aspect).unbind(-1)
        s = torch.exp(log_s)
        u2 = s * torch.cos(theta) * u - s * torch.sin(theta) * v + dx  # eq. 1 applied as in eq. 2
        v2 = s * torch.sin(theta) * u + s * torch.cos(theta) * v + dy
        out = net(model.color, torch.cat([model.pe_xy(u2), model.pe_xy(v2), model.pe_t(coords[:, 2])], -1))
        rgbs.append(torch.sigmoid(out[:, :3]))
        alphas.append(out[:, 3])
    weights = torch.softmax(torch.stack(alphas), 0)
    expected = (weights[..., None] * torch.stack(rgbs)).sum(0)
    with torch.no_grad():
        got = model.render_pixels(coords)
    assert hidden > 4 and torch.allclose(got, expected, atol=1e-5)


def test_translation_flow_moves_the_sampled_canvas():
    """A flow that outputs only dx renders the identity-flow picture shifted by dx (in centred units)."""
    model = small_model(layers=2)
    coords = random_coords()
    with torch.no_grad():
        identity = model.render_pixels(coords + torch.tensor([0.05, 0.0, 0.0]))
        model.flow.last.bias.copy_(torch.tensor([0.0, 0.0, 0.1, 0.0] * 2))  # u = 2x - 1: dx 0.1 is x + 0.05
        shifted = model.render_pixels(coords)
    assert torch.allclose(identity, shifted, atol=1e-5)


def test_config_validation_refuses_hostile_values():
    good = CoordFlow.config_for_budget(36, 64, 8, 6_000)
    assert CoordFlowConfig.from_json(good.to_json()) == good
    for change in (
        {"layers": 0},
        {"layers": 9},
        {"color_hidden": 100_000},
        {"flow_layers": 0},
        {"pe_levels_xy": 32, "pe_base_xy": 8.0},
        {"pe_base_t": 0.5},
        {"activation": "eval"},
        {"use_flow": 1},
        {"layers": 2.0},
    ):
        with pytest.raises(errors.ArchitectureError):
            CoordFlowConfig.from_json({**good.to_json(), **change})


def test_sizing_within_budget_and_paper_proportions():
    counts = [CoordFlow.count_params(CoordFlow.config_for_budget(180, 320, 32, p)) for p in (20_000, 60_000, 200_000)]
    assert counts == sorted(counts) and all(c <= p for c, p in zip(counts, (20_000, 60_000, 200_000)))
    assert counts[2] > 0.95 * 200_000
    for size, total in (("S", 3.13e6), ("M", 6.11e6), ("L", 12.68e6)):
        config = CoordFlow.paper_size(size, 1080, 1920, 600)
        with torch.device("meta"):
            model = CoordFlow(config)
        assert 0.97 * total <= CoordFlow.count_params(config) <= total
        assert 0.975 <= model.color_fraction() <= 0.99  # the paper: ~98.3% in the colour networks
    one = CoordFlow.recipe(180, 320, 32, 60_000, layers=1, use_flow=False)
    assert one.layers == 1 and not one.use_flow and CoordFlow.count_params(one) > 0.95 * 60_000


def test_loss_weights_follow_edges_and_motion(tiny_clip):
    w = pixel_weights(tiny_clip.frames)
    assert w.shape == tiny_clip.frames.shape[:3] and w.dtype == np.float32
    assert w.mean() == pytest.approx(1.0, rel=1e-4) and w.min() > 0
    flat = np.zeros((3, 16, 16, 3), np.uint8)
    flat[:, :, 8:] = 200  # one vertical edge, static
    flat[2, :4, :4] = 255  # a change in the last frame only
    w = pixel_weights(flat)
    assert w[0, 8, 8] > 1.5 * w[0, 8, 2]  # edge outweighs the flat region
    assert w[2, 1, 1] > w[0, 8, 2]  # temporal change outweighs the static flat region


def test_round_trip_through_the_file(encoded, tiny_clip):
    path, report = encoded
    decoded = decode(path).frames
    assert report.psnr == psnr(tiny_clip.frames, decoded)
    assert abs(report.bpp - SETTINGS.bpp) / SETTINGS.bpp <= 0.15
    mean_colour = np.broadcast_to(tiny_clip.frames.mean((0, 1, 2)).round().astype(np.uint8), tiny_clip.frames.shape)
    # 30 epochs (~6 CPU-s) of a 5k-parameter model on 8 frames of 64x36: measured 22.7 dB; one flat colour scores 12.6
    assert report.psnr > 20 and report.psnr > psnr(tiny_clip.frames, mean_colour) + 7


def test_any_scale_and_any_time(encoded):
    path, _ = encoded
    video = decode(path, request=RenderRequest(frames=(2, 6), scale=1.5, fps=decode(path).fps * 2))
    assert video.frames.shape == (7, 54, 96, 3)  # frames 2, 2.5, ..., 5 at 96x54
    exact = decode(path, request=RenderRequest(frames=(2, 6), fps=decode(path).fps * 2)).frames
    assert np.array_equal(exact[::2], decode(path, frames=(2, 6)).frames)  # integer times are the coded frames


def test_segmentation_is_a_palette_mix(encoded):
    path, _ = encoded
    seg = decode(path, request=RenderRequest(render_options={"segmentation": True})).frames.astype(np.float64) / 255
    red, green = np.array(PALETTE[0]), np.array(PALETTE[1])
    share = (seg - green) @ (red - green) / ((red - green) @ (red - green))  # weight of layer 0
    assert seg.shape == (8, 36, 64, 3)
    assert np.abs(green + share[..., None] * (red - green) - seg).max() < 3 / 255  # on the segment red-green
    assert share.min() > -0.02 and share.max() < 1.02


def test_remove_layer_renders_the_other_layer(encoded):
    path, _ = encoded
    full = decode(path).frames
    without = decode(path, request=RenderRequest(render_options={"remove_layer": 1})).frames
    assert without.shape == full.shape and not np.array_equal(without, full)
    from nvcodec.api import read_nvc
    from nvcodec.render import build_backbone

    model = build_backbone(read_nvc(path))
    coords = random_coords()
    with torch.no_grad():
        rgb, _ = model.layer_outputs(coords)
        model.set_render_options(remove_layer=1)
        assert torch.allclose(model.render_pixels(coords), rgb[0], atol=1e-6)  # renormalized: layer 0 alone


def test_stabilize_smooths_the_flow(encoded):
    path, _ = encoded
    from nvcodec.api import read_nvc
    from nvcodec.render import build_backbone

    model = build_backbone(read_nvc(path))
    times = model.frame_times(torch.arange(8))
    with torch.no_grad():
        raw = model.flow_params(times)
        model.set_render_options(stabilize=1e3)  # a very wide kernel: one transform for the whole clip
        flat = model.flow_params(times)
        model.set_render_options(stabilize=0.05)  # a very narrow one: the coded transforms
        same = model.flow_params(times)
    assert torch.allclose(flat, raw.mean(1, keepdim=True).expand_as(flat), atol=1e-5)
    assert torch.allclose(same, raw, atol=1e-6)
    video = decode(path, request=RenderRequest(render_options={"stabilize": 2.0}))
    assert video.frames.shape == (8, 36, 64, 3)


def test_render_option_errors(encoded):
    path, _ = encoded
    cases = [
        ({"remove_layer": 2}, "layers 0..1"),
        ({"remove_layer": -1}, "layers 0..1"),
        ({"stabilize": 0.0}, "sigma"),
        ({"stabilize": float("nan")}, "sigma"),
        ({"colour": 1}, "cannot do it; encode with none"),
    ]
    for options, message in cases:
        with pytest.raises(errors.UsageError, match=message):
            decode(path, request=RenderRequest(render_options=options))
    single = small_model(layers=1, use_flow=False)
    with pytest.raises(errors.UsageError, match="single layer"):
        single.set_render_options(remove_layer=0)
    with pytest.raises(errors.UsageError, match="without a flow"):
        single.set_render_options(stabilize=1.0)


def test_cli_applications_and_refusals(encoded, tmp_path, runner):
    path, _ = encoded
    out, seg = tmp_path / "out.mkv", tmp_path / "seg.mkv"
    result = runner.invoke(
        main,
        [
            "decode",
            str(path),
            "-o",
            str(out),
            "--segmentation",
            str(seg),
            "--remove-layer",
            "0",
            "--stabilize",
            "1.5",
            "--scale",
            "0.5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert read_video(out).frames.shape == read_video(seg).frames.shape == (8, 18, 32, 3)
    nerv = CONFORMANCE / "c1_nerv_9x17x3.nvc"
    for flag, value in (("--segmentation", str(tmp_path / "s.mkv")), ("--remove-layer", "0"), ("--stabilize", "2")):
        result = runner.invoke(main, ["decode", str(nerv), "-o", str(tmp_path / "n.mkv"), flag, value])
        assert result.exit_code == errors.UsageError.exit_code
        assert f"{flag}: nerv cannot do it; encode with coordflow" in result.output
        assert not (tmp_path / "n.mkv").exists() and not (tmp_path / "s.mkv").exists()


def test_interp_weight_trains_the_half_way_times():
    """The in-between batch sits at times k + 1/2 and is scored against the motion-compensated midpoints."""
    frames = moving_pattern(2.0, frames=5)
    model = CoordFlow(CoordFlow.config_for_budget(48, 64, 5, 6_000))
    objective = objective_for(model, frames, torch.device("cpu"), "l2", 0, 1, {"interp_weight": 0.5})
    coords, target = objective.midpoint_sample(0, 0)
    assert coords.shape == (1024, 3) and target.shape == (1024, 3)
    frame = coords[:, 2] * 4 - 0.5  # time in frames, minus half a frame
    assert torch.allclose(frame, frame.round(), atol=1e-5) and 0 <= frame.min() and frame.max() <= 3
    assert torch.equal(objective.midpoint_sample(0, 0)[0], coords)  # seeded: a resumed run sees the same batches
    off = objective_for(model, frames, torch.device("cpu"), "l2", 0, 1)
    assert off.interp_weight == 0 and not hasattr(off, "midpoints")  # no flow is computed unless asked
    with torch.no_grad():
        with_term, _ = objective.step(0, 0, contextlib.nullcontext())
        without, _ = off.step(0, 0, contextlib.nullcontext())
        rgb, alpha = model.layer_outputs(coords)
        term = combined(model.mix(rgb, alpha)[1], target, 1.0).mean()
    assert float(with_term) == pytest.approx(float(without + 0.5 * term), rel=1e-5)


@pytest.mark.slow  # trains, or decodes in a subprocess
def test_interp_weight_renders_motion_between_frames(tmp_path):
    """Coded every other frame of a texture moving 4 px/frame: only with the midpoints do the
    in-between renders follow the motion; without them they fall below averaging the neighbours.
    (Measured: average 28.4 dB; odd frames 26.0 dB without, 34.6 dB with, coded frames 37.1 / 33.9.)"""
    clip = moving_pattern(4.0, frames=9)
    coded, dropped = clip[::2], clip[1::2]
    average = np.rint((coded[:-1].astype(np.float64) + coded[1:]) / 2).astype(np.uint8)
    odd = {}
    for weight in (0.0, 1.0):
        settings = replace(SETTINGS, bpp=4.0, epochs=40, objective_options={"interp_weight": weight})
        encode(Video(coded, Fraction(25)), tmp_path / f"w{weight}.nvc", settings)
        doubled = decode(tmp_path / f"w{weight}.nvc", request=RenderRequest(fps=Fraction(50))).frames
        odd[weight] = psnr(dropped, doubled[1::2])
    assert odd[1.0] > psnr(dropped, average) + 3 and odd[1.0] > odd[0.0] + 3


def test_interp_weight_is_checked(tiny_clip, tmp_path, runner):
    with pytest.raises(ValueError, match="--interp-weight -1 is outside"):
        declaration("coordflow").check_encode_options({"interp_weight": -1.0})
    source = tmp_path / "in.mkv"
    write_video(source, tiny_clip)
    result = runner.invoke(
        main, ["encode", str(source), "-o", str(tmp_path / "n.nvc"), "--model", "nerv", "--interp-weight", "0.5"]
    )
    assert result.exit_code == errors.UsageError.exit_code
    assert "--interp-weight is not an option of nerv; it applies to --model coordflow" in result.output
