"""call recordings: recordings table, campaign recording settings

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 21:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("record_calls", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column(
                "recording_retention_days", sa.Integer(), nullable=False, server_default="180"
            )
        )
        batch_op.add_column(
            sa.Column(
                "recording_consent_prompt",
                sa.String(length=200),
                nullable=False,
                server_default="",
            )
        )
    # the satisfaction follow-up records by default (issue 16)
    campaigns = sa.table(
        "campaigns", sa.column("type", sa.String), sa.column("record_calls", sa.Boolean)
    )
    op.execute(
        campaigns.update()
        .where(campaigns.c.type == "seguimiento_satisfaccion")
        .values(record_calls=True)
    )
    op.create_table(
        "recordings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("attempt_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("channels", sa.Integer(), nullable=False),
        sa.Column("pbx_path", sa.String(length=500), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("retention_until", sa.DateTime(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "recording",
                "ok",
                "failed",
                "deleted",
                name="recordingstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("failure_reason", sa.String(length=200), nullable=True),
        sa.Column("stopped_at", sa.DateTime(), nullable=True),
        sa.Column("stopped_by", sa.Integer(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.Column("deleted_reason", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["users.id"],
            name=op.f("fk_recordings_agent_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["attempt_id"],
            ["call_attempts.id"],
            name=op.f("fk_recordings_attempt_id_call_attempts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_recordings_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_recordings_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["stopped_by"],
            ["users.id"],
            name=op.f("fk_recordings_stopped_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
        sa.UniqueConstraint("attempt_id", name=op.f("uq_recordings_attempt_id")),
    )
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recordings_campaign_id"), ["campaign_id"])
        batch_op.create_index(batch_op.f("ix_recordings_lead_id"), ["lead_id"])
        batch_op.create_index(batch_op.f("ix_recordings_retention_until"), ["retention_until"])
        batch_op.create_index(batch_op.f("ix_recordings_status"), ["status"])


def downgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recordings_status"))
        batch_op.drop_index(batch_op.f("ix_recordings_retention_until"))
        batch_op.drop_index(batch_op.f("ix_recordings_lead_id"))
        batch_op.drop_index(batch_op.f("ix_recordings_campaign_id"))
    op.drop_table("recordings")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("recording_consent_prompt")
        batch_op.drop_column("recording_retention_days")
        batch_op.drop_column("record_calls")
