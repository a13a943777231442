"""Quantization, entropy coding and pruning: exactness and efficiency."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nvcodec.compress.entropy import (
    ModelId,
    decode_symbols,
    empirical_entropy_bits,
    encode_symbols,
)
from nvcodec.compress.quantize import QuantAxis, levels_for_bits, quantize
from nvcodec.compress.ratecontrol import land_on_target
from nvcodec.compress.varint import leb128_size
from nvcodec.train.prune import apply_masks, magnitude_masks

RNG = np.random.default_rng(7)
DISTRIBUTIONS = {
    "laplace": lambda n: RNG.laplace(0, 9, n),
    "gaussian": lambda n: RNG.normal(0, 20, n),
    "mixture_with_pruned_zeros": lambda n: np.where(RNG.random(n) < 0.1, 0, RNG.standard_t(3, n) * 15),
    "skewed": lambda n: RNG.gamma(2.0, 6.0, n) - 10,
}


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
@pytest.mark.parametrize("n", [1_000, 20_000, 200_000])
def test_payload_within_two_percent_of_empirical_entropy_plus_table(name, n):
    symbols = np.clip(np.rint(DISTRIBUTIONS[name](n)), -127, 127).astype(np.int64)
    coded = encode_symbols(symbols)
    entropy_bytes = empirical_entropy_bits(symbols) / 8
    counts = np.bincount(symbols - symbols.min())
    histogram_table = sum(leb128_size(int(c)) for c in counts)
    # The range coder with the transmitted histogram stays within 2% of the empirical entropy ...
    categorical = encode_symbols(symbols, ModelId.CATEGORICAL)
    assert categorical.table_bytes == histogram_table
    assert categorical.payload_bytes <= 1.02 * entropy_bytes
    # ... and the record the encoder picks never costs more than entropy + 2% + that table.
    assert coded.payload_bytes + coded.table_bytes <= 1.02 * entropy_bytes + histogram_table
    assert np.array_equal(decode_symbols(coded, n), symbols)


def test_edge_alphabets_round_trip():
    for symbols in [np.zeros(0, int), np.array([5]), np.full(1000, -3), np.array([-32768, 32767] * 10)]:
        coded = encode_symbols(symbols)
        assert np.array_equal(decode_symbols(coded, len(symbols)), symbols)
    constant = encode_symbols(np.full(1000, -3))
    assert constant.payload_bytes == 0 and constant.model_id == ModelId.CATEGORICAL


def test_quantization_error_bound_and_zero_preservation():
    w = RNG.normal(0, 0.05, (32, 16, 3, 3)).astype(np.float32)
    w[np.abs(w) < 0.01] = 0
    for bits in (4, 8, 6.5):
        q = quantize(w, bits)
        assert q.axis == QuantAxis.PER_CHANNEL and q.steps.dtype == np.float16 and len(q.steps) == 32
        rebuilt = q.dequantize()
        steps = q.steps.astype(np.float32)[:, None, None, None]
        assert np.all(np.abs(rebuilt - w) <= steps / 2 + 1e-7)
        assert np.all(rebuilt[w == 0] == 0)
        assert np.abs(q.symbols).max() <= levels_for_bits(bits) + 1
    assert quantize(np.ones(7, np.float32), 8).axis == QuantAxis.PER_TENSOR
    zeros = quantize(np.zeros((4, 20), np.float32), 8)
    assert np.all(zeros.dequantize() == 0) and np.all(zeros.steps > 0)


def test_magnitude_pruning_removes_the_requested_fraction():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(50, 40), torch.nn.Conv2d(4, 8, 3))
    masks = magnitude_masks(model, 0.25)
    assert set(masks) == {"0.weight", "1.weight"}
    apply_masks(model, masks)
    kernels = torch.cat([model[0].weight.flatten(), model[1].weight.flatten()])
    assert abs(float((kernels == 0).float().mean()) - 0.25) < 0.01
    assert bool((model[0].bias != 0).all())


def test_rate_landing_bisection_converges():
    def size(bits: float) -> int:  # monotone, like a real file
        return int(1000 * bits)

    bits = land_on_target(size, 6300)
    assert abs(size(bits) - 6300) / 6300 <= 0.03
