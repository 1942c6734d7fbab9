"""Model flavours: the file formats a model version can hold, and how each predicts.

A version's files live in one directory whose layout its flavour fixes:

    pipeline   pipeline.json (+ preprocessor.skops) + model/   a run's model (persist format)
    lightgbm   model.txt                                       LightGBM's text format
    skops      model.skops                                     a scikit-learn estimator
    onnx       model.onnx                                      any ONNX model
    pickle     model.pkl                                       off unless an operator allows it

``load(flavor, directory)`` gives a :class:`~.predictor.Predictor`; nothing in
the files runs code except a pickle, which callers must have allowed.
"""

from openmaas.ml.flavors.predictor import FLAVORS, Output, Predictor, load, main_file
from openmaas.ml.flavors.signature import Column, Signature

__all__ = ["FLAVORS", "Column", "Output", "Predictor", "Signature", "load", "main_file"]
