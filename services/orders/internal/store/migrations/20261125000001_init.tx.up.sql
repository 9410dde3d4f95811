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

--bun:split

CREATE TABLE outbox (
    id           UUID PRIMARY KEY,
    stream       TEXT NOT NULL,
    type         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    traceparent  TEXT NOT NULL DEFAULT '',
    tracestate   TEXT NOT NULL DEFAULT '',
    occurred_at  TIMESTAMPTZ NOT NULL,
    published_at TIMESTAMPTZ
);

--bun:split

CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

--bun:split

CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;

--bun:split

CREATE TABLE inbox (
    message_id   UUID PRIMARY KEY,
    type         TEXT NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL
);

--bun:split

CREATE INDEX inbox_processed_at ON inbox (processed_at);
