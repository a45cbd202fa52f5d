-- Accounts are logins; players are the characters played with them. They are separate tables so that
-- authentication never touches game state and an account could later own several characters.
--
-- Conventions for every migration (PostgreSQL and SQLite move in lock-step, same version numbers,
-- checked by host/tests/store.rs):
-- * times are milliseconds since the Unix epoch in a bigint, the unit plugins see in `Call::now_ms`, so
--   both backends store the same numbers;
-- * plugin documents are JSON (jsonb here, text in SQLite), converted from MessagePack only by
--   host/src/json.rs;
-- * quantities that must never go negative say so in a CHECK, the last line of defence behind the
--   host's own validation;
-- * an applied migration is never edited: add a new one.

create table accounts (
    id bigint generated always as identity primary key,
    -- unique: the login name; the constraint (not a read-then-insert) decides races between sign-ups
    username text not null unique,
    password_hash text not null,
    role text not null default 'player' check (role in ('player', 'admin')),
    created_ms bigint not null
);

create table players (
    id bigint generated always as identity primary key,
    -- unique: one character per account, and the index for "the player of this account"
    account_id bigint not null unique references accounts (id) on delete cascade,
    name text not null,
    -- Optimistic concurrency: every applied action runs
    -- `update players set version = version + 1 where id = $1 and version = $2` first in its
    -- transaction, so two actions computed from the same state can never both commit.
    version bigint not null default 0 check (version >= 0),
    created_ms bigint not null
);
