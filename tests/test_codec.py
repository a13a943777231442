"""End to end: encode -> .nvc -> independent decode, with honest numbers; CLI behaviour."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from nvcodec import errors
from nvcodec.api import EncodeSettings, decode, encode, inspect
from nvcodec.cli import main
from nvcodec.io import read_video, write_video
from nvcodec.metrics import psnr

from .conftest import TINY_ENCODES

SETTINGS = TINY_ENCODES["nerv"]


@pytest.fixture(scope="module")
def encoded(tiny_encode):
    return tiny_encode("nerv")


def test_report_is_measured_on_the_decoded_file(encoded, tiny_clip):
    path, report = encoded
    size = path.stat().st_size
    assert report.file_bytes == size
    assert report.bpp == 8 * size / (64 * 36 * 8)
    assert report.psnr == psnr(tiny_clip.frames, decode(path).frames)
    assert inspect(path)["metadata"]["measured"]["psnr"] == pytest.approx(report.psnr, abs=1e-9)
    assert not path.with_name(path.name + ".ckpt.npz").exists()


def test_rate_lands_on_target_and_quality_floor(encoded):
    _, report = encoded
    assert abs(report.bpp - SETTINGS.bpp) / SETTINGS.bpp <= 0.15
    # 60 epochs on 8 real frames of 64x36 at 3 bpp: measured 25.4 dB; a grey picture scores about 12 dB
    assert report.psnr > 20


def test_random_access_matches_full_decode(encoded):
    path, _ = encoded
    full = decode(path).frames
    part = decode(path, frames=(2, 5)).frames
    assert np.array_equal(part, full[2:5])


@pytest.mark.slow  # trains, or decodes in a subprocess
def test_decoder_imports_nothing_from_training(encoded):
    path, _ = encoded
    code = (
        "import sys; from nvcodec.api import decode; decode(sys.argv[1]); "
        "bad = [m for m in sys.modules if m.startswith('nvcodec.train')]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)


def test_cli_decode_and_eval_agree_with_encoder(encoded, tiny_clip, tmp_path, runner):
    path, report = encoded
    source = tmp_path / "source.mkv"
    write_video(source, tiny_clip)
    out = tmp_path / "rec.mkv"
    result = runner.invoke(main, ["decode", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["eval", str(source), str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["psnr"] == pytest.approx(report.psnr, abs=1e-9)
    y4m = tmp_path / "rec.y4m"
    assert runner.invoke(main, ["decode", str(path), "-o", str(y4m)]).exit_code == 0
    assert abs(psnr(tiny_clip.frames, read_video(y4m).frames) - report.psnr) < 0.1


def test_cli_info_json(encoded, runner):
    path, report = encoded
    result = runner.invoke(main, ["info", str(path), "--json"])
    data = json.loads(result.stdout)
    assert data["bytes"] == report.file_bytes and data["model"]["family"] == "nerv"
    assert data["model"]["params"] == report.num_params
    assert data["payload_bytes"] < data["bytes"]


def one_line_error(result, code):
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nvc: error: "), result.stderr
    return lines[0]


def test_cli_bad_input_errors(tmp_path, runner, sample_path, encoded):
    path, _ = encoded
    line = one_line_error(runner.invoke(main, ["encode", str(tmp_path / "nope.mp4"), "-o", "x.nvc"]), 3)
    assert "no such file" in line
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    assert "not a video" in one_line_error(runner.invoke(main, ["encode", str(tmp_path / "bad.mp4"), "-o", "x.nvc"]), 3)
    line = one_line_error(
        runner.invoke(
            main,
            [
                "encode",
                str(sample_path),
                "--frames",
                "0:2",
                "--resize",
                "32x18",
                "--bpp",
                "0.01",
                "-o",
                str(tmp_path / "x.nvc"),
            ],
        ),
        4,
    )
    assert "cannot be met" in line and "raise --bpp" in line
    line = one_line_error(runner.invoke(main, ["encode", str(sample_path), "-o", str(tmp_path / "x.mp4")]), 2)
    assert ".nvc" in line
    line = one_line_error(runner.invoke(main, ["decode", str(path), "-o", str(tmp_path / "r.mkv"), "--scale", "2"]), 2)
    assert "pixel-wise" in line
    line = one_line_error(
        runner.invoke(main, ["decode", str(path), "-o", str(tmp_path / "r.mkv"), "--frames", "50:60"]), 2
    )
    assert "8 frames" in line
    line = one_line_error(
        runner.invoke(main, ["decode", str(sample_path), "-o", str(tmp_path / "r.mkv")]),
        errors.BitstreamError.exit_code,
    )
    assert "signature" in line


@pytest.mark.slow  # trains, or decodes in a subprocess
def test_interrupted_fit_resumes_from_checkpoint(tiny_clip, tmp_path):
    import torch

    from nvcodec.families.nerv.model import NeRV
    from nvcodec.train.fit import TrainConfig, fit

    cfg = TrainConfig(epochs=6, finetune_epochs=2, amp=False, checkpoint_seconds=0)
    config = NeRV.config_for_budget(36, 64, 8, 3_000)
    ckpt = tmp_path / "run.ckpt.npz"

    def interrupt_at_step_30(p):
        if p.step >= 30:
            raise KeyboardInterrupt

    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        fit(NeRV(config), tiny_clip.frames, cfg, torch.device("cpu"), interrupt_at_step_30, ckpt)
    assert ckpt.is_file()
    steps = []
    fit(NeRV(config), tiny_clip.frames, cfg, torch.device("cpu"), lambda p: steps.append(p.step), ckpt)
    assert steps[0] > 8 and steps[-1] == 64  # resumed after the saved epochs, finished all 8 epochs x 8 frames
    # the checkpoint now holds a finished run; another run (another model, another seed) starts over
    from dataclasses import replace

    other = NeRV.config_for_budget(36, 64, 8, 20_000)
    assert other != config
    for model, train_cfg in [(NeRV(other), cfg), (NeRV(config), replace(cfg, seed=1))]:
        steps = []
        fit(model, tiny_clip.frames, train_cfg, torch.device("cpu"), lambda p, seen=steps: seen.append(p.step), ckpt)
        assert steps[0] == 1 and steps[-1] == 64


@pytest.mark.slow  # trains
def test_a_resumed_fit_ends_with_the_weights_of_an_uninterrupted_one(tiny_clip, tmp_path, monkeypatch):
    """Optimizer moments come back from the checkpoint in their weight's memory layout (fused
    Adam walks both as flat memory; channels-last weights with contiguous moments trained on)."""
    import torch

    from nvcodec.families.nerv.model import NeRV
    from nvcodec.train import fit as fit_module
    from nvcodec.train.fit import TrainConfig, fit

    monkeypatch.setattr(fit_module._Reporter, "interval", 0.0)  # every step reported: the interrupt comes at step 20

    cfg = TrainConfig(epochs=4, finetune_epochs=1, amp=False, checkpoint_seconds=0)
    config = NeRV.config_for_budget(36, 64, 8, 20_000)  # 3x3 convolutions: channels-last differs

    def interrupt_at_step_20(p):
        if p.step >= 20:
            raise KeyboardInterrupt

    def trained(interrupted: bool) -> dict:
        ckpt = tmp_path / f"{interrupted}.ckpt.npz"
        if interrupted:
            torch.manual_seed(0)
            with pytest.raises(KeyboardInterrupt):
                fit(NeRV(config), tiny_clip.frames, cfg, torch.device("cpu"), interrupt_at_step_20, ckpt)
        torch.manual_seed(0)
        return fit(NeRV(config), tiny_clip.frames, cfg, torch.device("cpu"), None, ckpt).state_dict()

    resumed, straight = trained(True), trained(False)
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)


@pytest.mark.slow  # trains, or decodes in a subprocess
def test_time_budget_ends_training_on_time_and_resumes(tiny_clip, tmp_path, tick_clock):
    import torch

    from nvcodec.families.nerv.model import NeRV
    from nvcodec.train.fit import TrainConfig, fit

    cfg = TrainConfig(epochs=4, finetune_epochs=1, amp=False, checkpoint_seconds=0, train_seconds=1.5)
    config = NeRV.config_for_budget(36, 64, 8, 3_000)
    seen = []
    fit(NeRV(config), tiny_clip.frames, cfg, torch.device("cpu"), seen.append)
    assert 1.5 <= tick_clock.now <= 1.5 + 0.1  # the budget, and at most a step's readings past it
    assert seen[-1].fraction == 1.0 and seen[-1].total_steps == 0
    assert {p.stage for p in seen} == {"train", "finetune"}

    # interrupted at 40%: the resumed run carries the seconds already spent and ends at the same budget
    ckpt, frames = tmp_path / "budget.ckpt.npz", tiny_clip.frames[:2]  # 2-step epochs: a checkpoint after each

    def interrupt(p):
        if p.fraction >= 0.4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(NeRV(config), frames, cfg, torch.device("cpu"), interrupt, ckpt)
    with np.load(ckpt, allow_pickle=False) as data:
        saved = json.loads(str(data["state"]))
    assert saved["stage"] == 0 and saved["spent"] > 0
    already = saved["spent"] / cfg.train_seconds  # of the whole run (the train stage is its first 4/5)
    resumed = []
    before = tick_clock.now
    fit(NeRV(config), frames, cfg, torch.device("cpu"), resumed.append, ckpt)
    assert resumed[0].fraction >= already and resumed[-1].fraction == 1.0
    left = cfg.train_seconds - saved["spent"]
    assert left <= tick_clock.now - before <= left + 0.1  # only what was left


@pytest.mark.slow  # trains, or decodes in a subprocess
def test_set_up_counts_once_against_the_budget(tiny_clip, tick_clock):
    """The caller's set-up shortens the first stage only; the fine-tune stage keeps its share."""
    import torch

    from nvcodec.families.nerv.model import NeRV
    from nvcodec.train.fit import TrainConfig, fit

    cfg = TrainConfig(epochs=1, finetune_epochs=1, amp=False, train_seconds=2.0)
    seen = []
    set_up_started = tick_clock() - 0.5  # as if sizing and the trial took 0.5 s
    fit(
        NeRV(NeRV.config_for_budget(36, 64, 8, 3_000)),
        tiny_clip.frames,
        cfg,
        torch.device("cpu"),
        seen.append,
        clock_started=set_up_started,
    )
    assert 2.0 <= tick_clock.now - set_up_started <= 2.0 + 0.1  # the budget, set-up included
    assert {p.stage for p in seen} == {"train", "finetune"}
    finetune_steps = [p for p in seen if p.stage == "finetune"]
    assert finetune_steps[-1].step - finetune_steps[0].step > 5  # the second half was not eaten by the set-up


def test_train_time_and_epochs_are_exclusive(tiny_clip, tmp_path):
    with pytest.raises(errors.UsageError, match="--train-time"):
        encode(tiny_clip, tmp_path / "x.nvc", EncodeSettings(bpp=3.0, epochs=2, train_seconds=1.0, device="cpu"))


def test_cli_bad_values_are_one_line_errors(runner):
    for args, words in (
        [["encode", "x.mp4", "-o", "y.nvc", "--bpp", "abc"], "'--bpp'"],
        [["encode"], "INPUT"],
        [["decode", "x.nvc", "-o", "y.mkv", "--nope"], "--nope"],
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 2
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("nvc: error: ") and words in lines[0], result.output
