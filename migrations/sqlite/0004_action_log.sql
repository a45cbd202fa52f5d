-- Every applied action, written in the same transaction as its effects. It carries everything needed
-- to re-run the action bit for bit (plugin sha256, params, seed, time) for replay against a candidate
-- version, plus the reply and the version it produced so a retried request with the same
-- Idempotency-Key gets the same answer without running twice.

create table action_log (
    id integer primary key,
    player_id integer not null references players (id) on delete cascade,
    plugin text not null,
    plugin_version text not null,
    plugin_sha256 text not null,
    action text not null,
    params text not null check (json_valid(params)),
    -- The call's u64 seed, stored bit for bit as a signed integer (two's complement).
    seed integer not null,
    now_ms integer not null,
    outcome_digest text not null,
    reply text not null check (json_valid(reply)),
    idempotency_key text,
    -- The player's version after this action.
    version integer not null,
    created_ms integer not null,
    -- Hot query: the idempotency lookup. NULL keys are distinct, so actions without a key never clash.
    -- Its player_id prefix also serves the foreign key's cascade.
    unique (player_id, idempotency_key)
) strict;
-- Hot query: replay reads one plugin's history in id order, a page at a time.
create index action_log_plugin_id on action_log (plugin, id);
