-- The generic state plugins change through effects. One real table per kind of state (not one
-- document per player) so that an action loads only the sections it declared, concurrent actions touch
-- only the rows they change, and CHECK constraints guard every quantity. Every table is keyed by
-- player first: its primary key is the index that serves "load this player's section".

create table currencies (
    player_id integer not null references players (id) on delete cascade,
    name text not null,
    amount integer not null check (amount >= 0),
    primary key (player_id, name)
) strict;

-- Same shape as currencies, kept apart because they mean different things to players and plugins
-- (spendable balances versus progress tallies) and the wire type keeps them apart too.
create table counters (
    player_id integer not null references players (id) on delete cascade,
    name text not null,
    amount integer not null check (amount >= 0),
    primary key (player_id, name)
) strict;

-- Item stacks. A stack that reaches zero is deleted by the store, so the table holds what players own.
create table items (
    player_id integer not null references players (id) on delete cascade,
    item text not null,
    qty integer not null check (qty >= 0),
    primary key (player_id, item)
) strict;

create table stats (
    player_id integer not null references players (id) on delete cascade,
    name text not null,
    value real not null,
    primary key (player_id, name)
) strict;

-- Entities (equipment, pets, ...): ids are chosen by plugins and unique across all players, so an
-- entity can be named in params and the owner is always checked against the row, never the request.
create table entities (
    id text primary key,
    player_id integer not null references players (id) on delete cascade,
    kind text not null,
    data text not null check (json_valid(data)),
    created_ms integer not null,
    updated_ms integer not null
) strict;
-- Hot query: a player's entities of the kinds an action declared, in id order (stable for replay).
create index entities_player_kind on entities (player_id, kind, id);

-- Buffs expire by time; loads filter on `expires_ms > now`, which the primary key's player prefix serves
-- (a player has a handful of buffs).
create table buffs (
    player_id integer not null references players (id) on delete cascade,
    id text not null,
    modifiers text not null check (json_valid(modifiers)),
    expires_ms integer not null,
    primary key (player_id, id)
) strict;

-- Each plugin's private state per player; a call sees only its own plugin's row.
create table plugin_state (
    player_id integer not null references players (id) on delete cascade,
    plugin text not null,
    data text not null check (json_valid(data)),
    primary key (player_id, plugin)
) strict;
