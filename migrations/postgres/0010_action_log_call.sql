-- The exact call each action ran with: the MessagePack `Call` the plugin received, compressed with
-- raw DEFLATE, so any logged action can be re-run bit for bit on its own (`cauldron replay`). NULL for
-- actions logged before this column, and once ACTION_LOG_CALL_RETENTION_DAYS has cleared it (the row
-- itself stays, for idempotency and audit). `plugin_sha256` holds the digest of the plugin bundle
-- (module and content tables) that ran the call.

alter table action_log add column call bytea;
-- The retention task finds the oldest rows that still carry a call.
create index action_log_call_age on action_log (created_ms) where call is not null;
