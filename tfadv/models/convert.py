"""RobMask and AdvProp on any Keras classifier: replace its BatchNormalization layers.

:func:`convert_norm` takes a functional or Sequential Keras classifier (a
``keras.applications`` model, a user's own ``.keras`` model, models nested in
models) and returns the same network with every
``keras.layers.BatchNormalization`` replaced by a conditioned norm:

- ``norm="robmask"``: :class:`tfadv.layers.ConditionedBatchNormalization`
  whose k bases all start from the layer's γ and β;
- ``norm="dual_bn"``: :class:`tfadv.layers.DualBatchNormalization` whose
  branches all start from the layer's γ, β and moving statistics.

The moving statistics are copied, every other layer is cloned with its
weights, and the result takes ``{"images": [B, H, W, C], "condition": [B, 1]}``
like the conditioned models of :func:`tfadv.models.build` (see
``tfadv.models.conditioning``). Before any training it computes the original
function at every strength p.

The graph is walked through public Keras API only: ``model.get_config()``
(the documented functional-model format: each layer's ``inbound_nodes`` with
``keras_history = [layer, node, tensor]``) and ``model.get_layer(name)`` for
the live layers, whose weights are copied into clones made with
``from_config``. This is ``keras.models.clone_model`` with one difference
``clone_model`` cannot express: a new model input (the condition) that the
BN layers of nested models also receive.
"""
import keras
import numpy as np

from tfadv.checks import check_choice
from tfadv.models.conditioning import CONDITION, IMAGES
from tfadv.models.norms import NORM_KINDS, NormContext

CONVERTIBLE_NORMS = ("dual_bn", "robmask")
_TENSOR = "__keras_tensor__"


def _is_graph_model(model):
    """True for a Sequential or functional model (their graph is in their config)."""
    if isinstance(model, keras.Sequential):
        return True
    if not isinstance(model, keras.Model):
        return False
    try:
        config = model.get_config()
    except NotImplementedError:
        return False
    return isinstance(config, dict) and "layers" in config and "input_layers" in config


def _batch_norms(model):
    """Every BatchNormalization in ``model``, nested models included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(_batch_norms(layer))
    return found


def _subclassed_inside(model):
    """The first nested model whose graph Keras cannot see (a subclassed model), or None."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            if not _is_graph_model(layer):
                return layer
            inner = _subclassed_inside(layer)
            if inner is not None:
                return inner
    return None


class _Converter:
    """Rebuilds one model graph (and, recursively, its nested models) with conditioned norms."""

    def __init__(self, norm, options):
        self.norm = norm  # None: BatchNormalization is cloned as it is
        self.options = dict(options)
        self.clones = {}  # id(original layer) -> its clone (a layer called twice stays shared)
        self.pairs = []  # (original, clone) whose weights are copied after the graph is built

    # ---- layers -----------------------------------------------------------------------
    def _norm_layer(self, bn, rank):
        if bn.axis not in (-1, rank - 1) and list(np.atleast_1d(bn.axis)) not in ([-1], [rank - 1]):
            raise ValueError(
                f"convert_norm supports channels-last BatchNormalization only. Received: "
                f"layer {bn.name!r} with axis={bn.axis}")
        config = bn.get_config()
        if config.get("renorm"):
            raise ValueError(f"convert_norm does not convert batch renormalization. Received: "
                             f"layer {bn.name!r} with renorm=True")
        from tfadv import layers

        settings = {key: config[key] for key in ("momentum", "epsilon", "center", "scale",
                                                 "synchronized")}
        settings.update(self.options)
        cls = (layers.ConditionedBatchNormalization if self.norm == "robmask"
               else layers.DualBatchNormalization)
        return cls(name=bn.name, dtype=bn.dtype_policy, **settings)

    def _clone(self, layer):
        key = id(layer)
        if key not in self.clones:
            clone = layer.__class__.from_config(layer.get_config())
            self.clones[key] = clone
            self.pairs.append((layer, clone))
        return self.clones[key]

    def call(self, layer, args, kwargs, condition):
        """Call the converted counterpart of ``layer`` on already-converted arguments."""
        if isinstance(layer, keras.layers.BatchNormalization) and self.norm is not None:
            key = id(layer)
            x = args[0]
            if key not in self.clones:
                self.clones[key] = self._norm_layer(layer, len(x.shape))
                self.pairs.append((layer, self.clones[key]))
            training = kwargs.get("training")
            extra = {} if training is None else {"training": training}
            return self.clones[key]([x, condition], **extra)
        if isinstance(layer, keras.Model):
            submodel = self.clones.get(id(layer))
            if submodel is None:
                submodel = self.clones[id(layer)] = self.model(layer)
            if len(args) != 1:
                raise ValueError(f"convert_norm needs nested models called on one input. Received: "
                                 f"model {layer.name!r} called with {len(args)} arguments")
            extra = {} if kwargs.get("training") is None else {"training": kwargs["training"]}
            if self.norm is not None and _batch_norms(layer):
                return submodel({IMAGES: args[0], CONDITION: condition}, **extra)
            return submodel(args[0], **extra)
        return self._clone(layer)(*args, **kwargs)

    # ---- graphs -----------------------------------------------------------------------
    def model(self, model, preprocess=None):
        """The converted ``model``: a functional model with inputs images (+ condition)."""
        if not _is_graph_model(model):
            raise ValueError(
                f"convert_norm needs a functional or Sequential Keras model; a subclassed model's "
                f"layer graph is not visible to Keras. Received: model={model.name!r} "
                f"({type(model).__name__})")
        if len(model.inputs) != 1:
            raise ValueError(f"convert_norm needs a model with one image input. Received: "
                             f"model {model.name!r} with {len(model.inputs)} inputs")
        source = model.inputs[0]
        images = keras.Input(batch_shape=tuple(source.shape), dtype=source.dtype,
                             name=IMAGES)
        conditioned = self.norm is not None and bool(_batch_norms(model))
        condition = (keras.Input((1,), name=CONDITION)
                     if conditioned else None)
        x = images
        if preprocess is not None:
            from tfadv.layers import PixelPreprocessing

            x = PixelPreprocessing(preprocess, name="pixel_preprocessing")(images)
        if isinstance(model, keras.Sequential):
            for layer in model.layers:
                x = self.call(layer, [x], {}, condition)
            outputs = x
        else:
            outputs = self._functional(model, x, condition)
        inputs = {IMAGES: images, CONDITION: condition} if conditioned else images
        return keras.Model(inputs, outputs, name=model.name)

    def _functional(self, model, images, condition):
        config = model.get_config()
        tensors = {}  # (layer name, node index, tensor index) -> converted tensor

        def resolve(value):
            if isinstance(value, dict) and value.get("class_name") == _TENSOR:
                name, node, index = value["config"]["keras_history"]
                return tensors[(name, node, index)]
            if isinstance(value, dict) and "class_name" in value and "config" in value:
                return keras.saving.deserialize_keras_object(value)
            if isinstance(value, dict):
                return {k: resolve(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [resolve(v) for v in value]
            return value

        def ready(value):
            if isinstance(value, dict) and value.get("class_name") == _TENSOR:
                name, node, index = value["config"]["keras_history"]
                return (name, node, index) in tensors
            if isinstance(value, dict):
                return all(ready(v) for v in value.values())
            if isinstance(value, (list, tuple)):
                return all(ready(v) for v in value)
            return True

        input_name = _layer_refs(config["input_layers"])[0][0]
        tensors[(input_name, 0, 0)] = images
        pending = [(entry["name"], index, node) for entry in config["layers"]
                   for index, node in enumerate(entry["inbound_nodes"])]
        while pending:
            waiting = []
            for name, index, node in pending:
                if not ready(node):
                    waiting.append((name, index, node))
                    continue
                args = resolve(node.get("args", []))
                kwargs = resolve(node.get("kwargs", {}))
                out = self.call(model.get_layer(name), args, kwargs, condition)
                for t, tensor in enumerate(keras.tree.flatten(out)):
                    tensors[(name, index, t)] = tensor
            if len(waiting) == len(pending):
                raise ValueError(f"convert_norm could not order the layers of model {model.name!r}: "
                                 f"inputs of {[w[0] for w in waiting][:3]} never computed")
            pending = waiting
        refs = _layer_refs(config["output_layers"])
        if len(refs) != 1:
            raise ValueError(f"convert_norm needs a classifier with one output (logits). Received: "
                             f"model {model.name!r} with {len(refs)} outputs")
        return tensors[tuple(refs[0])]

    def copy_weights(self):
        for original, clone in self.pairs:
            if isinstance(original, keras.layers.BatchNormalization) and self.norm is not None:
                _copy_batch_norm(original, clone)
            else:
                clone.set_weights(original.get_weights())


def _layer_refs(spec):
    """``[[name, node, tensor], ...]`` of a config's ``input_layers`` / ``output_layers``."""
    if isinstance(spec, dict):
        return [ref for value in spec.values() for ref in _layer_refs(value)]
    if len(spec) == 3 and isinstance(spec[0], str):
        return [spec]
    return [ref for value in spec for ref in _layer_refs(value)]


def _copy_batch_norm(bn, layer):
    """Every basis (RobMask) or branch (dual BN) of ``layer`` := ``bn``; statistics copied."""
    from tfadv import layers

    if isinstance(layer, layers.ConditionedBatchNormalization):
        layer.set_bases_from([bn] * layer.k)
        return
    for j in range(layer.branches):
        branch = layer.branch_variables(j)
        for key in ("gamma", "beta", "moving_mean", "moving_variance"):
            if branch[key] is not None:
                branch[key].assign(keras.ops.convert_to_numpy(getattr(bn, key)))


def _check_graph_model(model):
    if not _is_graph_model(model):
        raise ValueError(
            "convert_norm needs a functional or Sequential Keras model; a subclassed model's "
            f"layer graph is not visible to Keras. Received: model={getattr(model, 'name', model)!r} "
            f"({type(model).__name__})")
    inner = _subclassed_inside(model)
    if inner is not None:
        raise ValueError(f"convert_norm cannot see inside the subclassed model nested in "
                         f"{model.name!r}. Received: nested model {inner.name!r} "
                         f"({type(inner).__name__})")


def _check_preprocess(model, preprocess):
    from tfadv.layers import PREPROCESS_MODES, PixelPreprocessing

    if preprocess is None:
        return
    check_choice("preprocess", preprocess, PREPROCESS_MODES)
    if any(isinstance(layer, PixelPreprocessing) for layer in model.layers):
        raise ValueError(f"model {model.name!r} already starts with its PixelPreprocessing; "
                         f"do not state it again. Received: preprocess={preprocess!r}")


def with_preprocessing(model, preprocess):
    """A copy of ``model`` (weights copied) taking images in [0, 1] through ``PixelPreprocessing(preprocess)``.

    The preprocessing layer is inserted in the model's own graph (not as a
    nested model), so BN-only fine-tuning and masking interpolation, which
    read a model's top-level layers, see its BatchNormalization layers.
    """
    _check_graph_model(model)
    _check_preprocess(model, preprocess)
    converter = _Converter(None, {})
    converted = converter.model(model, preprocess)
    converter.copy_weights()
    return converted


def convert_norm(model, norm, preprocess=None, **options):
    """A copy of ``model`` whose BatchNormalization layers are RobMask or AdvProp norms.

    Args:
        model: a functional or Sequential Keras classifier with one image input
            and one output (logits), with at least one channels-last
            ``keras.layers.BatchNormalization`` (nested models are converted
            too and stay nested).
        norm: ``"robmask"`` (:class:`tfadv.layers.ConditionedBatchNormalization`,
            every one of the k bases starting from the layer's γ and β) or
            ``"dual_bn"`` (:class:`tfadv.layers.DualBatchNormalization`,
            every branch starting from the layer).
        preprocess: the input range or preprocessing ``model`` expects, one of
            :data:`tfadv.layers.PREPROCESS_MODES` (``"0..255"``, ``"-1..1"``,
            ``"torch"``, ``"caffe"``; None or ``"0..1"``: images in [0, 1]).
            The converted model then takes images in [0, 1] and starts with a
            :class:`tfadv.layers.PixelPreprocessing` layer, so attacks and ε
            stay in [0, 1] units.
        **options: options of the new norm layers: ``k`` (RobMask's number of
            bases, default 2), ``branches`` (dual BN, default 2),
            ``momentum`` (default: each BN's own), ``synchronized``.

    Returns:
        A conditioned functional ``keras.Model`` with inputs
        ``{"images", "condition"}``, the moving statistics and every other
        weight copied: at every strength p (every branch) it computes what
        ``model`` computes. It shares no weights with ``model``.

    Raises:
        ValueError: for a subclassed model, a model without
            BatchNormalization, an unknown ``norm`` or option, or a BN the
            conditioned norms cannot express (not channels-last, renorm).
    """
    if norm not in CONVERTIBLE_NORMS:
        raise ValueError(f"norm must be one of {CONVERTIBLE_NORMS} (of {NORM_KINDS}). "
                         f"Received: norm={norm!r}")
    allowed = {"momentum", "synchronized", "k" if norm == "robmask" else "branches"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"Unknown option(s) {unknown} for norm={norm!r}. Available: {sorted(allowed)}")
    NormContext(norm, options)  # validates k / branches with the factory's messages
    _check_graph_model(model)
    _check_preprocess(model, preprocess)
    if not _batch_norms(model):
        raise ValueError(f"convert_norm found no BatchNormalization layer to convert. "
                         f"Received: model={model.name!r}")
    converter = _Converter(norm, options)
    converted = converter.model(model, preprocess)
    converter.copy_weights()
    return converted


def from_pretrained(model, norm="bn", norm_options=None, preprocess=None):
    """A loaded model prepared for training with ``norm`` (``model.init_from`` in a config).

    A plain model with a conditioned ``norm`` (``robmask``, ``dual_bn``) is
    converted (:func:`convert_norm`); a model with its strength input, or
    ``norm="bn"``, is kept. ``preprocess`` inserts the model's input
    preprocessing (:func:`with_preprocessing`) when stated.
    """
    from tfadv.models.conditioning import is_conditioned

    if norm in CONVERTIBLE_NORMS and not is_conditioned(model):
        return convert_norm(model, norm, preprocess=preprocess, **(norm_options or {}))
    if preprocess is not None:
        return with_preprocessing(model, preprocess)
    return model
