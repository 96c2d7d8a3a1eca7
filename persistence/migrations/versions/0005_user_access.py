"""user access

users.disabled_at (a disabled user's tokens are all refused) and users.tokens_valid_after (tokens issued
before it, a whole second, are revoked): see domain/access.py.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 17:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
import persistence.types


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Adding nullable columns needs no table copy on SQLite: batch mode runs plain ALTER TABLE ... ADD COLUMN.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('disabled_at', persistence.types.UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column('tokens_valid_after', persistence.types.UtcDateTime(), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch copy of users would have to drop a table that
    # most other tables' foreign keys point at.
    op.drop_column('users', 'tokens_valid_after')
    op.drop_column('users', 'disabled_at')
