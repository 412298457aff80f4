"""http code lockout: wrong codes over HTTP counted apart from the handset's

Revision ID: 0003_http_code_lockout
Revises: 0002_account_code_lockout
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_http_code_lockout"
down_revision: str | None = "0002_account_code_lockout"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("subscribers", "accounts")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("http_code_failures", sa.Integer(), nullable=False, server_default="0")
            )
            batch_op.add_column(sa.Column("http_code_locked_until", sa.DateTime(), nullable=True))


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("http_code_locked_until")
            batch_op.drop_column("http_code_failures")
