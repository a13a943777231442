"""Rate-aware training: proxies, the rate estimate against the real coder, lambda, rate control, resume."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from nvcodec.api import encode, inspect
from nvcodec.compress.entropy import ModelId, encode_symbols
from nvcodec.compress.proxy import LearnedQuantizer, ProxyMode, geometric_bits
from nvcodec.compress.quantize import MAX_SYMBOL, dequantize, quantize_with_steps, scale_steps
from nvcodec.compress.ratecontrol import LambdaController, land_on_target_by_scale
from nvcodec.families.nerv.model import NeRV
from nvcodec.train.rate import RateSettings, RateTerm

from .conftest import TINY_ENCODES

SETTINGS = replace(TINY_ENCODES["nerv"], epochs=40, resume=False)  # shorter runs derive from it


@pytest.mark.parametrize("scale", [0.3, 2.0, 12.0])
def test_geometric_estimate_matches_the_coded_payload(scale):
    rng = np.random.default_rng(0)
    symbols = np.rint(rng.laplace(0, scale, 20_000)).astype(np.int64)
    coded = encode_symbols(symbols, ModelId.GEOMETRIC)
    estimate = float(geometric_bits(torch.from_numpy(symbols).float()))
    assert estimate == pytest.approx(8 * coded.payload_bytes, rel=0.02)


def test_all_zero_tensor_costs_nothing():
    assert float(geometric_bits(torch.zeros(100))) < 1.0


def test_proxy_modes():
    torch.manual_seed(0)
    weight = torch.randn(8, 40)
    q = LearnedQuantizer(weight, 6.0)
    step = q.step().reshape(-1, 1)
    q.mode = ProxyMode.OFF
    assert torch.equal(q(weight), weight)
    q.mode = ProxyMode.NOISE
    noisy = q(weight)
    assert not torch.equal(noisy, weight) and bool(((noisy - weight).abs() <= step / 2 + 1e-6).all())
    q.mode = ProxyMode.HARD
    hard = q(weight)
    # exactly what the decoder rebuilds from the file's symbols and binary16 steps
    quantized = quantize_with_steps(weight.numpy(), q.file_steps())
    assert np.array_equal(
        hard.detach().numpy(), dequantize(quantized.symbols, quantized.steps, quantized.shape, quantized.axis)
    )
    hard.sum().backward()  # straight-through: gradients reach the weights' quantizer
    assert q.log_step.grad is not None


def test_scaled_steps_keep_symbols_in_the_alphabet():
    """Large weights, and small ones whose floor falls between two binary16 subnormals (rounded to
    nearest it lost a third: 44,000 levels where 32,767 fit)."""
    for top in (1000.0, 0.00263):
        weights = [np.linspace(-top, top, 64, dtype=np.float32).reshape(2, 32)]
        steps = scale_steps(weights, [np.array([1e-3, 1e-3], np.float16)], 1e-9)
        assert np.abs(quantize_with_steps(weights[0], steps[0]).symbols).max() <= MAX_SYMBOL
        assert np.array_equal(quantize_with_steps(weights[0], np.full(2, 2.0**-24)).steps, steps[0])


def test_lambda_controller_steers_toward_the_target():
    control = LambdaController(1000.0, 1e-3)
    assert control.update(2000.0) > 1e-3
    lam = control.lam
    assert control.update(500.0) < lam
    constant = LambdaController(None, 1e-3)
    assert constant.update(5000.0) == 1e-3


def test_lambda_controller_release_and_band():
    """Under the target a lambda above its start falls ``release`` times faster; lambda stays in its bounds."""
    symmetric, released = LambdaController(1000.0, 1e-2), LambdaController(1000.0, 1e-2, release=4.0)
    assert symmetric.update(500.0) == released.update(500.0) < 1e-2  # below its start: the plain gain
    for control in (symmetric, released):
        control.lam = 2e-2
    assert math.isclose(math.log(released.update(500.0) / 2e-2), 4 * math.log(symmetric.update(500.0) / 2e-2))
    assert LambdaController(1000.0, 1e-2, release=4.0).update(2000.0) == LambdaController(1000.0, 1e-2).update(2000.0)
    banded = LambdaController(1000.0, 1e-2, gain=1.0, bounds=(0.1, 10.0))
    assert [banded.update(1e9) for _ in range(10)][-1] == pytest.approx(0.1)
    assert [banded.update(1.0) for _ in range(30)][-1] == pytest.approx(1e-3)
    priced = RateSettings(num_pixels=1000, fixed_bits=0.0, target_bits=100.0, lam_x_bpp=0.015)
    assert priced.start_lambda() == pytest.approx(0.15)  # 0.015 / (100 / 1000 bpp)
    assert replace(priced, target_bits=None, lam=2e-3).start_lambda() == 2e-3  # constant lambda: as given


def test_step_scale_search_lands_on_target():
    def size(scale: float) -> int:
        return int(10_000 / scale)

    scale = land_on_target_by_scale(size, 4_000)
    assert abs(size(scale) - 4_000) / 4_000 <= 0.03


def test_proxy_schedule_switches_as_planned(tiny_clip):
    model = NeRV(NeRV.config_for_budget(36, 64, 8, 3_000))
    rate = RateTerm(
        model, RateSettings(num_pixels=tiny_clip.num_pixels, fixed_bits=800.0, target_bits=20_000.0, proxy_start=0.5)
    )
    modes = []
    for stage, fraction in [("train", 0.0), ("train", 0.49), ("train", 0.5), ("train", 0.9), ("finetune", 0.0)]:
        rate.schedule(stage, fraction)
        modes.append(rate.quantizers[0].mode)
    assert modes == [ProxyMode.OFF, ProxyMode.OFF, ProxyMode.NOISE, ProxyMode.NOISE, ProxyMode.HARD]
    # the proxy started from steps calibrated so that the estimate meets the target
    assert rate.calibrated == "hard"
    assert float(rate.bits()) == pytest.approx(20_000.0, rel=0.25)
    assert not rate.due(1) and rate.due(0)


def test_in_place_proxy_is_reproducible_and_restored(tiny_clip):
    model = NeRV(NeRV.config_for_budget(36, 64, 8, 3_000)).to(memory_format=torch.channels_last)
    rate = RateTerm(model, RateSettings(num_pixels=tiny_clip.num_pixels, fixed_bits=800.0, target_bits=20_000.0))
    rate.schedule("train", 0.9)  # the noise phase
    before = [p.detach().clone() for p in rate.params]
    seen = []
    for _ in range(2):
        rate.perturb(seed=5)
        seen.append([p.detach().clone() for p in rate.params])
        rate.restore()
    assert all(torch.equal(a, b) for a, b in zip(*seen))  # the same step draws the same noise (resume)
    assert not all(torch.equal(a, b) for a, b in zip(seen[0], before))
    assert all(torch.equal(a, b) for a, b in zip(rate.params, before))  # the float weights come back


@pytest.fixture(scope="module")
def rate_encoded(tiny_encode):
    return tiny_encode("nerv")  # rate-aware: the default


def test_rate_aware_encode_lands_on_target_and_estimate_matches_file(rate_encoded):
    path, report = rate_encoded
    assert report.quant_bits is None and report.lam is not None
    assert abs(report.bpp - SETTINGS.bpp) / SETTINGS.bpp <= 0.03
    assert abs(report.estimated_bytes - report.file_bytes) / report.file_bytes <= 0.03
    # 40 epochs on 8 real frames of 64x36 at 3 bpp: measured 24.3 dB; a grey picture scores about 12 dB
    assert report.psnr > 20
    assert inspect(path)["metadata"]["lambda"] == pytest.approx(report.lam)
    assert inspect(path)["metadata"]["estimated_bytes"] == report.estimated_bytes


@pytest.mark.parametrize("model", ["snerv-t", "coordflow"])
@pytest.mark.slow  # trains, or decodes in a subprocess
def test_rate_aware_encode_of_other_families(model, tiny_clip, tmp_path):
    # snerv-t: embeddings made by an encoder during training, in two coded tensors; coordflow: pixel-wise
    report = encode(tiny_clip, tmp_path / "x.nvc", replace(SETTINGS, model=model, epochs=20))
    assert abs(report.bpp - SETTINGS.bpp) / SETTINGS.bpp <= 0.03
    assert abs(report.estimated_bytes - report.file_bytes) / report.file_bytes <= 0.03
    assert report.psnr > 15  # a grey picture scores about 12 dB


@pytest.mark.slow  # trains, or decodes in a subprocess
def test_larger_lambda_gives_smaller_file(tiny_clip, tmp_path):
    sizes = []
    for lam in (1e-6, 1e-3):
        report = encode(tiny_clip, tmp_path / f"{lam}.nvc", replace(SETTINGS, lam=lam, epochs=20))
        assert report.target_bpp is None
        sizes.append(report.file_bytes)
    assert sizes[1] < 0.98 * sizes[0]  # measured 7,164 against 7,560 bytes (the steps move at Adam's pace)


@pytest.mark.slow  # trains, or decodes in a subprocess
def test_resumed_rate_aware_encode_lands_on_the_same_budget(tiny_clip, tmp_path):
    path, reference = tmp_path / "resumed.nvc", tmp_path / "reference.nvc"
    settings = replace(SETTINGS, resume=True, epochs=20)
    encode(tiny_clip, reference, settings)  # the same settings (they are in mETA, hence in the rate estimate)

    def stop_in_finetune(p):
        if p.stage == "finetune":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match="resumes from"):
        encode(tiny_clip, path, settings, progress=stop_in_finetune)
    with pytest.raises(KeyboardInterrupt, match="nothing to resume"):
        encode(tiny_clip, tmp_path / "other.nvc", settings, progress=_interrupt)  # at the first step
    checkpoint = path.with_name(path.name + ".ckpt.npz")
    assert checkpoint.is_file() and not path.exists()
    report = encode(tiny_clip, path, settings)
    assert abs(report.bpp - SETTINGS.bpp) / SETTINGS.bpp <= 0.03
    assert not checkpoint.exists()
    # resumed from the end of the "train" stage: the same file as the run that was never interrupted
    assert inspect(path)["weights_sha256"] == inspect(reference)["weights_sha256"]


def _interrupt(_progress):
    raise KeyboardInterrupt


@pytest.mark.slow  # trains, or decodes in a subprocess
def test_rate_training_off_is_the_post_training_path(tiny_clip, tmp_path):
    report = encode(tiny_clip, tmp_path / "off.nvc", replace(SETTINGS, rate_training=False, epochs=20))
    assert report.quant_bits is not None and report.estimated_bytes is None
    assert abs(report.bpp - SETTINGS.bpp) / SETTINGS.bpp <= 0.15
