"""line page index

A budget's lines are paged in (position, id) order, LIMIT rows per budget; (budget_id, position) left the id
tie-break and the keyset condition `(position, id) > (...)` to a sort. The new index, on
(budget_id, position, id), answers the order and the condition; it replaces the old one, which it covers.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 21:00:00.000000
"""
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_budget_line_items_budget_position_id', 'budget_line_items',
                    ['budget_id', 'position', 'id'], unique=False)
    op.drop_index('ix_budget_line_items_budget_position', table_name='budget_line_items')


def downgrade() -> None:
    op.create_index('ix_budget_line_items_budget_position', 'budget_line_items', ['budget_id', 'position'],
                    unique=False)
    op.drop_index('ix_budget_line_items_budget_position_id', table_name='budget_line_items')
