-- One SQL for PostgreSQL and SQLite: ids are UUIDs made by the service, and
-- every type name here means the right thing to both.
CREATE TABLE orders (
    id            UUID PRIMARY KEY,
    user_id       BIGINT NOT NULL CHECK (user_id > 0),
    amount        BIGINT NOT NULL CHECK (amount > 0),
    description   TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('NEW', 'FINISHED', 'CANCELLED')),
    cancel_reason TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

--bun:split

-- GET /orders?user_id=N, newest first.
CREATE INDEX orders_user_id_created_at ON orders (user_id, created_at DESC, id DESC);
