-- The SQLite twin of migrations/postgres/0011: companion versions of a plugin beside its active one
-- (`canary`: serves a share of the players; `shadow`: re-runs a share of the live calls), with their
-- share in basis points.

create table plugin_companions (
    name text not null,
    kind text not null check (kind in ('canary', 'shadow')),
    version text not null,
    sha256 text not null,
    share_bp integer not null check (share_bp between 0 and 10000),
    updated_ms integer not null,
    primary key (name, kind)
) strict;
