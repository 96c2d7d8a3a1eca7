"""queue order and keyset indexes

erp_requests.total_original_budget (the sum of the request's lines' original budget, backfilled from
erp_request_lines), and the indexes the keyset pages of projects and of the queue read along.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
import persistence.types


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('erp_requests', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('total_original_budget', persistence.types.ScaledDecimal(precision=15, scale=2),
                      server_default='0', nullable=False)
        )
        batch_op.create_index('ix_erp_requests_company_sent', ['company_id', 'sent_at', 'id'], unique=False)
        batch_op.create_index('ix_erp_requests_company_decided', ['company_id', 'decided_at', 'id'], unique=False)
        batch_op.create_index(
            'ix_erp_requests_company_total', ['company_id', 'total_original_budget', 'id'], unique=False
        )
    # Both columns hold the same storage unit on each engine (NUMERIC on PostgreSQL, cents on SQLite), so
    # the stored sum is the total in that unit too.
    op.execute(
        "UPDATE erp_requests SET total_original_budget = COALESCE("
        "(SELECT SUM(l.original_budget) FROM erp_request_lines l WHERE l.request_id = erp_requests.id), 0)"
    )
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.create_index('ix_projects_company_created', ['company_id', 'created_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_index('ix_projects_company_created')
    with op.batch_alter_table('erp_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_erp_requests_company_total')
        batch_op.drop_index('ix_erp_requests_company_decided')
        batch_op.drop_index('ix_erp_requests_company_sent')
    # A plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch copy of erp_requests would have to drop a
    # table that other tables' foreign keys point at.
    op.drop_column('erp_requests', 'total_original_budget')
