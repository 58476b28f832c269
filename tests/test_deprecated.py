"""Former names still work, warn with DeprecationWarning, and nothing in tfadv uses them."""
import importlib
import os
import re

import pytest

from tfadv import _deprecated


def _cases():
    for module, names in _deprecated.FORMER_NAMES.items():
        for name in names:
            yield module, name


@pytest.mark.parametrize("module, name", list(_cases()))
def test_former_names_warn_and_give_the_new_value(module, name):
    with pytest.warns(DeprecationWarning, match=re.escape(f"{module}.{name} is deprecated; use ")):
        value = getattr(importlib.import_module(module), name)
    assert value is not None


def test_former_names_are_the_new_objects():
    from tfadv import attacks, checks, models, records
    from tfadv.attacks import spec
    from tfadv.training import callbacks, methods, runs

    with pytest.warns(DeprecationWarning):
        assert models.model_fn_for is models.bind and models.ConditionedModelFn is models.BoundModel
    with pytest.warns(DeprecationWarning):
        assert methods.METHODS == methods.METHOD_KINDS
    with pytest.warns(DeprecationWarning):
        assert spec.LINF_ATTACKS == tuple(n for n, k in attacks.ATTACKS.items() if k.is_linf)
    with pytest.warns(DeprecationWarning):
        assert set(methods.TRAINING_ATTACKS) == {"fgsm", "pgd", "stadv"}
    with pytest.warns(DeprecationWarning):
        assert runs.EpochCheckpoint is callbacks.EpochCheckpoint and runs.write_json is records.write_json
    with pytest.warns(DeprecationWarning):
        from tfadv.attacks._compile import check_static_count
    assert check_static_count is checks.check_integer
    with pytest.warns(DeprecationWarning):
        from tfadv.models import model_fn_for  # noqa: F401  (from-imports reach module __getattr__)


def test_unknown_names_are_still_attribute_errors():
    from tfadv import models

    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        models.no_such_name  # noqa: B018


def test_nothing_inside_tfadv_uses_a_former_name():
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tfadv")
    pattern = re.compile(r"\b(model_fn_for|ConditionedModelFn|LINF_ATTACKS|TRAINING_ATTACKS|METHODS)\b"
                         r"|_compile\.check_|runs import .*(EpochCheckpoint|write_json|environment_record)")
    used = []
    for folder, _, files in os.walk(root):
        for file in files:
            path = os.path.join(folder, file)
            if file.endswith(".py") and file != "_deprecated.py":
                with open(path, encoding="utf-8") as handle:
                    for number, line in enumerate(handle, 1):
                        if pattern.search(line) and "formerly" not in line:
                            used.append(f"{os.path.relpath(path, root)}:{number}: {line.strip()}")
    assert not used, "\n".join(used)


def test_importing_tfadv_uses_no_former_name():
    import subprocess
    import sys

    packages = ["tfadv." + name for name in (
        "checks", "records", "data", "layers", "models", "attacks", "metrics", "config", "training",
        "evaluation", "landscape", "export", "tuning", "analysis", "experiments", "bench", "cli.main")]
    code = ("import importlib, warnings\n"
            "warnings.filterwarnings('error', category=DeprecationWarning, module='tfadv')\n"
            + "".join(f"importlib.import_module({p!r})\n" for p in packages))
    subprocess.run([sys.executable, "-c", code], check=True,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
