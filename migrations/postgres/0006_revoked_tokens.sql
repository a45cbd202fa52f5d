-- Logout revokes the token it was called with. Tokens are stateless JWTs (HS256) that every host can
-- check without a database round trip for the signature, so revoking one needs a shared denylist:
-- one row per revoked token id (`jti`) until the token would have expired anyway. The table stays
-- small because expired rows are useless and are purged as new revocations come in.
--
-- Why not a per-account "token generation" counter instead: it would log out every device of the
-- account at once, and a player who logs out on one browser should stay logged in on another.

create table revoked_tokens (
    -- primary key: the lookup on every authenticated request is by token id
    jti text primary key,
    account_id bigint not null references accounts (id) on delete cascade,
    -- the token's own expiry, ms since the epoch: after it the row can go
    expires_ms bigint not null
);
-- The purge deletes by expiry.
create index revoked_tokens_expiry on revoked_tokens (expires_ms);
-- Deleting an account cascades here.
create index revoked_tokens_account on revoked_tokens (account_id);
