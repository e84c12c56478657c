"""PostgreSQL: reserve a key's budget in one server-side call.

The reservation locks the key's row, sums its live reservations and inserts its own. Done as separate
statements from Python, the row lock stayed held across several round trips, and each of those waits
for the worker's next turn to run (the GIL, a busy greenlet hub): eight requests on one key queued for
tens of milliseconds. Inside this function the lock lives for microseconds. SQLite has no functions and
needs none: its write transactions already run one at a time.

Revision ID: 0003_budget_reserve_function
Revises: 0002_jobs
Create Date: 2026-12-01
"""
from alembic import op

revision = "0003_budget_reserve_function"
down_revision = "0002_jobs"
branch_labels = None
depends_on = None

RESERVE = """
CREATE OR REPLACE FUNCTION gateway_reserve_budget(
    p_key varchar, p_reservation varchar, p_amount numeric, p_now timestamp, p_expires timestamp)
RETURNS TABLE (reserved boolean, budget numeric, spent numeric, held numeric)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    k_budget numeric;
    k_spent numeric;
    k_held numeric;
BEGIN
    SELECT k.budget_usd, k.spent_usd INTO k_budget, k_spent FROM api_keys k WHERE k.id = p_key FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, NULL::numeric, NULL::numeric, NULL::numeric;
        RETURN;
    END IF;
    -- a new snapshot for this statement: it sees every reservation committed before the lock was ours
    SELECT coalesce(sum(r.amount_usd), 0) INTO k_held FROM budget_reservations r
        WHERE r.key_id = p_key AND r.expires_at > p_now;
    -- a spent budget refuses even a free request (app/quotas/budget.py's _fits is the same rule)
    IF k_budget IS NOT NULL AND (k_spent >= k_budget OR k_spent + k_held + p_amount > k_budget) THEN
        RETURN QUERY SELECT false, k_budget, k_spent, k_held;
        RETURN;
    END IF;
    INSERT INTO budget_reservations (id, key_id, amount_usd, created_at, expires_at)
        VALUES (p_reservation, p_key, p_amount, p_now, p_expires);
    RETURN QUERY SELECT true, k_budget, k_spent, k_held;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(RESERVE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS gateway_reserve_budget(varchar, varchar, numeric, timestamp, timestamp)")
