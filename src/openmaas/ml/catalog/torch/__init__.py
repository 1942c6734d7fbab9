"""PyTorch algorithms: DNN, factorization machine, NCF, RNN/GRU/LSTM, VAE.

Importing this package does not import torch: it declares each algorithm by
dotted path, imported on first lookup (see :mod:`openmaas.ml.catalog.registry`).
Modules: :mod:`.trainer` (the one training loop), :mod:`.estimator` (fit,
inference and files shared by every model), :mod:`.hyperparameters` (the
shared optimisation settings), :mod:`.layers`, :mod:`.inputs`, :mod:`.windows`
(sliding windows for sequence tasks, numpy only) and one module per model.
"""

from __future__ import annotations

from openmaas.ml.catalog.registry import register_lazy

ALGORITHMS = {
    "dnn": "openmaas.ml.catalog.torch.dnn:DNN",
    "fm": "openmaas.ml.catalog.torch.fm:FactorizationMachine",
    "ncf": "openmaas.ml.catalog.torch.ncf:NCF",
    "rnn": "openmaas.ml.catalog.torch.rnn:RNN",
    "vae": "openmaas.ml.catalog.torch.vae:VAE",
}

for _name, _target in ALGORITHMS.items():
    register_lazy(_name, _target)
