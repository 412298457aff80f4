"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("msisdn", sa.String(length=15), nullable=False),
        sa.Column("actor", sa.String(length=30), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_msisdn"), ["msisdn"], unique=False)

    op.create_table(
        "letter_types",
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("code", sa.String(length=4), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("name_en", sa.String(length=80), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "code", name=op.f("pk_letter_types")),
    )
    op.create_table(
        "payment_methods",
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_payment_methods")),
    )
    op.create_table(
        "services",
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("activation_fee", sa.Integer(), nullable=False),
        sa.Column("monthly_fee", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=200), nullable=False),
        sa.Column("settings_schema", sa.JSON(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_services")),
    )
    op.create_table(
        "tariff_plans",
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("monthly_fee", sa.Integer(), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("sms", sa.Integer(), nullable=False),
        sa.Column("business_only", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_tariff_plans")),
    )
    op.create_table(
        "accounts",
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("street", sa.String(length=120), nullable=False),
        sa.Column("postal_code", sa.String(length=6), nullable=False),
        sa.Column("city", sa.String(length=60), nullable=False),
        sa.Column("payment_method", sa.String(length=20), nullable=False),
        sa.Column("billing_day", sa.Integer(), nullable=False),
        sa.Column("opened", sa.Date(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_method"],
            ["payment_methods.code"],
            name=op.f("fk_accounts_payment_method_payment_methods"),
        ),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_accounts")),
    )
    op.create_table(
        "invoices",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_number", sa.String(length=20), nullable=False),
        sa.Column("number", sa.String(length=30), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("issued", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("paid", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_number"],
            ["accounts.number"],
            name=op.f("fk_invoices_account_number_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("number", name=op.f("uq_invoices_number")),
    )
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.create_index(
            "ix_invoices_account_period", ["account_number", "period_start"], unique=False
        )

    op.create_table(
        "subscribers",
        sa.Column("msisdn", sa.String(length=15), nullable=False),
        sa.Column("account_number", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("tariff_code", sa.String(length=20), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=2), server_default="pl", nullable=False),
        sa.Column("activated", sa.Date(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("code_failures", sa.Integer(), nullable=False),
        sa.Column("code_locked_until", sa.DateTime(), nullable=True),
        sa.Column("password_failures", sa.Integer(), nullable=False),
        sa.Column("password_locked_until", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_number"],
            ["accounts.number"],
            name=op.f("fk_subscribers_account_number_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["tariff_code"],
            ["tariff_plans.code"],
            name=op.f("fk_subscribers_tariff_code_tariff_plans"),
        ),
        sa.PrimaryKeyConstraint("msisdn", name=op.f("pk_subscribers")),
    )
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_subscribers_account_number"), ["account_number"], unique=False
        )

    op.create_table(
        "active_services",
        sa.Column("msisdn", sa.String(length=15), nullable=False),
        sa.Column("service_code", sa.String(length=20), nullable=False),
        sa.Column("activated_at", sa.DateTime(), nullable=False),
        sa.Column("numbers", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["msisdn"], ["subscribers.msisdn"], name=op.f("fk_active_services_msisdn_subscribers")
        ),
        sa.ForeignKeyConstraint(
            ["service_code"],
            ["services.code"],
            name=op.f("fk_active_services_service_code_services"),
        ),
        sa.PrimaryKeyConstraint("msisdn", "service_code", name=op.f("pk_active_services")),
    )
    op.create_table(
        "change_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("msisdn", sa.String(length=15), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("value", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("effective", sa.Date(), nullable=True),
        sa.Column("reference", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(
            ["msisdn"], ["subscribers.msisdn"], name=op.f("fk_change_requests_msisdn_subscribers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_requests")),
        sa.UniqueConstraint("reference", name=op.f("uq_change_requests_reference")),
    )
    with op.batch_alter_table("change_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_change_requests_msisdn"), ["msisdn"], unique=False)

    op.create_table(
        "charges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("msisdn", sa.String(length=15), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("reference", sa.String(length=30), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["msisdn"], ["subscribers.msisdn"], name=op.f("fk_charges_msisdn_subscribers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charges")),
    )
    with op.batch_alter_table("charges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_charges_msisdn"), ["msisdn"], unique=False)

    op.create_table(
        "letters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("msisdn", sa.String(length=15), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("type_code", sa.String(length=4), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("reference", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(
            ["msisdn"], ["subscribers.msisdn"], name=op.f("fk_letters_msisdn_subscribers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_letters")),
        sa.UniqueConstraint("reference", name=op.f("uq_letters_reference")),
    )
    with op.batch_alter_table("letters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_letters_msisdn"), ["msisdn"], unique=False)

    op.create_table(
        "profit_members",
        sa.Column("msisdn", sa.String(length=15), nullable=False),
        sa.Column("joined", sa.Date(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["msisdn"], ["subscribers.msisdn"], name=op.f("fk_profit_members_msisdn_subscribers")
        ),
        sa.PrimaryKeyConstraint("msisdn", name=op.f("pk_profit_members")),
    )
    op.create_table(
        "profit_transactions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("msisdn", sa.String(length=15), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("reference", sa.String(length=30), nullable=False),
        sa.ForeignKeyConstraint(
            ["msisdn"],
            ["subscribers.msisdn"],
            name=op.f("fk_profit_transactions_msisdn_subscribers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profit_transactions")),
    )
    with op.batch_alter_table("profit_transactions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_profit_transactions_msisdn"), ["msisdn"], unique=False)

    op.create_table(
        "temp_passwords",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("msisdn", sa.String(length=15), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["msisdn"], ["subscribers.msisdn"], name=op.f("fk_temp_passwords_msisdn_subscribers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_temp_passwords")),
    )
    with op.batch_alter_table("temp_passwords", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_temp_passwords_msisdn"), ["msisdn"], unique=False)

    op.create_table(
        "usage",
        sa.Column("msisdn", sa.String(length=15), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("minutes_used", sa.Integer(), nullable=False),
        sa.Column("sms_used", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["msisdn"], ["subscribers.msisdn"], name=op.f("fk_usage_msisdn_subscribers")
        ),
        sa.PrimaryKeyConstraint("msisdn", "period_start", name=op.f("pk_usage")),
    )


def downgrade() -> None:

    op.drop_table("usage")
    with op.batch_alter_table("temp_passwords", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_temp_passwords_msisdn"))

    op.drop_table("temp_passwords")
    with op.batch_alter_table("profit_transactions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_profit_transactions_msisdn"))

    op.drop_table("profit_transactions")
    op.drop_table("profit_members")
    with op.batch_alter_table("letters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_letters_msisdn"))

    op.drop_table("letters")
    with op.batch_alter_table("charges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_charges_msisdn"))

    op.drop_table("charges")
    with op.batch_alter_table("change_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_change_requests_msisdn"))

    op.drop_table("change_requests")
    op.drop_table("active_services")
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscribers_account_number"))

    op.drop_table("subscribers")
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index("ix_invoices_account_period")

    op.drop_table("invoices")
    op.drop_table("accounts")
    op.drop_table("tariff_plans")
    op.drop_table("services")
    op.drop_table("payment_methods")
    op.drop_table("letter_types")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_msisdn"))

    op.drop_table("audit_log")
