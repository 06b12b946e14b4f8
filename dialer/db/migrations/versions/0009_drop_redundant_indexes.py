"""drop three indexes that a composite unique index already covers (issue 19)

``ix_leads_campaign_id`` (covered by ``uq_lead_campaign_dedupe`` and ``ix_leads_ready``),
``ix_phones_lead_id`` (covered by ``uq_phone_lead_e164``) and ``ix_consents_person_key``
(covered by ``uq_consent_person_channel``): each is the leading column of a wider index, so
lookups and foreign-key cascades use that one, and every bulk import paid to maintain both.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 03:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REDUNDANT = (
    ("leads", "ix_leads_campaign_id", "campaign_id"),
    ("phones", "ix_phones_lead_id", "lead_id"),
    ("consents", "ix_consents_person_key", "person_key"),
)


def upgrade() -> None:
    for table, name, _column in _REDUNDANT:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name)


def downgrade() -> None:
    for table, name, column in _REDUNDANT:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(name, [column], unique=False)
