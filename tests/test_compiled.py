"""torch.compile of an objective's loss: switched by NVC_COMPILE, same numbers, eager again on failure."""

from __future__ import annotations

import pytest
import torch

from nvcodec.families.siren.model import Siren, SirenConfig
from nvcodec.train import compiled
from nvcodec.train.compiled import compile_wanted, maybe_compiled
from nvcodec.train.objectives import objective_for

from .conftest import moving_pattern


def test_compile_is_switched_by_the_environment_and_needs_a_compiler(monkeypatch):
    monkeypatch.setenv("NVC_COMPILE", "0")
    assert not compile_wanted(True, "cpu")
    monkeypatch.setenv("NVC_COMPILE", "1")
    assert compile_wanted(False, "cpu")
    monkeypatch.delenv("NVC_COMPILE")
    assert not compile_wanted(False, "cpu")
    monkeypatch.setattr(compiled.shutil, "which", lambda name: None)  # no C++ compiler on this machine
    assert not compile_wanted(True, "cpu")
    import torch.utils._triton as triton

    for present in (True, False):  # a GPU compiles through Triton, not the C++ compiler
        monkeypatch.setattr(triton, "has_triton", lambda present=present: present)
        assert compile_wanted(True, "cuda") is present


def test_a_failing_compile_falls_back_to_eager_with_a_warning(monkeypatch):
    def broken(fn, dynamic=False):
        def call(*args):
            raise RuntimeError("no toolchain")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    square = maybe_compiled(lambda x: x * x, True)
    with pytest.warns(UserWarning, match="torch.compile failed .*no toolchain"):
        assert square(torch.tensor(3.0)) == 9.0
    assert square(torch.tensor(4.0)) == 16.0  # and stays eager, without warning again
    assert maybe_compiled(abs, False) is abs


@pytest.mark.slow
def test_the_compiled_loss_equals_the_eager_one(monkeypatch):
    """SIREN's regularized loss (GEMMs, sines and the written-out JVP): same value and gradients."""
    torch.manual_seed(0)
    model = Siren(SirenConfig(48, 64, 4, hidden=16, depth=2))
    objective = objective_for(model, moving_pattern(2.0), torch.device("cpu"), "l2", 0, 1, {"of_weight": 0.5})
    results = []
    for enabled in (False, True):
        objective.compile = enabled
        model.zero_grad()
        loss, _ = objective.step(0, 0, torch.autocast("cpu", enabled=False))
        loss.backward()
        results.append((float(loss), [p.grad.clone() for p in model.parameters()]))
    (eager, eager_grads), (fused, fused_grads) = results
    assert fused == pytest.approx(eager, rel=1e-5)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(eager_grads, fused_grads))


def test_a_compile_error_in_the_backward_pass_retrains_the_step_eagerly():
    """The backward pass compiles on its first use, outside maybe_compiled's reach: fit's step
    catches it, switches compiling off and runs the same step again, once."""
    from types import SimpleNamespace

    from nvcodec.train.fit import _eager_on_error

    calls, said = [], []

    def step(x):
        calls.append(objective.compile)
        if objective.compile:
            raise RuntimeError("backward: no C++ compiler\nmore detail")
        return x + 1

    objective = SimpleNamespace(compile=True)
    with pytest.warns(UserWarning, match="torch.compile failed .*backward: no C\\+\\+ compiler"):
        assert _eager_on_error(objective, said.append, step, 1) == 2
    assert calls == [True, False] and not objective.compile and said[0].startswith("note: torch.compile failed")
    objective.compile = False  # eager errors are the user's to see
    with pytest.raises(ZeroDivisionError):
        _eager_on_error(objective, said.append, lambda: 1 / 0)
