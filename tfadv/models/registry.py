"""Build models by name (as timm's ``create_model``), with the norm as an argument."""
import functools
import inspect

_MODELS = {}


def register_model(fn):
    """Decorator: register ``fn(num_classes, input_shape, ctx, **kwargs)`` under its name."""
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"A model named {name!r} is registered already")
    _MODELS[name] = fn
    return fn


def list_models():
    return sorted(_MODELS)


def get_builder(name):
    """The builder of a registered architecture; a ``keras.applications`` name gives
    :func:`tfadv.models.build_application` bound to it."""
    if name not in _MODELS:
        from tfadv.models.applications import build_application, is_application

        if is_application(name):
            return functools.partial(build_application, name)
        raise ValueError(f"Unknown model {name!r}. Available: {', '.join(list_models())} "
                         "or a keras.applications name (e.g. ResNet50V2, DenseNet121)")
    return _MODELS[name]


def builder_options(name):
    """Keyword options an architecture accepts beyond the common ones."""
    params = inspect.signature(get_builder(name)).parameters
    return [p for p in params if p not in ("num_classes", "input_shape", "ctx", "x")]
