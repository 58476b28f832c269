"""tfadv: adversarial-robustness research for TensorFlow 2 / Keras 3.

Submodules (import what you need; importing ``tfadv`` itself is cheap):
``tfadv.data``, ``tfadv.models``, ``tfadv.layers``, ``tfadv.attacks``,
``tfadv.metrics``, ``tfadv.training``, ``tfadv.evaluation``,
``tfadv.landscape``, ``tfadv.export``, ``tfadv.tuning``, ``tfadv.config``.
"""
from tfadv import _quiet  # noqa: F401  (must run before TensorFlow is imported)

__version__ = "0.1.0"
