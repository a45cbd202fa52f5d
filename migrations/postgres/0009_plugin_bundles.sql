-- Plugin versions are bundles: the module and its content tables, identified by one digest over
-- both. `sha256` now holds that digest (the hex sha256 of the canonical bundle encoding in `bytes`),
-- and a version is identified by it, not by the manifest's semver: a content-only change is a new
-- version under the same semver. `wasm_sha256` is the module's own digest.
--
-- Rows stored before bundles hold the module alone (`bundle` false, `sha256` the module's digest);
-- they load with the host's content tables from PLUGINS_DIR, as they always did.

alter table plugin_artifacts drop constraint plugin_artifacts_name_version_key;
alter table plugin_artifacts add column wasm_sha256 text;
update plugin_artifacts set wasm_sha256 = sha256;
alter table plugin_artifacts alter column wasm_sha256 set not null;
alter table plugin_artifacts add column bundle boolean not null default false;
alter table plugin_artifacts add constraint plugin_artifacts_name_sha256 unique (name, sha256);
-- Listing a plugin's versions newest first, and pruning the oldest.
create index plugin_artifacts_name_id on plugin_artifacts (name, id);
