-- Accounts are logins; players are the characters played with them. They are separate tables so that
-- authentication never touches game state and an account could later own several characters.
--
-- The SQLite twin of migrations/postgres (same version numbers, checked by host/tests/store.rs). Read
-- the conventions there. SQLite specifics:
-- * tables are STRICT, so a value of the wrong type (an integer overflowing into a REAL, text in a
--   number column) is an error instead of being stored silently;
-- * `integer primary key` is the rowid, SQLite's identity column;
-- * JSON is text, booleans are integers 0/1;
-- * foreign keys are enforced because the store turns `foreign_keys` on for every connection.

create table accounts (
    id integer primary key,
    -- unique: the login name; the constraint (not a read-then-insert) decides races between sign-ups
    username text not null unique,
    password_hash text not null,
    role text not null default 'player' check (role in ('player', 'admin')),
    created_ms integer not null
) strict;

create table players (
    id integer primary key,
    -- unique: one character per account, and the index for "the player of this account"
    account_id integer not null unique references accounts (id) on delete cascade,
    name text not null,
    -- Optimistic concurrency: every applied action runs
    -- `update players set version = version + 1 where id = ?1 and version = ?2` first in its
    -- transaction, so two actions computed from the same state can never both commit.
    version integer not null default 0 check (version >= 0),
    created_ms integer not null
) strict;
