"""TrainConfig checks its settings with the validation vocabulary: every refusal is a ConfigError naming the setting,
the value and an example (memory_format once raised attrs' ValueError)."""

from __future__ import annotations

import attrs
import pytest

from latentkit.errors import ConfigError
from latentkit.train.config import DEVICES, MEMORY_FORMATS, TrainConfig


@pytest.mark.parametrize(("setting", "value", "example"), [
    ("steps", 0, "93800"), ("batch_size", True, "64"), ("lr", 0.0, "5e-4"), ("seed", 1.5, "0"),
    ("device", "gpu", "'auto'"), ("log_every", 0, "50"), ("checkpoint_every", -1, "5000"),
    ("keep_checkpoints", 0, "2"), ("eval_every", -1, "0"), ("figures_every", -5, "5000"),
    ("memory_format", "nhwc", "'auto'"), ("threads", -1, "1"),
])
def test_an_invalid_setting_is_a_config_error_naming_it_the_value_and_an_example(setting, value, example):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{setting: value})
    message = str(info.value)
    assert message.startswith(f"{setting} must be ") and repr(value) in message
    assert message.endswith(f"(e.g. {setting}={example})")


def test_the_defaults_and_every_choice_are_accepted():
    assert TrainConfig() == TrainConfig.from_dict(attrs.asdict(TrainConfig()))
    for device in DEVICES:
        assert TrainConfig(device=device).device == device
    for layout in MEMORY_FORMATS:
        assert TrainConfig(memory_format=layout).memory_format == layout
    assert TrainConfig(eval_every=0, figures_every=0, threads=0, seed=-3).seed == -3
