"""Backbones: registry, config validation from untrusted JSON, sizing, odd frame sizes."""

from __future__ import annotations

import pytest
import torch

from nvcodec import errors
from nvcodec.families import backbone_class, register_backbone
from nvcodec.families import family_names as available_models
from nvcodec.families.nerv.model import NeRV, NeRVConfig
from nvcodec.models.base import Backbone, BackboneConfig
from nvcodec.models.layers import derive_strides


def test_registry_refuses_duplicates_and_unknown_names():
    assert "nerv" in available_models()
    with pytest.raises(KeyError):
        register_backbone(type("Twin", (Backbone,), {"name": "nerv"}))
    with pytest.raises(errors.UsageError, match="available: .*nerv"):
        backbone_class("nope")


@pytest.mark.parametrize("height, width", [(9, 17), (36, 64), (90, 160), (180, 320), (31, 47)])
def test_nerv_renders_exact_frame_size(height, width):
    config = NeRV.config_for_budget(height, width, 4, 5_000)
    model = NeRV(config)
    with torch.no_grad():
        frames = model.render_frames(model.frame_times(torch.arange(2)))
    assert frames.shape == (2, 3, height, width)
    assert float(frames.min()) >= 0 and float(frames.max()) <= 1


def test_strides_tile_common_sizes_exactly():
    assert derive_strides(180, 320) == (5, 2, 2)
    assert derive_strides(720, 1280) == (5, 2, 2, 2, 2)
    assert derive_strides(9, 17) == (2,)


def test_budget_sizing_is_monotone_and_within_budget():
    counts = [NeRV.count_params(NeRV.config_for_budget(180, 320, 32, p)) for p in (20_000, 60_000, 200_000)]
    assert counts == sorted(counts)
    assert all(c <= p for c, p in zip(counts, (20_000, 60_000, 200_000)))
    assert counts[2] > 0.8 * 200_000


def test_config_from_untrusted_json():
    good = NeRV.config_for_budget(36, 64, 8, 5_000)
    assert NeRVConfig.from_json(good.to_json()) == good
    bad_values = [
        {"mlp_hidden": True},
        {"mlp_hidden": 1.5},
        {"strides": [2, 2]},
        {"activation": "os.system"},
        {"height": 0},
        {"channels": "16"},
        {"pe_base": "1.25"},
    ]
    for change in bad_values:
        with pytest.raises(errors.ArchitectureError):
            NeRVConfig.from_json({**good.to_json(), **change})
    with pytest.raises(errors.ArchitectureError, match="unexpected"):
        NeRVConfig.from_json({**good.to_json(), "__class__": "x"})
    with pytest.raises(errors.ArchitectureError, match="missing"):
        BackboneConfig.from_json({"height": 1, "width": 1})


def test_capabilities_are_declared():
    assert NeRV.capabilities == {"framewise", "any_time"}


def test_family_overrides_name_real_settings():
    """A family's training and rate overrides are TrainConfig and RateSettings fields, typed in
    TrainOverrides and RateOverrides: a misspelt key fails here, not as a silent no-op."""
    from dataclasses import fields
    from typing import get_type_hints

    from nvcodec.families import RateOverrides, TrainOverrides, declarations
    from nvcodec.train.fit import TrainConfig
    from nvcodec.train.rate import RateSettings

    for typed, settings in ((TrainOverrides, TrainConfig), (RateOverrides, RateSettings)):
        assert set(get_type_hints(typed)) <= {f.name for f in fields(settings)}
    for family in declarations():
        assert set(family.train_overrides) <= set(get_type_hints(TrainOverrides)), family.name
        assert set(family.rate_overrides) <= set(get_type_hints(RateOverrides)), family.name
