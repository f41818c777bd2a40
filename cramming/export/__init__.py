"""`cram export`: a run's final model as a Hugging Face `transformers` folder.

    export_run(run, out)   write the folder (cramming.export.export)

The folder's modeling code (`remote_code/`) ships beside the weights; the architecture itself
is generated from `cramming/model.py` at export time. Names load lazily: importing the package
does not import torch or transformers.
"""

from __future__ import annotations

from data_prep.lazy import lazy_exports

_EXPORTS = {
    "export_run": "cramming.export.export",
    "shipped_model_source": "cramming.export.export",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
