-- Logout revokes the token it was called with: a denylist of token ids (`jti`) kept until the token
-- would have expired anyway. The SQLite twin of migrations/postgres/0006_revoked_tokens.sql, which
-- says why a per-token denylist rather than a per-account token generation.

create table revoked_tokens (
    -- primary key: the lookup on every authenticated request is by token id
    jti text primary key,
    account_id integer not null references accounts (id) on delete cascade,
    -- the token's own expiry, ms since the epoch: after it the row can go
    expires_ms integer not null
) strict;
-- The purge deletes by expiry.
create index revoked_tokens_expiry on revoked_tokens (expires_ms);
-- Deleting an account cascades here.
create index revoked_tokens_account on revoked_tokens (account_id);
