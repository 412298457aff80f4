"""account code lockout: failures and lockout end of a business account's code

Revision ID: 0002_account_code_lockout
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_account_code_lockout"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("code_failures", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("code_locked_until", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("code_locked_until")
        batch_op.drop_column("code_failures")
