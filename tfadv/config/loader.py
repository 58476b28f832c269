"""YAML → typed dataclasses, with ``--set section.key=value`` overrides.

A config file may extend another one (``extends: base.yaml``, a path relative
to the extending file; the base may itself extend a file). The files are
merged base first: a mapping merges key by key, any other value (a number, a
string, a list, ``null``) replaces the base's. ``--set`` overrides apply on
top of the merged result. ``extends`` is not a config key: the resolved config
(what a run writes to its ``config.yaml``) holds the merged values and no
``extends``. The merged config is what is validated (a file or ``--set`` may
replace a base's bad value); an error names the file that holds the bad key.

``name`` may hold fields such as ``{model.name}``, filled from the resolved
config after the overrides, so a run named
``paper2-{model.name}-{data.source}-bn-{train.epochs}ep`` follows ``--set
model.name=densenet121``. A field names any key that holds a single value;
a file path (a value with a ``/``) contributes its file name without the
extension, a float its shortest form (``0.1``).

Every error names the key, the value and the file, so the CLI can print one
line and exit with code 2.
"""
import copy
import dataclasses
import os
import re
import typing

import yaml
from tfadv._files import atomic_write_text

from tfadv.attacks.spec import AttackSpec
from tfadv.checks import parse_number
from tfadv.config.schema import CHOICES, RANGES, AttackConfig, ExperimentConfig

class ConfigError(ValueError):
    """An invalid configuration: the message names key, value and file."""


def _parse_float(value):
    number = parse_number(value)  # tfadv.checks': "8/255" is parsed in one place
    if number is None:
        raise ValueError(f"not a number: {value!r}")
    return number


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
    allowed = CHOICES.get((section, key))
    if callable(allowed):
        allowed = allowed()
    if allowed is not None and value is not None and value not in allowed:
        raise ConfigError(f"{source}: {where}: {value!r} is not one of {', '.join(map(str, allowed))}")
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
    if cls is AttackConfig:  # every setting, as the attack itself checks it
        try:
            AttackSpec.create(result)
        except ValueError as error:
            raise ConfigError(f"{source}: {prefix or 'attack'}: {error}") from None
    if cls.__name__ == "TrainConfig" and result.validation_attack is not None:
        from tfadv.attacks.spec import attack_from_text

        try:
            attack_from_text(result.validation_attack)
        except ValueError as error:
            raise ConfigError(f"{source}: {prefix}.validation_attack: {error}") from None
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


EXTENDS_KEY = "extends"
_NAME_FIELD = re.compile(r"\{([^{}]*)\}")


def _read_file(source):
    """The top-level mapping of YAML file ``source`` (``{}`` when empty)."""
    if not os.path.isfile(source):
        raise ConfigError(f"No config file at {source!r}")
    try:
        with open(source, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level: expected a mapping, got {data!r}")
    return data


def merge_mappings(base, override):
    """``override`` deep-merged over ``base`` (neither is modified).

    A mapping in both merges key by key; any other value of ``override``
    (number, string, list, ``null``) replaces the base's. So a file can change
    a key of a base's mapping but not remove it.
    """
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_mappings(merged[key], value)
        else:
            merged[key] = value
    return merged


def _extends_chain(data, source, directory, chain=()):
    """``[(file, its own mapping)]`` for ``source`` and the files it extends, ``source`` first.

    ``directory`` is where a relative ``extends`` path starts; ``chain`` holds
    the real paths of the files already on the way, to refuse a cycle.
    """
    data = dict(data)
    base = data.pop(EXTENDS_KEY, None)
    if base is None:
        return [(source, data)]
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(
            f"{source}: {EXTENDS_KEY}: expected the path of a config file (relative to this file). "
            f"Received: {base!r}")
    base_path = os.path.normpath(os.path.join(directory, os.path.expanduser(base)))
    if not os.path.isfile(base_path):
        raise ConfigError(f"{source}: {EXTENDS_KEY}: no config file at {base_path!r}")
    files = [*chain, os.path.realpath(source)] if source != "<defaults>" else list(chain)
    if os.path.realpath(base_path) in files:
        cycle = " → ".join([*files[files.index(os.path.realpath(base_path)):], os.path.realpath(base_path)])
        raise ConfigError(f"{source}: {EXTENDS_KEY}: the files extend each other in a cycle: {cycle}")
    return [(source, data),
            *_extends_chain(_read_file(base_path), base_path, os.path.dirname(base_path), files)]


def _validate(data, source, files):
    """``ExperimentConfig`` from the merged ``data``; an error names the file that holds the bad key.

    The merged config is what is checked (so a file or a ``--set`` may replace
    a base's bad value). When it fails, the error is reported for the first of
    ``files`` (the extending file first: its value is the one in effect) whose
    own keys fail the same way; otherwise (a ``--set``) for ``source``.
    """
    try:
        return from_dict(ExperimentConfig, data, source)
    except ConfigError as error:
        detail = str(error).removeprefix(f"{source}: ")
        for file, own in files:
            if _fails_with(own, file, detail):
                raise ConfigError(f"{file}: {detail}") from None
        raise


def _fails_with(own, file, detail):
    """Whether ``file``'s own mapping ``own`` fails with the message ``detail``."""
    try:
        from_dict(ExperimentConfig, own, file)
    except ConfigError as error:
        return str(error) == f"{file}: {detail}"
    return False


def _name_field(config, values, dotted, source):
    """The text that replaces ``{dotted}`` in ``config.name``."""
    def fail(reason):
        raise ConfigError(f"{source}: name: {{{dotted}}} {reason}. Received: name={config.name!r}")

    if dotted == "name":
        fail("cannot refer to the name itself")
    node = values
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            fail("names no config key (write fields as {section.key}, e.g. {model.name})")
        node = node[key]
    if node is None or isinstance(node, (dict, list)):
        fail(f"must name a key holding one value; it holds {node!r}")
    if isinstance(node, float):
        return f"{node:g}"
    if isinstance(node, str) and "/" in node:
        return os.path.splitext(os.path.basename(node.rstrip("/")))[0]
    return str(node)


def resolve_name(config, source="<config>"):
    """Fill the ``{section.key}`` fields of ``config.name`` from ``config`` (in place)."""
    template = config.name
    if "{" not in template and "}" not in template:
        return config
    if "{" in _NAME_FIELD.sub("", template) or "}" in _NAME_FIELD.sub("", template):
        raise ConfigError(f"{source}: name: unbalanced braces. Received: name={template!r}")
    values = to_dict(config)
    config.name = _NAME_FIELD.sub(lambda match: _name_field(config, values, match.group(1), source), template)
    return config


def load_config(path=None, overrides=(), data=None):
    """Load and validate a config.

    Args:
        path: a YAML file (``None``: all defaults). Its ``extends`` chain is
            merged in (see the module docstring).
        overrides: ``"section.key=value"`` strings applied after the files.
        data: a mapping used instead of reading ``path`` (tests, tuning); an
            ``extends`` in it is relative to ``path``'s folder, or to the
            current directory without ``path``.

    Returns:
        the ``ExperimentConfig``, its ``name`` fields filled in.
    """
    source = os.fspath(path) if path is not None else "<defaults>"
    if data is None:
        data = _read_file(source) if path is not None else {}
    elif not isinstance(data, dict):
        raise ConfigError(f"{source}: top level: expected a mapping, got {data!r}")
    directory = os.path.dirname(source) if path is not None else os.curdir
    files = _extends_chain(copy.deepcopy(data), source, directory)
    data = {}
    for _, own in reversed(files):  # the last base first, the extending file last
        data = merge_mappings(data, own)
    data = copy.deepcopy(data)  # the overrides below must not reach the files' own mappings
    for text in overrides:
        key, value = parse_override(text)
        if key == EXTENDS_KEY:
            raise ConfigError(f"--set {text}: {EXTENDS_KEY} can only be written in a config file")
        _set_path(data, key, value, f"{source} (--set {text})")
    config = _validate(data, source, files)
    resolve_name(config, source)
    if not config.name or "/" in config.name:
        raise ConfigError(f"{source}: name: must be a non-empty name without '/'. Received: {config.name!r}")
    return config


def to_dict(config):
    """A plain mapping of the config (what ``config.yaml`` in a run folder holds)."""
    return dataclasses.asdict(config)


def save_config(config, path):
    """Write the resolved config as YAML, atomically."""
    atomic_write_text(path, yaml.safe_dump(to_dict(config), sort_keys=False))
