"""Export RecBole 1.2.1's MovieLens-100K split as (user, item, part) rows; runs in RecBole's venv.

The split is made by RecBole's own data pipeline, exactly as
``../shared/bench/recsys/run_recbole.py`` makes it (the same config, seeding
and calls, up to ``data_preparation``): RS [0.8, 0.1, 0.1] grouped by user,
random order, seed 2020, every interaction an implicit positive. The output
is a CSV of the original tokens (``user``, ``item``) and ``part`` (``train``,
``valid`` or ``test``), in RecBole's order within each part.

    <venv>/bin/python benchmarks/_recbole_export.py OUT.csv

Not part of the project (it imports RecBole); ``benchmarks/recsys.py`` runs it.
"""

import csv
import json
import sys

from recbole.config import Config
from recbole.data import create_dataset, data_preparation
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
    print(json.dumps({"seed": config["seed"], "split": config["eval_args"]["split"],
                      "n_users": dataset.user_num - 1, "n_items": dataset.item_num - 1,
                      "rows": counts}))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])
