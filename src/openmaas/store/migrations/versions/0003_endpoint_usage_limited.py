"""endpoint usage counts rate-limited requests

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 02:20:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("endpoint_usage") as batch:
        batch.add_column(sa.Column("limited", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("endpoint_usage") as batch:
        batch.drop_column("limited")
