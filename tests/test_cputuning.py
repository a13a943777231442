"""The CPU settings training runs under: denormals flushed only inside, nesting-safe."""

from __future__ import annotations

import torch

from nvcodec.cputuning import flush_denormals, keep_freed_memory


def subnormal_survives() -> bool:
    return float(torch.tensor([1e-40], dtype=torch.float32) * 1.0) != 0.0


def test_denormals_are_flushed_only_inside_and_nesting_restores_at_the_outermost_exit():
    assert subnormal_survives()  # IEEE outside: the decoder's arithmetic
    with flush_denormals():
        assert not subnormal_survives()
        with flush_denormals():  # the timing trial inside an encode
            pass
        assert not subnormal_survives()
    assert subnormal_survives()


def test_keeping_freed_memory_is_harmless_to_call_again():
    first = keep_freed_memory()
    assert keep_freed_memory() == first
    assert torch.ones(1 << 22).sum() == 1 << 22  # large blocks still allocate and free
