-- Every applied action, written in the same transaction as its effects. It carries everything needed
-- to re-run the action bit for bit (plugin sha256, params, seed, time) for replay against a candidate
-- version, plus the reply and the version it produced so a retried request with the same
-- Idempotency-Key gets the same answer without running twice.

create table action_log (
    id bigint generated always as identity primary key,
    player_id bigint not null references players (id) on delete cascade,
    plugin text not null,
    plugin_version text not null,
    plugin_sha256 text not null,
    action text not null,
    params jsonb not null,
    -- The call's u64 seed, stored bit for bit as a signed bigint (two's complement).
    seed bigint not null,
    now_ms bigint not null,
    outcome_digest text not null,
    reply jsonb not null,
    idempotency_key text,
    -- The player's version after this action.
    version bigint not null,
    created_ms bigint not null,
    -- Hot query: the idempotency lookup. NULL keys are distinct, so actions without a key never clash.
    -- Its player_id prefix also serves the foreign key's cascade.
    unique (player_id, idempotency_key)
);
-- Hot query: replay reads one plugin's history in id order, a page at a time.
create index action_log_plugin_id on action_log (plugin, id);
