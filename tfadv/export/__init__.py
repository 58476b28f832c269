"""SavedModel export with a selectable masking signature (what ``tfadv export`` runs).

- :func:`export_model` writes ``export/NAME/``: a SavedModel whose
  ``serving_default`` runs the default masking and, for conditioned models,
  ``serve_tradeoff`` (images and a scalar p in [0, 1]) and ``serve_maskings``
  (every named masking in one call), plus ``signatures.json`` describing them.
- :func:`summary_lines` formats the returned record for a terminal.
- :class:`ServingFunctions` holds the validated graph functions behind the
  signatures; :func:`masking_kind` tells which normalization p conditions.

See ``export/README.md`` for the client side (Python and TF Serving REST).
"""

from tfadv.export.saved_model import SIGNATURES_FILE, export_model, summary_lines
from tfadv.export.signatures import CLEAN_AND_ROBUST, P_MEANINGS, ServingFunctions, masking_kind

__all__ = [
    "CLEAN_AND_ROBUST",
    "P_MEANINGS",
    "SIGNATURES_FILE",
    "ServingFunctions",
    "export_model",
    "masking_kind",
    "summary_lines",
]
