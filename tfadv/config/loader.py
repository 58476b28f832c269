"""YAML → typed dataclasses, with ``--set section.key=value`` overrides.

Every error names the key, the value and the file, so the CLI can print one
line and exit with code 2.
"""
import dataclasses
import os
import re
import typing

import yaml
from tfadv._files import atomic_write_text

from tfadv.config.schema import CHOICES, RANGES, AttackConfig, ExperimentConfig

_FRACTION = re.compile(r"^\s*([-+]?\d+(?:\.\d*)?)\s*/\s*(\d+(?:\.\d*)?)\s*$")


class ConfigError(ValueError):
    """An invalid configuration: the message names key, value and file."""


def _parse_float(value):
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        match = _FRACTION.match(value)
        if match:
            return float(match.group(1)) / float(match.group(2))
        return float(value)
    raise TypeError


def _coerce(value, annotation, where, source):
    def fail(expected):
        raise ConfigError(f"{source}: {where}: expected {expected}, got {value!r}")

    origin = typing.get_origin(annotation)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _coerce(value, inner, where, source)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            fail("a mapping")
        return from_dict(annotation, value, source, where)
    if annotation is bool:
        if not isinstance(value, bool):
            fail("true or false")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail("an integer")
        return value
    if annotation is float:
        try:
            return _parse_float(value)
        except (TypeError, ValueError):
            fail("a number (a fraction such as 8/255 is fine)")
    if annotation is str:
        if not isinstance(value, str):
            fail("a string")
        return value
    if annotation is list:
        if not isinstance(value, list):
            fail("a list")
        return value
    if annotation is dict:
        if not isinstance(value, dict):
            fail("a mapping")
        return value
    raise TypeError(f"unsupported schema type {annotation!r} at {where}")


def _check_value(section, key, value, where, source):
    if (section, key) in CHOICES and value is not None and value not in CHOICES[(section, key)]:
        raise ConfigError(
            f"{source}: {where}: {value!r} is not one of {', '.join(map(str, CHOICES[(section, key)]))}"
        )
    if (section, key) in RANGES and value is not None:
        low, high = RANGES[(section, key)]
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"[{low}, {'∞' if high is None else high}]"
            raise ConfigError(f"{source}: {where}: {value!r} is outside {bounds}")


def _section_name(cls):
    return "attack" if cls is AttackConfig else cls.__name__.removesuffix("Config").lower()


def from_dict(cls, data, source="<config>", prefix=""):
    """Build dataclass ``cls`` from a mapping, refusing unknown keys and wrong types."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix or 'top level'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            where = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(
                f"{source}: unknown key {where!r} (value {data[key]!r}). "
                f"Known keys{' of ' + prefix if prefix else ''}: {', '.join(sorted(known))}"
            )
    values = {}
    section = _section_name(cls)
    for key, value in data.items():
        where = f"{prefix}.{key}" if prefix else key
        values[key] = _coerce(value, hints[key], where, source)
        _check_value(section, key, values[key], where, source)
    result = cls(**values)
    if cls.__name__ == "EvalConfig":  # a list of attack mappings, each validated as an AttackConfig
        result.attacks = [
            from_dict(AttackConfig, a, source, f"{prefix}.attacks[{i}]") for i, a in enumerate(result.attacks)
        ]
    return result


def _set_path(tree, dotted, value, source):
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: cannot set {dotted!r}: {key!r} is not a section")
        node = child
    node[keys[-1]] = value


def parse_override(text):
    """``"train.epochs=3"`` → ``("train.epochs", 3)``; the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set expects section.key=value. Received: {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set expects section.key=value. Received: {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {key}: cannot read {raw!r} as a value: {err}") from err
    return key, value


def load_config(path=None, overrides=(), data=None):
    """Load and validate a config.

    Args:
        path: a YAML file (``None``: all defaults).
        overrides: ``"section.key=value"`` strings applied after the file.
        data: a mapping used instead of reading ``path`` (tests, tuning).
    """
    source = os.fspath(path) if path is not None else "<defaults>"
    if data is None and path is not None:
        if not os.path.isfile(source):
            raise ConfigError(f"No config file at {source!r}")
        try:
            with open(source, encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
        except yaml.YAMLError as err:
            raise ConfigError(f"{source}: not valid YAML: {err}") from err
    data = dict(data or {})
    for text in overrides:
        key, value = parse_override(text)
        _set_path(data, key, value, f"{source} (--set {text})")
    config = from_dict(ExperimentConfig, data, source)
    if not config.name or "/" in config.name:
        raise ConfigError(f"{source}: name: must be a non-empty name without '/'. Received: {config.name!r}")
    return config


def to_dict(config):
    """A plain mapping of the config (what ``config.yaml`` in a run folder holds)."""
    return dataclasses.asdict(config)


def save_config(config, path):
    """Write the resolved config as YAML, atomically."""
    atomic_write_text(path, yaml.safe_dump(to_dict(config), sort_keys=False))
