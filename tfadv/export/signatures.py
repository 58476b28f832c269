"""The serving functions of an exported model: validated inputs, masking chosen by p.

Every signature is a function of named tensors that TensorFlow Serving (or
``tf.saved_model.load``) calls without any tfadv code:

- ``serving_default(images)`` → ``{logits, probabilities}`` at the default
  masking ``default_p``;
- ``serve_tradeoff(images, p)`` → the same outputs at the masking for the
  scalar ``p`` (conditioned models only);
- ``serve_maskings(images)`` → ``{<name>_logits, <name>_probabilities}`` for
  every named masking, e.g. ``clean`` (p = 0) and ``robust`` (p = 1), from one
  forward pass over the images repeated once per masking (conditioned only).

What p means depends on the model's normalization (see :data:`P_MEANINGS`).

**Validation.** The input specs declare ``images`` as ``[-1, H, W, C]``
(float32, or uint8 with ``uint8=True``) and ``p`` as a float32 scalar, so
``saved_model_cli show --all`` and TF Serving's model metadata say what the
model takes, and a caller of the loaded signature with another shape is
refused by the signature itself. The graph checks them again (a server
that does not enforce the declared shapes would otherwise run a
``[2, 28, 28, 3]`` batch through global average pooling and return a
plausible but wrong answer); every check raises ``InvalidArgumentError``
whose message names the input (``images must ...``, ``p must ...``), and the
model runs only after all checks passed (control dependencies). A wrong
dtype is rejected by the signature itself (``InvalidArgumentError: ... input
#0 ... expected to be a float tensor but is a uint8 tensor``); NumPy arrays
are converted to the signature's dtype, so float images outside [0, 1]
(e.g. 0..255 sent to a float export) are caught by the range check.
"""
import re

import tensorflow as tf

from tfadv import layers, models
from tfadv.checks import check_strength

CLEAN_AND_ROBUST = {"clean": 0.0, "robust": 1.0}

P_MEANINGS = {
    "robmask": (
        "masking strength p in [0, 1]: every ConditionedBatchNormalization rescales with "
        "gamma_p = u(p) @ W, beta_p = u(p) @ W' where u = encode_strength(p, k) (k = 2: "
        "u = [1 - p, p]). RobMask trains with eps = p * eps_max; masking-interpolation models "
        "interpolate the clean (p = 0) and robust (p = 1) BN rescalings."
    ),
    "dual_bn": (
        "branch weight p in [0, 1]: 0 is the main BN (clean), 1 the auxiliary BN "
        "(adversarial), values in between mix the two normalizations linearly."
    ),
}

_MASKING_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def masking_kind(model):
    """``"robmask"``, ``"dual_bn"`` or ``"bn"``: which normalization ``model`` conditions on p.

    Masking-interpolation models use ``ConditionedBatchNormalization`` too and
    are of kind ``"robmask"``.
    """
    found = set()
    pending = list(model.layers)
    while pending:
        layer = pending.pop()
        pending.extend(getattr(layer, "layers", []))
        if isinstance(layer, layers.ConditionedBatchNormalization):
            found.add("robmask")
        elif isinstance(layer, layers.DualBatchNormalization):
            found.add("dual_bn")
    conditioned = models.is_conditioned(model)
    if len(found) > 1 or bool(found) != conditioned:
        raise ValueError(
            "export needs a plain model or a conditioned model with one kind of conditioned norm "
            f"(RobMask or dual BN). Received: model={model.name!r} with "
            f"conditioned={conditioned}, conditioned norms={sorted(found)}"
        )
    return found.pop() if found else "bn"


def check_maskings(maskings):
    """Validate ``{name: p}``: names usable as output-key prefixes, each p in [0, 1]."""
    if not isinstance(maskings, dict) or not maskings:
        raise ValueError(f"maskings must be a non-empty dict {{name: p}}. Received: maskings={maskings!r}")
    checked = {}
    for name, p in maskings.items():
        if not isinstance(name, str) or not _MASKING_NAME.match(name):
            raise ValueError(
                "masking names must start with a letter and hold only letters, digits and '_'. "
                f"Received: maskings={maskings!r}"
            )
        checked[name] = check_strength(f"maskings[{name!r}]", p)
    return checked


class ServingFunctions:
    """The graph-side functions behind each signature of one exported model.

    Args:
        model: a tfadv model (plain or conditioned) mapping images to logits.
        default_p: the masking of ``serving_default`` (conditioned models).
        uint8: take images as uint8 in 0..255 (divided by 255 in the graph)
            instead of float32 in [0, 1].
        maskings: ``{name: p}`` of ``serve_maskings`` (conditioned models).
    """

    def __init__(self, model, default_p=0.0, uint8=False, maskings=None):
        self.model = model
        self.kind = masking_kind(model)
        self.conditioned = self.kind != "bn"
        default_p = check_strength("default_p", default_p)
        if not self.conditioned and (default_p != 0.0 or maskings):
            raise ValueError(
                f"default_p and maskings apply to conditioned models only; {model.name!r} is a "
                f"plain BN model. Received: default_p={default_p}, maskings={maskings!r}"
            )
        self.maskings = check_maskings(CLEAN_AND_ROBUST if maskings is None else maskings) \
            if self.conditioned else {}
        self.uint8 = bool(uint8)
        image_input = model.input[models.IMAGES] if self.conditioned else model.inputs[0]
        self.image_shape = tuple(int(d) for d in image_input.shape[1:])
        self.num_classes = int(model.outputs[0].shape[-1])
        # serving_default reads its p from a variable rather than a constant, so
        # that it runs the very graph serve_tradeoff runs: grappler cannot fold
        # the masking into constants for one signature and not the other.
        self.default_p = tf.Variable(default_p, trainable=False, dtype=tf.float32, name="default_p") \
            if self.conditioned else None

    # -- input specs -------------------------------------------------------
    def images_spec(self):
        # Declared, so `saved_model_cli show` and TF Serving's metadata show what the model
        # takes; the graph still checks what a caller bypassing the spec sends.
        return tf.TensorSpec(shape=[None, *self.image_shape],
                             dtype=tf.uint8 if self.uint8 else tf.float32, name="images")

    @staticmethod
    def p_spec():
        return tf.TensorSpec(shape=[], dtype=tf.float32, name="p")

    def endpoints(self):
        """``{signature name: (function, input specs)}`` for ``ExportArchive.add_endpoint``."""
        result = {"serving_default": (self.serving_default, [self.images_spec()])}
        if self.conditioned:
            result["serve_tradeoff"] = (self.serve_tradeoff, [self.images_spec(), self.p_spec()])
            result["serve_maskings"] = (self.serve_maskings, [self.images_spec()])
        return result

    # -- validation --------------------------------------------------------
    def _checked_images(self, images):
        """Check rank, shape and (float input) range; return float32 [B, H, W, C] in [0, 1]."""
        expected = list(self.image_shape)
        height, width, channels = expected
        shape = tf.shape(images)
        # The declared rank is 4, so a rank test would be folded away at trace time; a
        # caller bypassing the spec can still send another rank. Padding the runtime shape
        # with -1 compares it whatever its length: [B, H, W, C] gives [H, W, C] then -1.
        padded = tf.concat([shape, tf.fill([5], -1)], axis=0)
        shape_ok = tf.logical_and(tf.reduce_all(tf.equal(padded[1:4], expected)),
                                  tf.equal(padded[4], -1))
        checks = [tf.debugging.Assert(shape_ok, [
            f"images must have shape [batch, {height}, {width}, {channels}] (NHWC). Received shape:",
            shape,
        ], summarize=8)]
        with tf.control_dependencies(checks):
            images = tf.identity(images)
        if self.uint8:
            return tf.ensure_shape(tf.cast(images, tf.float32) / 255.0, [None, *expected])
        in_range = tf.reduce_all(tf.logical_and(images >= 0.0, images <= 1.0))  # False for NaN
        with tf.control_dependencies([tf.debugging.Assert(in_range, [
            "images must be float32 values in [0, 1] (scale 0..255 pixels by 1/255, or export "
            "with uint8=True). Received min, max:", tf.reduce_min(images), tf.reduce_max(images),
        ])]):
            return tf.ensure_shape(tf.identity(images), [None, *expected])

    @staticmethod
    def _checked_p(p):
        """Check that ``p`` is a scalar in [0, 1]; return it with the check as a dependency."""
        ok = tf.logical_and(
            tf.equal(tf.rank(p), 0),
            tf.reduce_all(tf.logical_and(p >= 0.0, p <= 1.0)),  # False for NaN
        )
        with tf.control_dependencies([tf.debugging.Assert(ok, [
            "p must be a scalar in [0, 1]. Received:", p])]):
            return tf.reshape(tf.identity(p), [])

    # -- outputs -----------------------------------------------------------
    def _logits(self, images, condition):
        """float32 logits; ``condition`` (p, scalar or [B, 1]) is ignored by plain models."""
        return tf.cast(models.call_model(self.model, images, condition, training=False), tf.float32)

    @staticmethod
    def _outputs(logits):
        return {"logits": logits, "probabilities": tf.nn.softmax(logits)}

    # -- signatures --------------------------------------------------------
    def serving_default(self, images):
        return self._outputs(self._logits(self._checked_images(images), self.default_p))

    def serve_tradeoff(self, images, p):
        return self._outputs(self._logits(self._checked_images(images), self._checked_p(p)))

    def serve_maskings(self, images):
        images = self._checked_images(images)
        batch = tf.shape(images)[0]
        strengths = tf.constant(list(self.maskings.values()), tf.float32)
        # One forward pass over [masking 0's batch, masking 1's batch, ...].
        repeated = tf.tile(images, [len(self.maskings), 1, 1, 1])
        condition = tf.repeat(strengths, batch)[:, None]
        logits = tf.reshape(self._logits(repeated, condition),
                            [len(self.maskings), batch, self.num_classes])
        outputs = {}
        for index, name in enumerate(self.maskings):
            for key, value in self._outputs(logits[index]).items():
                outputs[f"{name}_{key}"] = value
        return outputs

    # -- description (signatures.json) -------------------------------------
    def describe(self):
        """Each signature's inputs and outputs, in the terms a client needs."""
        height, width, channels = self.image_shape
        images = {
            "dtype": "uint8" if self.uint8 else "float32",
            "shape": [None, height, width, channels],
            "layout": "NHWC",
            "range": [0, 255] if self.uint8 else [0.0, 1.0],
        }
        tensor = {"dtype": "float32", "shape": [None, self.num_classes]}
        outputs = {"logits": tensor, "probabilities": {**tensor, "note": "softmax of logits"}}
        described = {"serving_default": {
            "inputs": {"images": images},
            "outputs": outputs,
            "masking": {"p": self.default_p_value} if self.conditioned else None,
        }}
        if self.conditioned:
            described["serve_tradeoff"] = {
                "inputs": {"images": images,
                           "p": {"dtype": "float32", "shape": [], "range": [0.0, 1.0]}},
                "outputs": outputs,
                "masking": {"p": "the p input"},
            }
            described["serve_maskings"] = {
                "inputs": {"images": images},
                "outputs": {f"{name}_{key}": value for name in self.maskings
                            for key, value in outputs.items()},
                "masking": {name: {"p": p} for name, p in self.maskings.items()},
            }
        return described

    @property
    def default_p_value(self):
        return float(self.default_p.numpy()) if self.conditioned else None
