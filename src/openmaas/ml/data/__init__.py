"""Dataset ingest: uploaded CSV, JSON Lines or Parquet to typed Parquet and a profile.

Pure computation on local files (no database, no artifact store). See
:func:`ingest_file`, :func:`append_file` and :func:`compute_profile`.
"""

from openmaas.ml.data.ingest import append_file, compute_profile, ingest_file
from openmaas.ml.data.schema import ColumnKind, ColumnSchema, IngestResult, Limits

__all__ = [
    "ColumnKind",
    "ColumnSchema",
    "IngestResult",
    "Limits",
    "append_file",
    "compute_profile",
    "ingest_file",
]
