"""The GPU path, checked on a machine without one.

Everything that trains must follow the model to its device. On a CPU-only machine the ``meta``
device stands in for a GPU: a tensor that stayed behind on the CPU (the rate term's steps were
once built before the model moved, and the first step on CUDA then divided a GPU tensor by a CPU
one) shows up as a ``cpu`` tensor among ``meta`` ones. Host tables (the frames and per-pixel aids
an objective copies to the device batch by batch) stay on the host on purpose.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nvcodec.compress.ratecontrol import RateControl
from nvcodec.devices import DECODE_DEVICE, bf16_native, binary32, host_frames, resolve_device, worker_device
from nvcodec.errors import UsageError
from nvcodec.families import backbone_class, declaration, family_names
from nvcodec.families.grid.model import _interpolation_matrix, upsample_bilinear
from nvcodec.train import fit as fit_module
from nvcodec.train.fit import TrainConfig, _Reporter, training_state
from nvcodec.train.rate import RateSettings, RateTerm

from .conftest import moving_pattern

HOST_TABLES = {"target", "colours", "weights", "midpoints", "directions", "bands"}  # copied per batch, by design


def owned_tensors(obj, seen: set[int] | None = None, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor an object holds in its attributes, modules, lists and dicts, by path."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return {}
    seen.add(id(obj))
    found: dict[str, torch.Tensor] = {}
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    if isinstance(obj, torch.nn.Module):
        found.update({f"{prefix}.{k}": v for k, v in obj.state_dict(keep_vars=True).items()})
        return found
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("nvcodec"):
        items = vars(obj).items()
    else:
        return {}
    for key, value in items:
        found.update(owned_tensors(value, seen, f"{prefix}.{key}"))
    return found


def state_on(family: str, device: torch.device):
    """A family's model and rate term built on the CPU as the encoder builds them, then its
    training state set up on ``device`` as fit sets it up."""
    frames = moving_pattern(1.5, frames=4, height=36, width=64)
    cls = backbone_class(family)
    torch.manual_seed(0)
    bpp = 1.5 if family == "grid" else 10.0  # each family's smallest model fits
    model = cls(RateControl(bpp, 64, 36, 4).size_model(cls))
    rate = RateTerm(
        model,
        RateSettings(
            num_pixels=frames[..., 0].size,
            fixed_bits=800.0,
            target_bits=bpp * frames[..., 0].size,
            **declaration(family).rate_overrides,
        ),
    )
    overrides = {k: v for k, v in declaration(family).train_overrides.items() if k in TrainConfig.__dataclass_fields__}
    cfg = TrainConfig(epochs=2, finetune_epochs=1, **{**overrides, "amp": False, "compile": False})
    objective, optimizer = training_state(model, frames, cfg, device, rate)
    return model, rate, objective, optimizer


@pytest.mark.parametrize("family", family_names())
def test_everything_that_trains_follows_the_model_to_its_device(family):
    meta = torch.device("meta")
    model, rate, objective, optimizer = state_on(family, meta)
    tensors = owned_tensors(model, prefix="model")
    tensors.update({f"rate.step{i}": p for i, p in enumerate(rate.step_parameters())})
    tensors.update(owned_tensors(rate.quantizers, prefix="rate.quantizers"))
    tensors.update(
        {
            f"optimizer.{g}.{i}": p
            for g, group in enumerate(optimizer.param_groups)
            for i, p in enumerate(group["params"])
        }
    )
    tensors.update(
        {
            name: t
            for name, t in owned_tensors(objective, prefix="objective").items()
            if name.split(".")[1] not in HOST_TABLES
        }
    )
    behind = sorted(name for name, t in tensors.items() if t.device != meta)
    assert not behind, f"{len(behind)} tensors left on another device, e.g. {behind[:6]}"
    assert any(name.startswith("rate.step") for name in tensors)


def test_host_tables_stay_on_the_host_and_batches_go_to_the_device():
    frames = moving_pattern(1.0, frames=3, height=8, width=8)
    host = host_frames(frames, torch.device("cpu"))
    assert host.shape == (3, 3, 8, 8) and host.data_ptr() == torch.from_numpy(frames).data_ptr()  # no copy on the CPU
    _, _, objective, _ = state_on("nerv", torch.device("meta"))
    assert objective.target.device.type == "cpu"
    assert objective.frames(torch.tensor([0, 2])).device.type == "meta"


def test_device_names_are_checked():
    assert resolve_device("cpu") == torch.device("cpu") and DECODE_DEVICE == "cpu"
    for bad in ("tpu", "cpu:1", "cuda:x", ""):
        with pytest.raises(UsageError, match="--device"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA device"):
            resolve_device("cuda:0")
        assert resolve_device("auto") == torch.device("cpu")
        assert worker_device("auto", 3) == "cpu" and worker_device("cpu", 1) == "cpu"
    assert worker_device("cuda:1", 5) == "cuda:1"  # one GPU chosen for every worker


def test_cpu_settings_are_untouched():
    cpu = torch.device("cpu")
    assert bf16_native(cpu)  # the trial measures it on the CPU
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    with binary32(cpu):
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before


@pytest.mark.parametrize("shape", [(23, 40, 180, 320), (5, 7, 90, 160), (90, 160, 90, 160)])
def test_deterministic_bilinear_is_the_same_interpolation(shape):
    h, w, height, width = shape
    planes = torch.randn(3, h, w)
    rows = _interpolation_matrix(height, h, planes.device, planes.dtype)
    cols = _interpolation_matrix(width, w, planes.device, planes.dtype)
    reference = F.interpolate(planes[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    assert torch.allclose(rows @ planes @ cols.T, reference, atol=1e-5)  # float32 sums in another order
    # training (a gradient wanted) takes the GEMMs on every device; decoding F.interpolate itself
    assert torch.allclose(upsample_bilinear(planes.requires_grad_(), (height, width)), reference, atol=1e-5)
    with torch.no_grad():
        assert torch.equal(upsample_bilinear(planes, (height, width)), reference)


def test_the_eta_follows_the_budget_clock_and_ignores_a_silent_start(monkeypatch):
    """A 60 s process-CPU budget on 2 busy threads, 14 s of compiling before the first step: the
    ETA is what is left of the budget at 2 CPU-s per second, plus the finishing estimate."""
    wall = [1000.0]
    monkeypatch.setattr(fit_module.time, "monotonic", lambda: wall[0])
    monkeypatch.setitem(fit_module.CLOCKS, "cpu", lambda: 2.0 * wall[0])
    monkeypatch.setattr(_Reporter, "interval", 0.0)
    seen = []
    reporter = _Reporter(seen.append, 0, budget=60.0, clock="cpu", finishing_seconds=4.0)
    wall[0] += 14.0  # compiling: 28 CPU-s of the budget, no step yet
    fraction = 28.0 / 60.0
    for _ in range(10):
        reporter.add("train", 1, fraction, torch.tensor(0.1), torch.tensor(10.0))
        left = 60.0 * (1 - fraction) / 2.0
        assert seen[-1].eta == pytest.approx(left + 4.0, rel=1e-6)
        wall[0] += 1.0
        fraction += 2.0 / 60.0
    assert seen[-1].loss == pytest.approx(0.1) and seen[-1].psnr == pytest.approx(10 * np.log10(255**2 / 10.0))


def test_the_eta_by_epochs_starts_at_the_first_step(monkeypatch):
    wall = [0.0]
    monkeypatch.setattr(fit_module.time, "monotonic", lambda: wall[0])
    monkeypatch.setattr(_Reporter, "interval", 0.0)
    seen = []
    reporter = _Reporter(seen.append, 100, budget=None)
    wall[0] = 20.0  # a long set-up before the first step
    reporter.add("train", 1, 0.01, 0.0, 1.0)
    wall[0] = 30.0
    reporter.add("train", 11, 0.11, 0.0, 1.0)  # 0.1 of the run in 10 s: 89 s left
    assert seen[-1].eta == pytest.approx(89.0)
