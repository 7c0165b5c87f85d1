-- One row per confirmed purchase. The api mints `id` before the job exists,
-- so a job delivered twice inserts once (ON CONFLICT DO NOTHING), and the
-- unique (sale_id, user_id) is the database's own guard of one-per-user.
CREATE TABLE orders (
    id           uuid        PRIMARY KEY,
    sale_id      text        NOT NULL,
    user_id      text        NOT NULL,
    status       text        NOT NULL DEFAULT 'confirmed' CHECK (status IN ('confirmed')),
    created_at   timestamptz NOT NULL,              -- the purchase time, from Redis
    persisted_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orders_sale_user_unique UNIQUE (sale_id, user_id)
);
