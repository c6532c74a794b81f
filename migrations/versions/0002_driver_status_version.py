"""drivers.status_version: orders each driver's status changes in the live index

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.add_column('drivers', sa.Column('status_version', sa.BigInteger(), server_default='0',
                                       nullable=False))


def downgrade() -> None:
    op.drop_column('drivers', 'status_version')
