-- Reconciliation: each order remembers how often its payment was requested,
-- when last, and when to request it again while it stays NEW. One SQL for
-- PostgreSQL and SQLite, which adds one column per statement and needs a
-- constant default for a NOT NULL column; every existing row is then set.
ALTER TABLE orders ADD COLUMN payment_requests INTEGER NOT NULL DEFAULT 1;

--bun:split

ALTER TABLE orders ADD COLUMN payment_requested_at TIMESTAMPTZ NOT NULL DEFAULT '1970-01-01 00:00:00+00:00';

--bun:split

ALTER TABLE orders ADD COLUMN payment_retry_at TIMESTAMPTZ NOT NULL DEFAULT '1970-01-01 00:00:00+00:00';

--bun:split

-- An order NEW already was requested when it was created; it is due now.
UPDATE orders SET payment_requested_at = created_at, payment_retry_at = created_at;

--bun:split

-- The reconciler's look-up: NEW orders by the time they are due.
CREATE INDEX orders_new_payment_retry_at ON orders (payment_retry_at) WHERE status = 'NEW';

--bun:split

-- The W3C traceparent of the order's first payment request: the requests
-- sent again continue the order's trace. Empty for orders from before.
ALTER TABLE orders ADD COLUMN payment_traceparent TEXT NOT NULL DEFAULT '';
