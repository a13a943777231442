"""Shared fixtures: tiny real clips (from the bundled sample) and a runner for the CLI."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from nvcodec.io import Video, read_video, sample_clip_path
from nvcodec.settings import EncodeSettings

CONFORMANCE = Path(__file__).parent / "conformance"

torch.set_num_threads(2)
# torch.compile costs seconds per model: the suite trains eagerly (inherited by the CLI subprocesses);
# tests/test_compiled.py turns it on where it is the subject
os.environ["NVC_COMPILE"] = "0"


def moving_pattern(shift: float, frames: int = 4, height: int = 48, width: int = 64) -> np.ndarray:
    """A smooth texture translating ``shift`` pixels per frame to the right."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    out = []
    for t in range(frames):
        xs = x - shift * t
        value = 128 + 60 * np.sin(xs / 5.0) * np.cos(y / 7.0) + 40 * np.sin((xs + y) / 11.0)
        out.append(np.repeat(value[..., None], 3, axis=2))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# One tiny encode per family (8 frames of 64x36, a few dozen epochs), made at most once per session
# by ``tiny_encode`` and shared by every module that needs a trained file of that family.
TINY_ENCODES: dict[str, EncodeSettings] = {
    "nerv": EncodeSettings(bpp=3.0, epochs=60, device="cpu", amp=False),
    "enerv": EncodeSettings(model="enerv", bpp=4.0, epochs=40, device="cpu", amp=False),
    "hnerv": EncodeSettings(model="hnerv", bpp=3.0, epochs=40, device="cpu", amp=False),
    "snerv-b": EncodeSettings(model="snerv-b", bpp=3.0, epochs=40, device="cpu", amp=False),
    "snerv-t": EncodeSettings(model="snerv-t", bpp=3.0, epochs=40, device="cpu", amp=False),
    "coordflow": EncodeSettings(model="coordflow", bpp=2.0, epochs=30, device="cpu", amp=False, resume=False),
    "siren": EncodeSettings(model="siren", bpp=3.0, epochs=60, device="cpu", amp=False, resume=False),
    "grid": EncodeSettings(model="grid", bpp=1.5, epochs=100, device="cpu", resume=False),
    "mcgrid": EncodeSettings(model="mcgrid", bpp=1.5, epochs=150, device="cpu", resume=False),
    # random access: frame 7 a P frame, frames 1-6 hierarchical B frames
    "mcgrid_ra": EncodeSettings(
        model="mcgrid", bpp=1.5, epochs=150, device="cpu", resume=False, objective_options={"order": 1}
    ),
}
TRAINING_FIXTURES = {"tiny_encode", "encoded", "rate_encoded"}  # fixtures that run an encode


def pytest_collection_modifyitems(items) -> None:
    """Tests that use a trained file are end-to-end: marked slow (`-m "not slow"` is the unit subset)."""
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def sample_path() -> Path:
    return sample_clip_path()


@pytest.fixture(scope="session")
def tiny_clip(sample_path) -> Video:
    """8 frames of Big Buck Bunny at 64x36: real content, seconds to fit."""
    return read_video(sample_path, (0, 8), (64, 36))


@pytest.fixture(scope="session")
def odd_clip() -> Video:
    """3 frames of 17x9 smooth synthetic content (odd sizes on purpose)."""
    y, x = np.mgrid[0:9, 0:17]
    frames = np.stack([np.stack([(x * 15 + t * 20) % 256, (y * 28) % 256, (x + y) * 10 % 256], -1) for t in range(3)])
    return Video(frames.astype(np.uint8), fps=Fraction(25))


@pytest.fixture(scope="session")
def tiny_encode(tiny_clip, tmp_path_factory):
    """``tiny_encode(family)`` -> (path, report) of ``tiny_clip`` encoded with TINY_ENCODES[family],
    encoded once per session. Tests read the file; one that alters a file copies it first."""
    from nvcodec.api import encode

    done: dict[str, tuple[Path, object]] = {}

    def get(family: str):
        if family not in done:
            path = tmp_path_factory.mktemp(family) / "tiny.nvc"
            done[family] = (path, encode(tiny_clip, path, TINY_ENCODES[family]))
        return done[family]

    return get


class TickClock:
    """A budget clock that advances one tick at every reading: a time budget then ends after a
    fixed number of readings, whatever the machine's load (no wall-time asserts)."""

    def __init__(self, tick: float = 0.01) -> None:
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


@pytest.fixture
def tick_clock(monkeypatch) -> TickClock:
    """Training's "wall" budget clock replaced by a TickClock, and every step reported (the
    reporter's own half-second throttle would otherwise depend on the machine's speed)."""
    from nvcodec.train import fit as fit_module

    clock = TickClock()
    monkeypatch.setitem(fit_module.CLOCKS, "wall", clock)
    monkeypatch.setattr(fit_module._Reporter, "interval", 0.0)
    return clock


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="session")
def conformance_bytes() -> bytes:
    return (CONFORMANCE / "c1_nerv_9x17x3.nvc").read_bytes()
