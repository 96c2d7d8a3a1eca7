"""The database schema (SQLAlchemy Core). Alembic migrations create exactly this; a test compares them.

Ids are opaque text: a type prefix and a random UUID, so an id says what it names (the `node` query relies
on that) and never hints how many rows another company has.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from persistence.types import Money, Quantity, UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _id() -> Column[str]:
    return Column("id", String(40), primary_key=True)


def _company() -> Column[str]:
    return Column("company_id", String(40), ForeignKey("companies.id"), nullable=False, index=True)


def _ts(name: str, nullable: bool = True) -> Column:  # type: ignore[type-arg]
    return Column(name, UtcDateTime(), nullable=nullable)


def _user(name: str, nullable: bool = True) -> Column[str]:
    return Column(name, String(40), ForeignKey("users.id"), nullable=nullable)


server_settings = Table(
    "server_settings",
    metadata,
    Column("key", String(60), primary_key=True),
    Column("value", Text, nullable=False),
)

companies = Table(
    "companies",
    metadata,
    _id(),
    Column("name", String(200), nullable=False),
    Column("currency", String(3), nullable=False, server_default="USD"),
    Column("erp_connector", String(40)),
    Column("erp_settings", JSON, nullable=False, default=dict),
    # Last event sequence handed out. Incrementing it row-locks the company until commit, which keeps the
    # per-company sequence gapless and committed in order.
    Column("event_sequence", BigInteger, nullable=False, server_default="0"),
    # Bumped by every write of data a query can read that the event log does not record (permissions, users,
    # projects, cost lists, ERP settings, notification settings: persistence.revisions). With event_sequence
    # it is the validator of the response cache (app.response_cache): equal pair, unchanged answers.
    Column("revision", BigInteger, nullable=False, server_default="0"),
    _ts("created_at", nullable=False),
)

users = Table(
    "users",
    metadata,
    _id(),
    _company(),
    Column("email", String(320), nullable=False),
    Column("name", String(200), nullable=False),
    Column("is_company_admin", Boolean, nullable=False, server_default="0"),
    Column("is_accounting_approver", Boolean, nullable=False, server_default="0"),
    Column("erp_permission", String(12), nullable=False, server_default="NONE"),
    _ts("created_at", nullable=False),
    # Taking access back (domain.access): every token is refused while disabled_at is set, and a token
    # issued before tokens_valid_after (a whole second) is refused for good.
    _ts("disabled_at"),
    _ts("tokens_valid_after"),
    # "person", or "service": the principal an API token acts as (named in the audit trail, never notified).
    Column("kind", String(12), nullable=False, server_default="person"),
    UniqueConstraint("company_id", "email", name="uq_users_company_email"),
)

# Scoped API tokens: only the SHA-256 of the token is kept. Each token has its own service-principal user,
# so everything that records who did something (events, sent_by, idempotency keys) names the token.
api_tokens = Table(
    "api_tokens",
    metadata,
    _id(),
    _company(),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("scope", String(20), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    _ts("created_at", nullable=False),
    _ts("expires_at"),
    _ts("last_used_at"),
    _ts("revoked_at"),
)

# The OpenID Connect issuer a company trusts for its people (`company set-sso`).
company_sso = Table(
    "company_sso",
    metadata,
    Column("company_id", String(40), ForeignKey("companies.id"), primary_key=True),
    Column("issuer", String(500), nullable=False, index=True),
    Column("audience", String(500), nullable=False),
    Column("email_claim", String(100), nullable=False, server_default="email"),
    Column("provision", Boolean, nullable=False, server_default="0"),
    Column("client_id", String(500)),
    _ts("updated_at", nullable=False),
)

# A person's identity at the issuer (`sub`), linked to their user at the first sign-in by verified email.
sso_links = Table(
    "sso_links",
    metadata,
    Column("issuer", String(500), primary_key=True),
    Column("subject", String(255), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False, index=True),
    _ts("linked_at", nullable=False),
)

projects = Table(
    "projects",
    metadata,
    _id(),
    _company(),
    Column("name", String(200), nullable=False),
    Column("number", String(60), nullable=False),
    Column("erp_job_id", String(100)),
    _ts("created_at", nullable=False),
    UniqueConstraint("company_id", "number", name="uq_projects_company_number"),
    # Keyset pages of a company's projects (oldest first).
    Index("ix_projects_company_created", "company_id", "created_at", "id"),
)

project_permissions = Table(
    "project_permissions",
    metadata,
    Column("user_id", String(40), ForeignKey("users.id"), primary_key=True),
    Column("project_id", String(40), ForeignKey("projects.id"), primary_key=True),
    Column("budget_permission", String(12), nullable=False),
    Column("grants", JSON, nullable=False, default=list),
)

cost_codes = Table(
    "cost_codes",
    metadata,
    _id(),
    _company(),
    Column("code", String(40), nullable=False),
    Column("description", String(200), nullable=False),
    Column("erp_synced", Boolean, nullable=False, server_default="0"),
    UniqueConstraint("company_id", "code", name="uq_cost_codes_company_code"),
)

cost_types = Table(
    "cost_types",
    metadata,
    _id(),
    _company(),
    Column("code", String(20), nullable=False),
    Column("name", String(100), nullable=False),
    Column("erp_synced", Boolean, nullable=False, server_default="0"),
    UniqueConstraint("company_id", "code", name="uq_cost_types_company_code"),
)

budgets = Table(
    "budgets",
    metadata,
    _id(),
    _company(),
    Column("project_id", String(40), ForeignKey("projects.id"), nullable=False, unique=True),
    Column("locked", Boolean, nullable=False, server_default="0"),
    _ts("locked_at"),
    _user("locked_by_id"),
    Column("version", Integer, nullable=False, server_default="1"),
    # The status of the latest request, kept here so every budget read and check is one row.
    Column("export_status", String(24), nullable=False, server_default="NOT_SENT"),
    Column("last_request_id", String(40)),
    Column("request_count", Integer, nullable=False, server_default="0"),
)

line_items = Table(
    "budget_line_items",
    metadata,
    _id(),
    _company(),
    Column("budget_id", String(40), ForeignKey("budgets.id"), nullable=False),
    Column("cost_code_id", String(40), ForeignKey("cost_codes.id"), nullable=False),
    Column("cost_type_id", String(40), ForeignKey("cost_types.id"), nullable=False),
    # '' rather than NULL: a unique key must treat "no sub job" as one value on every engine.
    Column("sub_job", String(60), nullable=False, server_default=""),
    Column("description", String(500)),
    Column("original_amount", Money(), nullable=False),
    # Net of all modifications in and out; maintained with each modification (they are never edited).
    Column("modifications_amount", Money(), nullable=False),
    Column("quantity", Quantity()),
    Column("unit_of_measure", String(20)),
    Column("unit_cost", Quantity()),
    Column("position", BigInteger, nullable=False),
    _ts("created_at", nullable=False),
    UniqueConstraint("budget_id", "cost_code_id", "cost_type_id", "sub_job", name="uq_budget_line_items_key"),
    Index("ix_budget_line_items_budget_position_id", "budget_id", "position", "id"),
)

modifications = Table(
    "budget_modifications",
    metadata,
    _id(),
    _company(),
    Column("budget_id", String(40), ForeignKey("budgets.id"), nullable=False, index=True),
    Column("number", Integer, nullable=False),
    Column("from_line_item_id", String(40), ForeignKey("budget_line_items.id")),
    Column("to_line_item_id", String(40), ForeignKey("budget_line_items.id")),
    Column("amount", Money(), nullable=False),
    Column("notes", Text),
    _ts("created_at", nullable=False),
    _user("created_by_id", nullable=False),
    UniqueConstraint("budget_id", "number", name="uq_budget_modifications_number"),
    CheckConstraint("amount > 0", name="amount_positive"),
)

erp_requests = Table(
    "erp_requests",
    metadata,
    _id(),
    _company(),
    Column("budget_id", String(40), ForeignKey("budgets.id"), nullable=False, index=True),
    Column("project_id", String(40), ForeignKey("projects.id"), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("status", String(24), nullable=False, index=True),
    _ts("sent_at", nullable=False),
    _user("sent_by_id", nullable=False),
    _ts("decided_at"),
    _user("decided_by_id"),
    Column("rejection_reason", Text),
    _ts("retrieved_at"),
    _user("retrieved_by_id"),
    _ts("exported_at"),
    _ts("posted_at"),
    Column("erp_reference", String(200)),
    Column("failure_message", Text),
    Column("export_attempts", Integer, nullable=False, server_default="0"),
    # The id every ERP target de-duplicates on, so a retried export never writes an entry twice.
    Column("export_id", String(60), nullable=False, unique=True),
    # Sum of the request's lines' original budget, written with the request (its lines never change), so
    # the queue can be ordered and keyset-paged by it.
    Column("total_original_budget", Money(), nullable=False, server_default="0"),
    UniqueConstraint("budget_id", "sequence", name="uq_erp_requests_budget_sequence"),
    # Keyset pages of the queue in each order it offers (read backwards for descending).
    Index("ix_erp_requests_company_sent", "company_id", "sent_at", "id"),
    Index("ix_erp_requests_company_decided", "company_id", "decided_at", "id"),
    Index("ix_erp_requests_company_total", "company_id", "total_original_budget", "id"),
)

request_lines = Table(
    "erp_request_lines",
    metadata,
    Column("request_id", String(40), ForeignKey("erp_requests.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("line_item_id", String(40), ForeignKey("budget_line_items.id"), nullable=False),
    Column("cost_code", String(40), nullable=False),
    Column("cost_type", String(20), nullable=False),
    Column("sub_job", String(60)),
    Column("description", String(500)),
    Column("original_budget", Money(), nullable=False),
    Column("budget_changes", Money(), nullable=False),
    Column("revised_estimate", Money(), nullable=False),
    Column("is_new_line", Boolean, nullable=False),
)

export_entries = Table(
    "export_entries",
    metadata,
    _id(),
    Column("request_id", String(40), ForeignKey("erp_requests.id"), nullable=False, index=True),
    Column("budget_id", String(40), ForeignKey("budgets.id"), nullable=False, index=True),
    Column("line_item_id", String(40), ForeignKey("budget_line_items.id"), nullable=False, index=True),
    Column("kind", String(24), nullable=False),
    Column("source_id", String(40), nullable=False),
    Column("amount", Money(), nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    _company(),
    Column("sequence", BigInteger, nullable=False),
    _ts("occurred_at", nullable=False),
    Column("type", String(60), nullable=False),
    _user("actor_id"),
    Column("project_id", String(40), ForeignKey("projects.id"), nullable=False),
    Column("budget_id", String(40), ForeignKey("budgets.id"), nullable=False),
    Column("erp_request_id", String(40), ForeignKey("erp_requests.id")),
    Column("previous_status", String(24)),
    Column("status", String(24), nullable=False),
    Column("reason", Text),
    Column("data", JSON, nullable=False, default=dict),
    UniqueConstraint("company_id", "sequence", name="uq_events_company_sequence"),
    Index("ix_events_budget_sequence", "budget_id", "sequence"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", String(40), ForeignKey("users.id"), primary_key=True),
    Column("operation", String(60), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("input_hash", String(64), nullable=False),
    Column("result", JSON, nullable=False),
    _ts("created_at", nullable=False),
)

# The durable export queue: ACCEPT and retryExport insert a job in the decision's own transaction; workers
# claim jobs with a lease, so a job whose worker died is claimed again once the lease ran out.
export_jobs = Table(
    "export_jobs",
    metadata,
    _id(),
    _company(),
    Column("request_id", String(40), ForeignKey("erp_requests.id"), nullable=False, index=True),
    Column("status", String(20), nullable=False),  # QUEUED RUNNING AWAITING_CALLBACK DONE FAILED
    Column("attempts", Integer, nullable=False, server_default="0"),
    _ts("next_attempt_at", nullable=False),
    _ts("lease_until"),
    Column("last_error", Text),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
    Index("ix_export_jobs_due", "status", "next_attempt_at"),
)

# --- notifications (emails and chat messages about the workflow) -----------------------------------------

# The durable notification outbox: each row is written in the transaction of the event that causes it (or of
# the reminder / digest schedule) and delivered by the worker: PENDING -> SENDING (leased; `handed_over_at`
# is set just before the message is handed to the SMTP server or webhook) -> SENT, or back to PENDING with
# backoff, FAILED with the reason, NOT_SENT_* when there is nowhere to send it, UNCONFIRMED when a worker
# died after handing it over (never sent again). `dedupe_key` makes each cause notify each recipient once.
notification_outbox = Table(
    "notification_outbox",
    metadata,
    _id(),
    _company(),
    Column("kind", String(30), nullable=False),
    Column("channel", String(10), nullable=False),  # EMAIL CHAT
    _user("recipient_id"),
    Column("address", String(320)),  # the recipient's email address when it was decided (EMAIL)
    Column("erp_request_id", String(40), ForeignKey("erp_requests.id")),
    Column("dedupe_key", String(200), nullable=False, unique=True),
    Column("payload", JSON, nullable=False),
    Column("status", String(24), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    _ts("next_attempt_at", nullable=False),
    _ts("lease_until"),
    _ts("handed_over_at"),
    Column("message_id", String(250)),
    _ts("sent_at"),
    Column("last_error", Text),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
    Index("ix_notification_outbox_due", "status", "next_attempt_at"),
)

# Kinds a user turned off (absent: on).
notification_preferences = Table(
    "notification_preferences",
    metadata,
    Column("user_id", String(40), ForeignKey("users.id"), primary_key=True),
    Column("kind", String(30), primary_key=True),
    Column("enabled", Boolean, nullable=False),
)

# A company's chat channel: an incoming-webhook URL (Slack, Teams) that hears the workflow's notifications.
chat_webhooks = Table(
    "chat_webhooks",
    metadata,
    Column("company_id", String(40), ForeignKey("companies.id"), primary_key=True),
    Column("url", Text, nullable=False),
    # Saved with --allow-private-network: delivery does not re-check the address.
    Column("allow_private_network", Boolean, nullable=False, server_default="0"),
    _ts("updated_at", nullable=False),
)

# The embedded ERP: a ledger kept in the same database, shaped like an ERP's Job Cost module.
erp_jobs = Table(
    "erp_jobs",
    metadata,
    _id(),
    _company(),
    Column("project_id", String(40), ForeignKey("projects.id"), nullable=False, unique=True),
    Column("job_number", String(60), nullable=False),
    Column("name", String(200), nullable=False),
)

erp_job_cost_codes = Table(
    "erp_job_cost_codes",
    metadata,
    Column("job_id", String(40), ForeignKey("erp_jobs.id"), primary_key=True),
    Column("cost_code", String(40), primary_key=True),
    Column("cost_type", String(20), primary_key=True),
)

erp_job_cost_entries = Table(
    "erp_job_cost_entries",
    metadata,
    _id(),
    Column("job_id", String(40), ForeignKey("erp_jobs.id"), nullable=False, index=True),
    Column("batch", String(60), nullable=False, index=True),
    # Our export entry id: the ledger refuses a second copy of the same entry.
    Column("source_entry_id", String(40), nullable=False, unique=True),
    Column("cost_code", String(40), nullable=False),
    Column("cost_type", String(20), nullable=False),
    Column("sub_job", String(60)),
    Column("kind", String(24), nullable=False),
    Column("amount", Money(), nullable=False),
    Column("posted", Boolean, nullable=False, server_default="0"),
    _ts("posted_at"),
)
