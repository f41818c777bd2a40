"""`cram export`: a run's final model as a Hugging Face `transformers` folder.

    export_run(run, out)   write the folder (cramming.export.job)

The folder's modeling code (`remote_code/`) ships beside the weights; the architecture itself
is generated from `cramming/model.py` at export time. Names load lazily: importing the package
does not import torch or transformers.
"""

from __future__ import annotations

from crambench.lazy import lazy_exports

_EXPORTS = {
    "export_run": "cramming.export.job",
    "shipped_model_source": "cramming.export.job",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
