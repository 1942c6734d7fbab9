"""Which dataset columns a model sees: every column but the task's structural ones.

A column with a role in the task is a feature or not by this table:

===================  =================  =============================================
role                 feature?           why
===================  =================  =============================================
target(s)            never              what is predicted; anomaly labels too (only
                                        used to score)
group column         no                 group splits keep test groups unseen, so the
                                        id cannot generalise; it only invites memorising
predefined fold      no                 an artefact of evaluation, not of the data
time (time split)    yes, tabular       known when predicting; becomes calendar parts
                                        and days since 1970 (not a leak: a test row's
                                        own timestamp is no information about its
                                        target beyond what a deployed model would have)
stratify column      yes                stratifying does not make a column leak
user, item           only these         NCF reads (user, item) pairs and nothing else
rating               never              the recommendation target
series, time (seq.)  no                 they order and cut the windows
===================  =================  =============================================

Sequence tasks window the target (if numeric) and the other numeric and
boolean columns; datetime, categorical and text columns are not windowed.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from openmaas.errors import InvalidInput
from openmaas.ml.data.schema import ColumnSchema
from openmaas.ml.tasks import GroupSplit, PredefinedColumnSplit, TaskSpec

__all__ = ["check_columns", "feature_columns", "structural_columns"]


def structural_columns(spec: TaskSpec) -> dict[str, str]:
    """Columns that are never tabular features, with their role."""
    roles: dict[str, str] = {}
    outer = spec.protocol.outer
    if isinstance(outer, GroupSplit):
        roles[outer.group_column] = "group"
    if isinstance(outer, PredefinedColumnSplit):
        roles[outer.column] = "predefined fold"
    if spec.sequence is not None:
        roles[spec.sequence.series_column] = "series"
        roles[spec.sequence.time_column] = "time"
    if spec.recommendation is not None:
        roles[spec.recommendation.user_column] = "user"
        roles[spec.recommendation.item_column] = "item"
    roles.update(dict.fromkeys(spec.target_columns, "target"))
    return roles


def feature_columns(spec: TaskSpec, columns: Sequence[ColumnSchema]) -> list[ColumnSchema]:
    """The columns the model reads, in dataset order (see the module docstring)."""
    by_name = {c.name: c for c in columns}
    if spec.recommendation is not None:
        cfg = spec.recommendation
        return [by_name[cfg.user_column], by_name[cfg.item_column]]
    roles = structural_columns(spec)
    features = [c for c in columns if c.name not in roles]
    if spec.sequence is not None:
        target = by_name[spec.target_columns[0]]
        numeric = [c for c in features if c.kind in ("numeric", "boolean")]
        return [target, *numeric] if target.kind == "numeric" else numeric
    return features


def check_columns(spec: TaskSpec, frame: pd.DataFrame, columns: Sequence[ColumnSchema]) -> None:
    """InvalidInput unless every column the task names is in the schema and the frame,
    the targets have no missing values and there is something to train on."""
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise InvalidInput("the column schema lists a column twice")
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise InvalidInput(
            f"the frame lacks column {missing[0]!r} of the schema", details={"column": missing[0]}
        )
    roles = structural_columns(spec)
    for name, role in roles.items():
        if name not in names:
            raise InvalidInput(
                f"the {role} column {name!r} is not in the dataset", details={"column": name}
            )
    for name in spec.target_columns:
        count = int(frame[name].isna().sum())
        if count:
            raise InvalidInput(
                f"target column {name!r} has {count} missing values; drop or fill them",
                details={"column": name, "missing": count},
            )
    if not feature_columns(spec, columns):
        what = "numeric or boolean column to window" if spec.sequence else "feature column"
        raise InvalidInput(
            f"the dataset has no {what}: every column is a target or has a role in the task"
        )
