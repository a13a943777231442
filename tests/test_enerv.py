"""E-NeRV: shapes at odd sizes, the paper's blocks, sizing, hostile configs, .nvc round trip, time input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nvcodec import errors
from nvcodec.api import EncodeSettings, RenderRequest, decode, encode, inspect
from nvcodec.families import backbone_class
from nvcodec.families.enerv.model import (
    MAX_TOKENS,
    ENeRV,
    ENeRVConfig,
    TemporalInstanceNorm,
    UpgradedNeRVBlock,
    enerv_strides,
)
from nvcodec.metrics import psnr


@pytest.mark.parametrize("height, width", [(9, 17), (36, 64), (31, 47), (180, 320)])
def test_renders_exact_frame_size_and_batch_does_not_matter(height, width):
    torch.manual_seed(0)
    model = ENeRV(ENeRV.config_for_budget(height, width, 5, 8_000)).eval()
    t = model.frame_times(torch.arange(3))
    with torch.no_grad():
        frames = model.render_frames(t)
        alone = model.render_frames(t[1:2])
    assert frames.shape == (3, 3, height, width)
    assert float(frames.min()) >= 0 and float(frames.max()) <= 1
    assert torch.allclose(frames[1:2], alone, atol=1e-5)  # per-frame norms: no leak across the batch


def test_channels_last_gives_the_same_frames():
    torch.manual_seed(0)
    model = ENeRV(ENeRV.config_for_budget(36, 64, 4, 10_000)).eval()
    t = torch.tensor([0.0, 0.4])
    with torch.no_grad():
        plain = model.render_frames(t)
        fast = model.to(memory_format=torch.channels_last).render_frames(t)
    assert torch.allclose(plain, fast, atol=1e-5)


def test_recipe_keeps_the_paper_proportions():
    cfg = ENeRV.config_for_budget(180, 320, 32, 300_000)
    assert ENeRV.count_params(cfg) <= 300_000
    c = cfg.fc_channels
    assert cfg.strides == (5, 2, 2) and cfg.base_grid == (9, 16)
    assert cfg.channels == (3 * c, 3 * c // 2, 3 * c // 4)  # expansion 3, then halving
    assert cfg.first_inner == c // 4  # C0 = min(C1, C2) / 4
    assert cfg.dim == round(c * 256 / 196) and cfg.t_hidden == 2 * cfg.dim and cfg.tin_dim == cfg.dim // 2
    assert cfg.fuse_heads == 8


def test_budget_sizing_is_monotone_and_within_budget():
    budgets = (30_000, 100_000, 300_000)
    counts = [ENeRV.count_params(ENeRV.config_for_budget(180, 320, 32, p)) for p in budgets]
    assert counts == sorted(counts) and all(c <= p for c, p in zip(counts, budgets))
    assert all(c > 0.85 * p for c, p in zip(counts, budgets))


def test_strides_keep_the_attention_grid_small():
    assert enerv_strides(180, 320) == (5, 2, 2)
    for height, width in [(1001, 1999), (4096, 4097), (2160, 3840)]:
        cfg = ENeRV.recipe(height, width, 2, 16)
        h0, w0 = cfg.base_grid
        assert h0 * w0 <= MAX_TOKENS
        cfg.validate()


def test_upgraded_block_parameter_count_matches_the_paper():
    c1, c0, c2, s = 32, 8, 96, 5
    block = UpgradedNeRVBlock(c1, c0, c2, s, "gelu")
    weights = sum(p.numel() for n, p in block.named_parameters() if n.endswith("weight"))
    assert weights == 3 * 3 * c0 * (c1 * s * s + c2)  # paper eq. 6
    assert block(torch.rand(2, c1, 3, 4)).shape == (2, c2, 15, 20)


@pytest.mark.parametrize("channels_last", [False, True])
def test_temporal_instance_norm_is_eq5(channels_last):
    torch.manual_seed(0)
    norm = TemporalInstanceNorm(6, 5)
    x = torch.randn(3, 5, 7, 9) * 3 + 1
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    l_t = torch.randn(3, 6)
    scale, shift = norm.to_scale_shift(l_t).chunk(2, dim=1)
    expected = F.instance_norm(x, eps=norm.eps) * (1 + scale)[:, :, None, None] + shift[:, :, None, None]
    assert torch.allclose(norm(x, l_t), expected, atol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # statistics stay fp32 under autocast
        low = norm(x.to(torch.bfloat16), l_t)
    assert torch.allclose(low.float(), expected, atol=0.1)


def test_config_from_untrusted_json():
    good = ENeRV.config_for_budget(36, 64, 8, 10_000)
    assert ENeRVConfig.from_json(good.to_json()) == good
    bad_values = [
        {"strides": [1]},
        {"channels": [8]},
        {"fuse_heads": 0},
        {"fuse_heads": 64, "head_dim": 4096},
        {"fc_channels": 3},
        {"dim": 0},
        {"tin_dim": 5000},
        {"activation": "exec"},
        {"pe_levels": 256},
        {"tin_pe_base": 0.5},
        {"head_dim": True},
        {"strides": [2, 2, 9]},
        {"pe_base": "1.25"},
    ]
    for change in bad_values:
        with pytest.raises(errors.ArchitectureError):
            ENeRVConfig.from_json({**good.to_json(), **change})


def test_registry_and_capabilities():
    assert backbone_class("enerv") is ENeRV
    assert ENeRV.capabilities == {"framewise", "any_time"}


@pytest.fixture(scope="module")
def encoded(tiny_encode):
    return tiny_encode("enerv")


def test_round_trip_through_the_file(encoded, tiny_clip):
    path, report = encoded
    decoded = decode(path)
    assert report.model == "enerv" and report.file_bytes == path.stat().st_size
    assert report.psnr == psnr(tiny_clip.frames, decoded.frames)
    assert abs(report.bpp - 4.0) / 4.0 <= 0.15
    info = inspect(path)
    assert info["model"]["family"] == "enerv" and ENeRVConfig.from_json(info["model"]["config"]).fc_channels >= 4
    # 40 epochs on 8 real frames of 64x36 at 4 bpp (11k parameters): measured 24.4 dB; a flat grey
    # picture scores about 12 dB
    assert report.psnr > 21
    assert np.array_equal(decode(path, frames=(3, 6)).frames, decoded.frames[3:6])


def test_time_input_renders_between_frames(encoded, tiny_clip):
    path, _ = encoded
    full = decode(path).frames
    doubled = decode(path, request=RenderRequest(fps=tiny_clip.fps * 2)).frames
    assert len(doubled) == 2 * len(full) - 1
    assert np.array_equal(doubled[::2], full)  # coded times land exactly on the coded frames
    between = doubled[1::2].astype(float)
    assert not np.array_equal(doubled[1::2], full[:-1])  # really rendered, not repeated
    assert psnr(between.astype(np.uint8), tiny_clip.frames[:-1]) > 12


def test_scale_is_refused(encoded):
    path, _ = encoded
    with pytest.raises(errors.UsageError, match="--scale"):
        decode(path, request=RenderRequest(scale=2.0))


@pytest.mark.slow  # trains, or decodes in a subprocess
def test_odd_clip_round_trip(odd_clip, tmp_path):
    path = tmp_path / "odd.nvc"
    report = encode(odd_clip, path, EncodeSettings(model="enerv", bpp=200.0, epochs=8, device="cpu", amp=False))
    assert decode(path).frames.shape == (3, 9, 17, 3)
    assert report.psnr == psnr(odd_clip.frames, decode(path).frames)
