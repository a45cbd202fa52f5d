-- Uploaded plugin modules. In a cluster the bytes live here so every node loads exactly the same module;
-- at most one version per name is active, and the one it replaced is marked `previous` so a rollback
-- needs no re-upload. Partial unique indexes make "one active, one previous" a database rule, not a
-- convention.

create table plugin_artifacts (
    id bigint generated always as identity primary key,
    name text not null,
    version text not null,
    sha256 text not null,
    bytes bytea not null,
    active boolean not null default false,
    previous boolean not null default false,
    uploaded_ms bigint not null,
    unique (name, version),
    check (not (active and previous))
);
-- Hot query: the active set at start-up (and "the active one of this name").
create unique index plugin_artifacts_one_active on plugin_artifacts (name) where active;
create unique index plugin_artifacts_one_previous on plugin_artifacts (name) where previous;
