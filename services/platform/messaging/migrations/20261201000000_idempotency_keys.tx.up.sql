-- The answers to requests that carried an Idempotency-Key, each recorded in
-- the transaction of the request's effect (idempotency.Row), so that a
-- retry is answered again rather than applied again. A key belongs to a
-- user and an operation: the same key from another user, or for another
-- operation, is another key.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    user_id         BIGINT NOT NULL,
    operation       TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    -- sha256 (hex) of the validated request, to refuse a key reused for
    -- another request.
    fingerprint     TEXT NOT NULL,
    status          INTEGER NOT NULL,
    body            TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, operation, idempotency_key)
);

--bun:split

-- What the janitor walks to delete expired keys.
CREATE INDEX IF NOT EXISTS idempotency_keys_created_at ON idempotency_keys (created_at);
