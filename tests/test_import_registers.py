"""``import tfadv`` alone registers every Keras object tfadv saves (issue 22, point 7).

Each model file is written here (where every tfadv module may be imported)
and loaded in a fresh Python process that imports only ``tfadv`` and calls
``keras.saving.load_model``: the predictions there must equal the ones here.
"""
import ast
import json
import subprocess
import sys

import keras
import numpy as np
import pytest

import tfadv
from tfadv.models.blocks import ShortcutPadding

LOAD_IN_FRESH_PROCESS = """
import json, sys
import numpy as np
import tfadv, keras
model = keras.saving.load_model(sys.argv[1])
x = np.load(sys.argv[2])
inputs = {"images": x, "condition": np.full((len(x), 1), 0.5, "float32")} if len(model.inputs) == 2 else x
print(json.dumps(np.asarray(model(inputs, training=False)).tolist()))
"""


def _models():
    yield "robmask", tfadv.models.build("tiny", num_classes=3, input_shape=(8, 8, 3), norm="robmask",
                                        norm_options={"k": 3})
    yield "dual_bn", tfadv.models.build("tiny", num_classes=3, input_shape=(8, 8, 3), norm="dual_bn")
    yield "dual_bn_3", tfadv.models.build("tiny", num_classes=3, input_shape=(8, 8, 3), norm="dual_bn",
                                          norm_options={"branches": 3})
    images = keras.Input((8, 8, 3))
    x = ShortcutPadding(6, stride=2)(images)
    logits = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    yield "shortcut_padding", keras.Model(images, logits)


@pytest.mark.parametrize("kind", ["robmask", "dual_bn", "dual_bn_3", "shortcut_padding"])
def test_keras_load_model_after_import_tfadv_alone(tmp_path, kind):
    model = dict(_models())[kind]
    for layer in model.layers:  # non-trivial statistics and rescaling, so the check can fail
        for weight in layer.weights:
            weight.assign(np.random.default_rng(0).uniform(0.5, 1.5, weight.shape).astype("float32"))
    x = np.random.default_rng(1).uniform(0, 1, (4, 8, 8, 3)).astype("float32")
    expected = np.asarray(tfadv.models.call_model(model, x, 0.5))
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", x)
    out = subprocess.run([sys.executable, "-c", LOAD_IN_FRESH_PROCESS, str(tmp_path / "m.keras"),
                          str(tmp_path / "x.npy")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    np.testing.assert_allclose(np.array(json.loads(out.stdout.strip().splitlines()[-1])), expected,
                               rtol=1e-5, atol=1e-5)


def test_import_tfadv_registers_every_registered_layer():
    """Every Keras layer any tfadv module registers is registered by ``import tfadv`` alone."""
    import tfadv.training.optimizers  # noqa: F401  (registers schedules/optimizers, not layers)

    registered = {name for name, obj in keras.saving.get_custom_objects().items()
                  if name.startswith("tfadv>") and isinstance(obj, type)
                  and issubclass(obj, keras.layers.Layer)}
    code = ("import tfadv, keras; print(sorted(n for n in keras.saving.get_custom_objects() "
            "if n.startswith('tfadv>')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    fresh = set(ast.literal_eval(out.stdout.strip().splitlines()[-1]))
    assert registered and registered <= fresh, sorted(registered - fresh)
