"""Model compression as pure computation: ONNX export, int8 quantisation, distillation.

Each transform takes a fitted model and gives a new one a registry can store as
a new version; :func:`compression_report` says what it gained and cost. No
stores, no database, no HTTP here: callers (the model registry) load and save.

::

    from openmaas.ml.compress import (
        OnnxPredictor, compression_report, distill, export_onnx, quantize,
    )

    onnx_bytes = export_onnx(pipeline)           # Pipeline(prep, model) | catalog model
                                                 # | lightgbm.Booster
    predictor = OnnxPredictor(onnx_bytes)        # ONNX Runtime, 1 intra-op thread
    predictor.predict_proba(X)                   # X: (n, features) float array, columns
                                                 # in predictor.feature_names order
    int8 = quantize(onnx_bytes)                  # dnn exports only (MatMul weights)
    student = distill(teacher.predict_proba, X_train, "binary", student="lightgbm")
    student_dir = ...; save_pipeline(student, student_dir)   # like any trained version
    report = compression_report(native.predict_proba, predictor.predict_proba,
                                X_eval, y_eval, "roc_auc", size_before, len(onnx_bytes))

- :func:`export_onnx` (:mod:`.onnx_export`): a fitted pipeline whose
  preprocessing is numeric (impute, missing indicators, scale) in front of
  ``lightgbm``, ``linear``, ``random_forest``, ``extra_trees`` or ``dnn``, a bare
  catalog model, or a ``lightgbm.Booster``, as ONNX bytes. One double input
  ``input`` ``[N, features]``; one double output, ``probabilities`` (classifiers)
  or ``prediction`` (regressors); metadata with the feature names, classes,
  task and source (:mod:`.onnx_graph`). Each part computes in the precision
  its native model does: LightGBM (our converter, :mod:`.onnx_lightgbm`) and
  linear models in double, so to ~1e-12; scikit-learn trees and the dnn in
  float32 as they do natively (~1e-7 relative). Text, datetime or categorical
  columns, category embeddings, LightGBM features ONNX cannot express exactly
  and algorithms without a converter raise
  :class:`~openmaas.errors.InvalidInput` naming why.
- :class:`OnnxPredictor` (:mod:`.predictor`): ``predict``/``predict_proba`` on
  a 2-D float32/float64 array, ``feature_names``, ``classes``, ``task``.
- :func:`quantize` (:mod:`.quantize`): ONNX Runtime dynamic int8 quantisation
  of the float32 weight matrices (the ``dnn``); models without any (trees,
  linear) raise InvalidInput.
- :func:`distill` (:mod:`.distill`): a small ``lightgbm`` or ``dnn``/``mlp``
  student fitted on a teacher's soft predictions, returned as a fitted
  ``Pipeline(prep, model)`` that saves, loads, exports and serves like any
  trained version.
- :func:`compression_report` (:mod:`.report`): size before/after, single-thread
  latency per row (median of timed batches) and one-row latency before/after,
  metric before/after/change.

The ONNX packages are the optional extra ``openmaas[onnx]``; without them the
functions raise :class:`~openmaas.errors.Unavailable` naming it. Importing this
package imports none of them (nor torch).
"""

from __future__ import annotations

from openmaas.ml.compress.distill import STUDENT_DEFAULTS, distill
from openmaas.ml.compress.onnx_export import export_onnx
from openmaas.ml.compress.predictor import OnnxPredictor
from openmaas.ml.compress.quantize import quantize
from openmaas.ml.compress.report import artifact_size, compression_report, latency_per_row

__all__ = [
    "STUDENT_DEFAULTS",
    "OnnxPredictor",
    "artifact_size",
    "compression_report",
    "distill",
    "export_onnx",
    "latency_per_row",
    "quantize",
]
