"""Export RecBole 1.2.1's MovieLens-100K split as (user, item, part) rows; runs in RecBole's venv.

The split is made by RecBole's own data pipeline, exactly as
``../shared/bench/recsys/run_recbole.py`` makes it (the same config, seeding
and calls, up to ``data_preparation``): RS [0.8, 0.1, 0.1] grouped by user,
random order, seed 2020, every interaction an implicit positive. The output
is a CSV of the original tokens (``user``, ``item``) and ``part`` (``train``,
``valid`` or ``test``), in RecBole's order within each part.

It also prints what RecBole's own evaluator (full ranking, history masked)
gives a fixed ranking, so the importer can check its evaluation against it:
every item scored by its number of training interactions plus ``id * 1e-6``
(the item token as a number; it breaks ties identically on both sides).
RecBole's ``Pop`` model is not that ranking: it counts an item once per
training batch (``item_cnt[item] += 1`` with repeated indices).

    <venv>/bin/python benchmarks/_recbole_export.py OUT.csv

Not part of the project (it imports RecBole); ``benchmarks/recsys.py`` runs it.
"""

import csv
import json
import sys

import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.model.general_recommender import Pop
from recbole.trainer import Trainer
from recbole.utils import init_seed

CONFIG = {
    "use_gpu": False,
    "show_progress": False,
    "checkpoint_dir": "/tmp/recbole_saved",
    "metrics": ["Recall", "MRR", "NDCG", "Hit", "Precision"],
    "topk": [10],
}


def main(out: str) -> None:
    config = Config(model="BPR", dataset="ml-100k", config_dict=CONFIG)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    parts = dict(zip(("train", "valid", "test"), data_preparation(config, dataset), strict=True))
    uid, iid = dataset.uid_field, dataset.iid_field
    counts = {}
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["user", "item", "part"])
        for name, loader in parts.items():
            inter = loader._dataset.inter_feat
            users = dataset.id2token(uid, inter[uid].numpy())
            items = dataset.id2token(iid, inter[iid].numpy())
            writer.writerows((u, i, name) for u, i in zip(users, items, strict=True))
            counts[name] = len(users)
    check = popularity_metrics(config, parts)
    print(json.dumps({"seed": config["seed"], "split": config["eval_args"]["split"],
                      "n_users": dataset.user_num - 1, "n_items": dataset.item_num - 1,
                      "rows": counts, "popularity": check}))  # fmt: skip


class FixedScores(Pop):
    """Every user gets the same item scores (``scores``, indexed by RecBole's item id)."""

    def __init__(self, config, dataset, scores):
        super().__init__(config, dataset)
        self.scores = scores

    def full_sort_predict(self, interaction):
        n = interaction[self.USER_ID].shape[0]
        return self.scores.repeat(n)


def popularity_metrics(config, parts):
    """RecBole's evaluation of training counts + ``id * 1e-6`` on the valid and test parts."""
    train = parts["train"]._dataset
    iid = train.iid_field
    counts = torch.bincount(train.inter_feat[iid], minlength=train.item_num).double()
    tokens = train.field2id_token[iid]
    ids = torch.tensor([0.0] + [float(t) for t in tokens[1:]], dtype=torch.float64)
    model = FixedScores(config, train, counts + ids * 1e-6)
    trainer = Trainer(config, model)
    return {
        name: {k: float(v) for k, v in trainer.evaluate(parts[name], load_best_model=False,
                                                         show_progress=False).items()}
        for name in ("valid", "test")
    }  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])
