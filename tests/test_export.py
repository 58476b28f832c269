"""SavedModel export: every signature, loaded in a fresh process without tfadv, against Keras.

One module-scoped fixture exports a RobMask, a dual-BN, a uint8 RobMask and
a plain tiny model, and runs ONE client subprocess for all of them (only TensorFlow and
NumPy imported) that calls every signature on every case and saves what it
got: outputs, or the exception type and message. The tests compare those
with the Keras models computed here and with NumPy's softmax.
"""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import layers, models
from tfadv.export import export_model, saved_model, summary_lines

SHAPE = (8, 8, 3)
P_GRID = (0.0, 0.25, 0.5, 1.0)
SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")

CLIENT = r"""
import json, sys
import numpy as np
import tensorflow as tf

arrays_path, requests_path = sys.argv[1:]
arrays = np.load(arrays_path)
with open(requests_path) as handle:
    requests = json.load(handle)
for request in requests.values():
    loaded = tf.saved_model.load(request["export_dir"])
    report = {"signatures": {}, "errors": {}}
    for name, fn in loaded.signatures.items():
        report["signatures"][name] = {
            "inputs": sorted(fn.structured_input_signature[1]),
            "input_dtypes": {k: v.dtype.name for k, v in fn.structured_input_signature[1].items()},
            "outputs": sorted(fn.structured_outputs),
        }
    results = {}
    for case, spec in request["cases"].items():
        kwargs = {"images": tf.constant(arrays[spec["images"]])}
        if "p" in spec:
            kwargs["p"] = tf.constant(np.asarray(spec["p"], dtype=np.float32))
        try:
            outputs = loaded.signatures[spec["signature"]](**kwargs)
            for key, value in outputs.items():
                results[f"{case}/{key}"] = value.numpy()
        except Exception as error:  # report what a client sees
            report["errors"][case] = [type(error).__name__, str(error)]
    report["imported_tfadv"] = any(m == "tfadv" or m.startswith("tfadv.") for m in sys.modules)
    np.savez(request["out_path"], **results)
    with open(request["out_path"] + ".json", "w") as handle:
        json.dump(report, handle)
"""

def _randomize(model, seed):
    """Distinct BN bases / branches, so that p changes the outputs (and tests can fail)."""
    rng = np.random.default_rng(seed)
    norm_layers = (keras.layers.BatchNormalization, layers.ConditionedBatchNormalization,
                   layers.DualBatchNormalization)
    for variable in [w for layer in model.layers if isinstance(layer, norm_layers)
                     for w in layer.weights]:
        shape = tuple(variable.shape)
        if "variance" in variable.path:
            variable.assign(rng.uniform(0.5, 2.0, shape).astype("float32"))
        elif "gamma" in variable.path:
            variable.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
        else:
            variable.assign(rng.normal(0.0, 0.5, shape).astype("float32"))
    return model


def _keras_logits(model, images, p=None):
    if p is None:
        return keras.ops.convert_to_numpy(model(images, training=False))
    return keras.ops.convert_to_numpy(models.call_model(model, images, p, training=False))


def _softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _tradeoff_cases(images="x"):
    return {f"tradeoff_{p}": {"signature": "serve_tradeoff", "images": images, "p": p}
            for p in P_GRID}


ERROR_CASES = {
    "p_above_one": {"signature": "serve_tradeoff", "images": "x", "p": 1.5},
    "p_negative": {"signature": "serve_tradeoff", "images": "x", "p": -0.25},
    "p_not_scalar": {"signature": "serve_tradeoff", "images": "x", "p": [0.5, 0.5]},
    "images_wrong_size": {"signature": "serve_tradeoff", "images": "x_wrong_size", "p": 0.5},
    "images_wrong_channels": {"signature": "serving_default", "images": "x_one_channel"},
    "images_wrong_rank": {"signature": "serving_default", "images": "x_rank3"},
    "images_0_255": {"signature": "serving_default", "images": "x_255"},
    "images_float64": {"signature": "serving_default", "images": "x_float64"},
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(0)
    x_uint8 = rng.integers(0, 256, (4, *SHAPE)).astype("uint8")
    x = x_uint8.astype("float32") / 255.0
    arrays = {
        "x": x, "x_uint8": x_uint8, "x_255": x * 255.0, "x_float64": x.astype("float64"),
        "x_wrong_size": rng.uniform(0, 1, (4, 9, 8, 3)).astype("float32"),
        "x_one_channel": x[..., :1], "x_rank3": x[0],
    }
    np.savez(root / "arrays.npz", **arrays)
    keras.utils.set_random_seed(0)
    built = {
        "robmask": _randomize(models.build("tiny", input_shape=SHAPE, norm="robmask"), 1),
        "dual_bn": _randomize(models.build("tiny", input_shape=SHAPE, norm="dual_bn"), 2),
        "bn": _randomize(models.build("tiny", input_shape=SHAPE, norm="bn"), 3),
    }
    exports = {
        "robmask": dict(model=built["robmask"], default_p=0.25,
                        maskings={"clean": 0.0, "middle": 0.5, "robust": 1.0},
                        cases={**_tradeoff_cases(), **ERROR_CASES,
                               "default": {"signature": "serving_default", "images": "x"},
                               "maskings": {"signature": "serve_maskings", "images": "x"}}),
        "dual_bn": dict(model=built["dual_bn"], default_p=0.0, maskings=None,
                        cases={**_tradeoff_cases(),
                               "default": {"signature": "serving_default", "images": "x"},
                               "maskings": {"signature": "serve_maskings", "images": "x"}}),
        "robmask_uint8": dict(model=built["robmask"], default_p=0.0, maskings=None, uint8=True,
                              cases={**_tradeoff_cases("x_uint8"),
                                     "images_float32": {"signature": "serving_default", "images": "x"}}),
        "bn": dict(model=built["bn"], default_p=0.0, maskings=None,
                   cases={"default": {"signature": "serving_default", "images": "x"},
                          "images_wrong_size": {"signature": "serving_default", "images": "x_wrong_size"}}),
    }
    requests = {}
    for name, spec in exports.items():
        spec["out_dir"] = root / name
        spec["record"] = export_model(spec["model"], spec["out_dir"], default_p=spec["default_p"],
                                      uint8=spec.get("uint8", False), maskings=spec["maskings"])
        requests[name] = {"export_dir": str(spec["out_dir"]), "cases": spec["cases"],
                          "out_path": str(root / f"{name}_results.npz")}
    (root / "requests.json").write_text(json.dumps(requests))
    # One fresh client process for every export: TensorFlow and NumPy only.
    subprocess.run([sys.executable, "-c", CLIENT, str(root / "arrays.npz"), str(root / "requests.json")],
                   check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=600)
    results = {}
    for name, spec in exports.items():
        out_path = requests[name]["out_path"]
        with open(out_path + ".json") as handle:
            report = json.load(handle)
        results[name] = dict(spec, report=report, outputs=dict(np.load(out_path)))
    return {"arrays": arrays, "models": built, "exports": results}


def _check(outputs, case, logits, prefix=""):
    np.testing.assert_allclose(outputs[f"{case}/{prefix}logits"], logits, atol=1e-5, rtol=0)
    np.testing.assert_allclose(outputs[f"{case}/{prefix}probabilities"], _softmax(logits),
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["robmask", "dual_bn"])
def test_serve_tradeoff_matches_keras_for_every_p(exported, name):
    entry, x = exported["exports"][name], exported["arrays"]["x"]
    assert not entry["report"]["imported_tfadv"]
    for p in P_GRID:
        _check(entry["outputs"], f"tradeoff_{p}", _keras_logits(entry["model"], x, p))
    # p matters, so the comparison above could have failed
    assert np.abs(entry["outputs"]["tradeoff_0.0/logits"]
                  - entry["outputs"]["tradeoff_1.0/logits"]).max() > 1e-2


@pytest.mark.parametrize("name", ["robmask", "dual_bn"])
def test_serving_default_runs_the_default_masking(exported, name):
    entry, x = exported["exports"][name], exported["arrays"]["x"]
    _check(entry["outputs"], "default", _keras_logits(entry["model"], x, entry["default_p"]))


@pytest.mark.parametrize("name", ["robmask", "dual_bn"])
def test_serve_maskings_returns_every_named_masking(exported, name):
    entry, x = exported["exports"][name], exported["arrays"]["x"]
    maskings = entry["maskings"] or {"clean": 0.0, "robust": 1.0}
    outputs = {key.split("/")[1] for key in entry["outputs"] if key.startswith("maskings/")}
    assert outputs == {f"{m}_{kind}" for m in maskings for kind in ("logits", "probabilities")}
    for masking, p in maskings.items():
        _check(entry["outputs"], "maskings", _keras_logits(entry["model"], x, p), prefix=f"{masking}_")


def test_plain_model_has_serving_default_only(exported):
    entry, x = exported["exports"]["bn"], exported["arrays"]["x"]
    assert list(entry["report"]["signatures"]) == ["serving_default"]
    _check(entry["outputs"], "default", _keras_logits(entry["model"], x))
    assert entry["record"]["p"] is None and entry["record"]["maskings"] == {}
    kind, message = entry["report"]["errors"]["images_wrong_size"]
    assert kind == "InvalidArgumentError" and "images must have shape [batch, 8, 8, 3]" in message


def test_uint8_input_equals_float_input_over_255(exported):
    entry = exported["exports"]["robmask_uint8"]
    float_entry = exported["exports"]["robmask"]
    assert entry["report"]["signatures"]["serve_tradeoff"]["input_dtypes"]["images"] == "uint8"
    x = exported["arrays"]["x_uint8"].astype("float32") / 255.0
    for p in P_GRID:
        np.testing.assert_allclose(entry["outputs"][f"tradeoff_{p}/logits"],
                                   float_entry["outputs"][f"tradeoff_{p}/logits"], atol=1e-5, rtol=0)
        _check(entry["outputs"], f"tradeoff_{p}", _keras_logits(entry["model"], x, p))
    # float32 images sent to a uint8 export: rejected by the signature itself
    kind, message = entry["report"]["errors"]["images_float32"]
    assert kind == "InvalidArgumentError"
    assert "expected to be a uint8 tensor but is a float tensor" in message


@pytest.mark.parametrize("case, expected", [
    ("p_above_one", "p must be a scalar in [0, 1]. Received:] [1.5]"),
    ("p_negative", "p must be a scalar in [0, 1]. Received:] [-0.25]"),
    # p is declared a scalar: a [2] p fails on that declaration (TensorFlow's message).
    ("p_not_scalar", "be a scalar, but it has shape [2]"),
    ("images_wrong_size", "images must have shape [batch, 8, 8, 3] (NHWC). Received shape:] [4 9 8 3]"),
    ("images_wrong_channels", "images must have shape [batch, 8, 8, 3] (NHWC). Received shape:] [4 8 8 1]"),
    ("images_wrong_rank", "images must have shape [batch, 8, 8, 3] (NHWC). Received shape:] [8 8 3]"),
    ("images_0_255", "images must be float32 values in [0, 1]"),
    # A wrong dtype never reaches the graph: the signature names the input by position.
    ("images_float64", "input #0(zero-based) was expected to be a float tensor but is a double tensor"),
])
def test_bad_requests_raise_invalid_argument_naming_the_input(exported, case, expected):
    errors = exported["exports"]["robmask"]["report"]["errors"]
    assert case in errors, f"{case} returned outputs instead of an error"
    kind, message = errors[case]
    assert kind == "InvalidArgumentError"
    assert expected in message


def test_signatures_declare_image_shape_and_scalar_p(exported):
    """``saved_model_cli show`` reads these specs: [-1, H, W, C] float32 images, a scalar p."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(exported["exports"]["robmask"]["out_dir"]))
    _, tradeoff = loaded.signatures["serve_tradeoff"].structured_input_signature
    assert tradeoff["images"].shape.as_list() == [None, *SHAPE]
    assert tradeoff["images"].dtype == tf.float32
    assert tradeoff["p"].shape.as_list() == [] and tradeoff["p"].dtype == tf.float32
    _, default = loaded.signatures["serving_default"].structured_input_signature
    assert default["images"].shape.as_list() == [None, *SHAPE]


def test_signatures_json_describes_the_saved_model(exported):
    for entry in exported["exports"].values():
        with open(entry["out_dir"] / "signatures.json") as handle:
            described = json.load(handle)
        loaded = entry["report"]["signatures"]
        assert set(described["signatures"]) == set(loaded)
        for name, signature in described["signatures"].items():
            assert sorted(signature["inputs"]) == loaded[name]["inputs"]
            assert sorted(signature["outputs"]) == loaded[name]["outputs"]
            assert {k: v["dtype"] for k, v in signature["inputs"].items()} == loaded[name]["input_dtypes"]
        assert described["environment"]["tensorflow"] == tf.__version__
    robmask = exported["exports"]["robmask"]["record"]
    assert robmask["p"]["default"] == 0.25
    assert robmask["signatures"]["serve_maskings"]["masking"]["middle"] == {"p": 0.5}
    assert robmask["signatures"]["serving_default"]["inputs"]["images"]["shape"] == [None, 8, 8, 3]


def test_saved_model_cli_lists_the_signatures(exported):
    shown = subprocess.run(
        [SAVED_MODEL_CLI, "show", "--all", "--dir", str(exported["exports"]["robmask"]["out_dir"])],
        check=True, capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}).stdout
    listed = sorted(line.split("'")[1] for line in shown.splitlines()
                    if line.startswith("signature_def['") and "__saved_model_init_op" not in line)
    assert listed == ["serve_maskings", "serve_tradeoff", "serving_default"]
    assert "outputs['robust_probabilities']" in shown
    assert "inputs['p']" in shown


# -- writing the export: atomic, refuses to overwrite, records the run -----------------------

def _tiny(norm="robmask"):
    return models.build("tiny", input_shape=SHAPE, norm=norm)


def _leftovers(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith("."))


def test_existing_export_is_refused_without_overwrite(tmp_path):
    out_dir = tmp_path / "model"
    export_model(_tiny(), out_dir)
    before = (out_dir / "signatures.json").read_text()
    with pytest.raises(ValueError, match="out_dir already exists"):
        export_model(_tiny(), out_dir, default_p=1.0)
    assert (out_dir / "signatures.json").read_text() == before
    assert _leftovers(tmp_path) == []


def test_overwrite_replaces_the_export(tmp_path):
    out_dir = tmp_path / "model"
    export_model(_tiny(), out_dir)
    record = export_model(_tiny(), out_dir, default_p=1.0, overwrite=True)
    assert record["p"]["default"] == 1.0
    assert json.loads((out_dir / "signatures.json").read_text())["p"]["default"] == 1.0
    assert tf.saved_model.load(str(out_dir)).signatures["serving_default"] is not None
    assert _leftovers(tmp_path) == []


def test_failure_while_writing_keeps_the_previous_export(tmp_path, monkeypatch):
    out_dir = tmp_path / "model"
    export_model(_tiny(), out_dir)
    before = {name: (out_dir / name).stat().st_size for name in os.listdir(out_dir)
              if (out_dir / name).is_file()}

    def interrupted(functions, path):
        (tmp_path / "staging_seen").write_text(path)
        with open(os.path.join(path, "saved_model.pb"), "wb") as handle:
            handle.write(b"half a model")
        raise RuntimeError("disk full")

    monkeypatch.setattr(saved_model, "_write_archive", interrupted)
    with pytest.raises(RuntimeError, match="disk full"):
        export_model(_tiny(), out_dir, default_p=1.0, overwrite=True)
    staging = (tmp_path / "staging_seen").read_text()
    assert os.path.dirname(staging) == str(tmp_path)  # a sibling, hence the same file system
    assert not os.path.exists(staging)
    assert _leftovers(tmp_path) == []
    after = {name: (out_dir / name).stat().st_size for name in before}
    assert after == before
    assert json.loads((out_dir / "signatures.json").read_text())["p"]["default"] == 0.0


def test_failure_while_swapping_restores_the_previous_export(tmp_path, monkeypatch):
    out_dir = tmp_path / "model"
    export_model(_tiny(), out_dir)
    real_rename = os.rename

    def rename(source, destination):
        if ".partial-" in os.path.basename(source) and not source.endswith(".replaced"):
            raise OSError("rename failed")
        real_rename(source, destination)

    monkeypatch.setattr(saved_model.os, "rename", rename)
    with pytest.raises(OSError, match="rename failed"):
        export_model(_tiny(), out_dir, default_p=1.0, overwrite=True)
    assert json.loads((out_dir / "signatures.json").read_text())["p"]["default"] == 0.0
    assert _leftovers(tmp_path) == []


def test_run_folder_export_records_the_run_and_eps_max(tmp_path):
    run_dir = tmp_path / "runs" / "robmask-run"
    run_dir.mkdir(parents=True)
    _tiny().save(run_dir / "model.keras")
    (run_dir / "config.yaml").write_text(
        "name: robmask-run\nmethod:\n  kind: robmask\n  eps_max: 0.03137254901960784\n")
    record = export_model(run_dir, tmp_path / "export" / "robmask")
    assert record["run"]["run_dir"] == str(run_dir)
    assert record["run"]["model_path"] == str(run_dir / "model.keras")
    assert record["run"]["config"]["method"]["kind"] == "robmask"
    assert record["eps_max"] == pytest.approx(8 / 255)
    assert record["maskings"]["robust"] == {"p": 1.0, "eps": pytest.approx(8 / 255)}
    assert record["model"]["kind"] == "robmask"
    text = "\n".join(summary_lines(record))
    assert "serve_tradeoff" in text and "eps_max = 0.0313725" in text


@pytest.mark.parametrize("kwargs, message", [
    (dict(default_p=1.5), r"default_p must be a number in \[0, 1\]. Received: default_p=1.5"),
    (dict(default_p="high"), "default_p must be a number"),
    (dict(maskings={"clean": 0.0, "too strong": 2.0}), "masking names must start with a letter"),
    (dict(maskings={"strong": 2.0}), r"maskings\['strong'\] must be a number in \[0, 1\]"),
    (dict(maskings={}), "maskings must be a non-empty dict"),
])
def test_bad_arguments_raise_value_error(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        export_model(_tiny(), tmp_path / "model", **kwargs)
    assert os.listdir(tmp_path) == []


def test_plain_model_refuses_a_masking(tmp_path):
    with pytest.raises(ValueError, match="conditioned models only"):
        export_model(_tiny("bn"), tmp_path / "model", default_p=0.5)


def test_model_path_must_name_a_model(tmp_path):
    with pytest.raises(ValueError, match="model_or_path must be a keras.Model, a .keras file"):
        export_model(tmp_path, tmp_path / "model")
