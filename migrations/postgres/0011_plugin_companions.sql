-- Companion versions of a plugin, beside its active one: a `canary` serves a share of the players,
-- a `shadow` re-runs a share of the live calls for comparison and serves nobody. The share is in
-- basis points (1/100 of a percent). Which players a canary serves is a hash of the plugin name and
-- the player id that every host computes alike, so only the version and the share are stored.

create table plugin_companions (
    name text not null,
    kind text not null check (kind in ('canary', 'shadow')),
    version text not null,
    sha256 text not null,
    share_bp bigint not null check (share_bp between 0 and 10000),
    updated_ms bigint not null,
    primary key (name, kind)
);
