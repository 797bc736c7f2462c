"""Every float setting is a finite number: ``inf`` and ``nan`` are usage errors naming the option,
and the library configs refuse them naming the field.

Both parse as floats and pass a range check (no comparison with NaN is true), so a
``click.FloatRange`` alone let ``--lr inf`` train NaN weights into best.pt and
``--length-penalty nan`` empty every caption. The options are found on the installed
commands and the fields on the configs themselves, so a float added later is checked too.
"""
from __future__ import annotations

import importlib
import tomllib
from dataclasses import fields
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from astar.extract import ExtractionConfig
from astar.train import EvalConfig, TrainConfig

SCRIPTS = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]["scripts"]


def command_of(script: str) -> click.Command:
    module, name = SCRIPTS[script].split(":")
    return getattr(importlib.import_module(module), name)


FLOAT_OPTIONS = [
    (script, param.opts[0])
    for script in sorted(SCRIPTS)
    for param in command_of(script).params
    if isinstance(param, click.Option) and isinstance(param.type, click.types.FloatParamType)
]


def test_the_commands_have_the_float_options_this_file_checks():
    assert {("astar-train", "--lr"), ("astar-train", "--clip-norm"), ("astar-train", "--temperature"),
            ("astar-eval", "--length-penalty"), ("astar-caption", "--decode-timeout"), ("astar-extract", "--decode-timeout"),
            ("astar-ablate", "--lr")} <= set(FLOAT_OPTIONS)


@pytest.mark.parametrize("value", ["inf", "nan", "1e400"])
@pytest.mark.parametrize("script, option", FLOAT_OPTIONS)
def test_a_non_finite_float_option_is_a_usage_error_naming_it(script, option, value):
    result = CliRunner().invoke(command_of(script), [option, value])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}': must be a finite number, got {float(value)}" in result.output
    assert "Traceback" not in result.output


CONFIGS = {TrainConfig: {"store": "feats.zarr", "dataset": "csv"}, EvalConfig: {}, ExtractionConfig: {}}
"""Each library config with the fields it needs to be built."""
FLOAT_FIELDS = [(config, item.name) for config in CONFIGS for item in fields(config) if "float" in str(item.type)]


def test_the_configs_have_the_float_fields_this_file_checks():
    assert {(TrainConfig, "lr"), (TrainConfig, "clip_norm"), (TrainConfig, "temperature"), (TrainConfig, "bleu_weight"),
            (EvalConfig, "length_penalty"), (ExtractionConfig, "decode_timeout")} == set(FLOAT_FIELDS)


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
@pytest.mark.parametrize("config, name", FLOAT_FIELDS, ids=[f"{config.__name__}.{name}" for config, name in FLOAT_FIELDS])
def test_a_library_config_refuses_a_non_finite_float_naming_the_field(config, name, value):
    with pytest.raises(ValueError, match=f"^{name} must be a finite number, got {value}$"):
        config(**CONFIGS[config], **{name: value})
