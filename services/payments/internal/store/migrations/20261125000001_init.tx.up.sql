-- One SQL for PostgreSQL and SQLite: ids are UUIDs made by the service, and
-- every type name here means the right thing to both.
CREATE TABLE accounts (
    user_id    BIGINT PRIMARY KEY,
    balance    BIGINT NOT NULL CHECK (balance >= 0),
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Every change of a balance: balance = sum(top_up) - sum(debit) per user.
CREATE TABLE ledger (
    id         UUID PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES accounts (user_id),
    kind       TEXT NOT NULL CHECK (kind IN ('top_up', 'debit')),
    amount     BIGINT NOT NULL CHECK (amount > 0),
    -- A debit names its order, and an order is debited at most once.
    order_id   UUID UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    CHECK ((kind = 'debit') = (order_id IS NOT NULL))
);

--bun:split

CREATE INDEX ledger_user_id ON ledger (user_id);

--bun:split

-- The outcome of each order's payment, paid or declined: once per order.
CREATE TABLE payments (
    order_id   UUID PRIMARY KEY,
    user_id    BIGINT NOT NULL,
    amount     BIGINT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('FINISHED', 'CANCELLED')),
    reason     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
