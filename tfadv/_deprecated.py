"""Former names, in one place: each still works and warns with ``DeprecationWarning``.

A module that used to offer a name delegates to :func:`former_name` from its
module ``__getattr__`` (PEP 562), so ``from tfadv.models import model_fn_for``
keeps working but says what to use instead. Nothing inside tfadv uses these
names; the README's Changelog lists them. Remove an entry here (and nowhere
else) when its name is dropped.
"""
import importlib
import warnings


def _attribute(module, name):
    return lambda: getattr(importlib.import_module(module), name)


def _linf_attacks():
    from tfadv.attacks.spec import ATTACKS

    return tuple(name for name, kind in ATTACKS.items() if kind.is_linf)


def _training_attacks():
    from tfadv.attacks.spec import ATTACKS

    return tuple(name for name, kind in ATTACKS.items() if kind.can_train)


_CONDITIONING = {
    "model_fn_for": ("tfadv.models.bind", _attribute("tfadv.models.conditioning", "bind")),
    "ConditionedModelFn": ("tfadv.models.BoundModel",
                           _attribute("tfadv.models.conditioning", "BoundModel")),
}
def _attack_table(field):
    def value():
        from tfadv.attacks.spec import ATTACKS

        return {name: getattr(kind, field) for name, kind in ATTACKS.items()}
    return value


_LINF = {"LINF_ATTACKS": ("AttackSpec(...).is_linf (or ATTACKS[name].is_linf)", _linf_attacks)}
_ATTACK_TABLES = {"SETTINGS": ("ATTACKS[name].settings", _attack_table("settings")),
                  "DEFAULTS": ("ATTACKS[name].defaults", _attack_table("defaults"))}
_TRAINING = {"TRAINING_ATTACKS": ("AttackSpec(...).can_train (or ATTACKS[name].can_train)",
                                  _training_attacks)}
_CHECKS = {name: (f"tfadv.checks.{new}", _attribute("tfadv.checks", new)) for name, new in (
    ("check_count", "check_count"), ("check_in_unit_interval", "check_in_unit_interval"),
    ("check_integer", "check_integer"), ("check_non_negative", "check_non_negative"),
    ("check_positive", "check_positive"), ("known_value", "known_value"),
    ("check_images", "check_images"), ("check_labels", "check_labels"),
    ("check_per_example", "check_per_example"), ("check_linf_inputs", "check_linf_inputs"),
    ("check_static_count", "check_integer"))}

FORMER_NAMES = {
    # module -> {former name: (what to use instead, getter of the value)}
    "tfadv.models": _CONDITIONING,
    "tfadv.models.conditioning": _CONDITIONING,
    "tfadv.attacks.spec": {**_LINF, **_ATTACK_TABLES},
    "tfadv.attacks._compile": _CHECKS,
    "tfadv.training.methods": {
        "METHODS": ("tfadv.training.methods.METHOD_KINDS",
                    _attribute("tfadv.training.methods", "METHOD_KINDS")),
        **_TRAINING,
    },
    "tfadv.training.methods._common": _TRAINING,
    "tfadv.training.runs": {
        "load_model": ("tfadv.models.load_model", _attribute("tfadv.models.io", "load_model")),
        "resolve_model_path": ("tfadv.models.io.resolve_model_path",
                               _attribute("tfadv.models.io", "resolve_model_path")),
        "environment_record": ("tfadv.records.environment_record",
                               _attribute("tfadv.records", "environment_record")),
        "write_json": ("tfadv.records.write_json", _attribute("tfadv.records", "write_json")),
        "EpochCheckpoint": ("tfadv.training.callbacks.EpochCheckpoint",
                            _attribute("tfadv.training.callbacks", "EpochCheckpoint")),
        "HistoryCSV": ("tfadv.training.callbacks.HistoryCSV",
                       _attribute("tfadv.training.callbacks", "HistoryCSV")),
        "read_history": ("tfadv.training.callbacks.read_history",
                         _attribute("tfadv.training.callbacks", "read_history")),
    },
    "tfadv.evaluation.results": {
        "environment": ("tfadv.records.environment_record",
                        _attribute("tfadv.records", "environment_record")),
    },
}


def former_name(module, name):
    """The value of ``module``'s former ``name``, with a ``DeprecationWarning`` naming its
    replacement; ``AttributeError`` for a name the module never had."""
    entry = FORMER_NAMES.get(module, {}).get(name)
    if entry is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    replacement, value = entry
    warnings.warn(f"{module}.{name} is deprecated; use {replacement}.", DeprecationWarning,
                  stacklevel=3)
    return value()
