"""Endpoint monitoring as pure computation: drift, prediction distribution, live quality.

No stores, no HTTP: every state here is bounded, JSON-serialisable
(``to_dict`` / ``from_dict``) and mergeable (``merge``), because endpoint
replicas are stateless and several run at once. A replica updates its own
states per request batch (vectorised, no per-row Python), and about every
second its states are merged through the metadata store.

What the serving layer calls:

* Once per deployed version, build the reference (and keep its
  ``to_dict()`` with the deployment)::

      ref = Reference.from_profile(profile, features=signature_columns)
      # or Reference.from_columns({...}) / Reference.from_matrix(x, names)

* Per request batch, in memory::

      window = FeatureWindow(ref)            # one per (endpoint, version, time window)
      window.add({"age": ages, "city": cities})   # or an (n, features) matrix
      preds = PredictionWindow(target_ref)   # target_ref: a FeatureReference
      preds.add(predictions, proba)

* On feedback (labels joined by ``request_id``)::

      quality = ClassificationQuality(classes)   # or RegressionQuality()
      quality.add(labels, y_pred=predicted, proba=proba)

* On sync: ``state = window.to_dict()``; the store side does
  ``FeatureWindow.from_dict(ref, a).merge(FeatureWindow.from_dict(ref, b))``
  (likewise ``PredictionWindow``, ``ClassificationQuality``,
  ``RegressionQuality``) and merges consecutive windows into longer ones.

* To report: ``detect_drift(window, DriftRule()).to_dict()`` gives PSI, KS,
  p-value and a flag per feature and a flag for the endpoint;
  ``preds.summary()``, ``preds.drift()`` and ``quality.result()`` the rest.

Bandit and traffic-split routing live in :mod:`openmaas.ml.bandits`.
"""

from openmaas.ml.monitoring.drift import (
    DriftReport,
    DriftRule,
    FeatureDrift,
    detect_drift,
    feature_drift,
)
from openmaas.ml.monitoring.moments import Moments
from openmaas.ml.monitoring.predictions import PredictionWindow
from openmaas.ml.monitoring.quality import ClassificationQuality, RegressionQuality
from openmaas.ml.monitoring.reference import FeatureReference, Reference
from openmaas.ml.monitoring.window import FeatureWindow

__all__ = [
    "ClassificationQuality",
    "DriftReport",
    "DriftRule",
    "FeatureDrift",
    "FeatureReference",
    "FeatureWindow",
    "Moments",
    "PredictionWindow",
    "Reference",
    "RegressionQuality",
    "detect_drift",
    "feature_drift",
]
