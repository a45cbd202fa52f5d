-- Plugin versions are bundles: the module and its content tables, identified by one digest over
-- both. `sha256` now holds that digest (the hex sha256 of the canonical bundle encoding in `bytes`),
-- and a version is identified by it, not by the manifest's semver: a content-only change is a new
-- version under the same semver. `wasm_sha256` is the module's own digest.
--
-- Rows stored before bundles hold the module alone (`bundle` 0, `sha256` the module's digest); they
-- load with the host's content tables from PLUGINS_DIR, as they always did.
--
-- SQLite cannot drop a table constraint, so the table is rebuilt without `unique (name, version)`.

create table plugin_artifacts_bundles (
    id integer primary key,
    name text not null,
    version text not null,
    sha256 text not null,
    wasm_sha256 text not null,
    bytes blob not null,
    bundle integer not null default 0 check (bundle in (0, 1)),
    active integer not null default 0 check (active in (0, 1)),
    previous integer not null default 0 check (previous in (0, 1)),
    uploaded_ms integer not null,
    unique (name, sha256),
    check (not (active and previous))
) strict;
insert into plugin_artifacts_bundles
    (id, name, version, sha256, wasm_sha256, bytes, bundle, active, previous, uploaded_ms)
select id, name, version, sha256, sha256, bytes, 0, active, previous, uploaded_ms from plugin_artifacts;
drop table plugin_artifacts;
alter table plugin_artifacts_bundles rename to plugin_artifacts;
create unique index plugin_artifacts_one_active on plugin_artifacts (name) where active = 1;
create unique index plugin_artifacts_one_previous on plugin_artifacts (name) where previous = 1;
-- Listing a plugin's versions newest first, and pruning the oldest.
create index plugin_artifacts_name_id on plugin_artifacts (name, id);
