"""company revision

companies.revision: bumped by every write of readable data the event log does not record; with
event_sequence it validates the query response cache.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 21:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('companies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revision', sa.BigInteger(), server_default='0', nullable=False))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch copy of companies would have to drop the table
    # every other table's foreign keys point at.
    op.drop_column('companies', 'revision')
