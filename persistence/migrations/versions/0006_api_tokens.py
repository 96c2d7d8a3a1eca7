"""api tokens and single sign-on

users.kind ('person' or 'service'), api_tokens (a SHA-256 per token and its service-principal user),
company_sso (the OpenID Connect issuer a company trusts) and sso_links (an issuer's subject -> a user).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 17:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
import persistence.types


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=12), server_default='person', nullable=False))
    op.create_table('api_tokens',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('company_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('scope', sa.String(length=20), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', persistence.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', persistence.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', persistence.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', persistence.types.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_api_tokens_company_id_companies')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash')),
    sa.UniqueConstraint('user_id', name=op.f('uq_api_tokens_user_id'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_company_id'), ['company_id'], unique=False)
    op.create_table('company_sso',
    sa.Column('company_id', sa.String(length=40), nullable=False),
    sa.Column('issuer', sa.String(length=500), nullable=False),
    sa.Column('audience', sa.String(length=500), nullable=False),
    sa.Column('email_claim', sa.String(length=100), server_default='email', nullable=False),
    sa.Column('provision', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('client_id', sa.String(length=500), nullable=True),
    sa.Column('updated_at', persistence.types.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_company_sso_company_id_companies')),
    sa.PrimaryKeyConstraint('company_id', name=op.f('pk_company_sso'))
    )
    with op.batch_alter_table('company_sso', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_company_sso_issuer'), ['issuer'], unique=False)
    op.create_table('sso_links',
    sa.Column('issuer', sa.String(length=500), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('linked_at', persistence.types.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sso_links_user_id_users')),
    sa.PrimaryKeyConstraint('issuer', 'subject', name=op.f('pk_sso_links'))
    )
    with op.batch_alter_table('sso_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sso_links_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sso_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sso_links_user_id'))
    op.drop_table('sso_links')
    with op.batch_alter_table('company_sso', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_company_sso_issuer'))
    op.drop_table('company_sso')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_company_id'))
    op.drop_table('api_tokens')
    # A plain ALTER TABLE ... DROP COLUMN: a batch copy of users would drop a table others point at.
    op.drop_column('users', 'kind')
