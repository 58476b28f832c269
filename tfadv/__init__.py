"""tfadv: adversarial-robustness research for TensorFlow 2 / Keras 3.

Submodules (import what you need): ``tfadv.data``, ``tfadv.models``,
``tfadv.layers``, ``tfadv.attacks``, ``tfadv.metrics``, ``tfadv.training``,
``tfadv.evaluation``, ``tfadv.landscape``, ``tfadv.export``,
``tfadv.tuning``, ``tfadv.config``.

``import tfadv`` registers every Keras object tfadv saves in a model file
(``ConditionedBatchNormalization``, ``DualBatchNormalization``,
``ShortcutPadding``), so ``keras.saving.load_model(path)`` works after it, as
with other Keras add-on packages. Only the small modules that define them are
imported eagerly (TensorFlow itself already is: ``tfadv._quiet`` imports it
quietly); attacks, training, evaluation and the rest stay lazy.
"""
from tfadv import _quiet  # noqa: F401  (must run before TensorFlow is imported)
from tfadv import layers  # noqa: F401,E402  (registers tfadv's layers with Keras)
from tfadv.models import blocks  # noqa: F401,E402  (registers ShortcutPadding)

__version__ = "0.1.0"
