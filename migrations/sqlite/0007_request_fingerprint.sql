-- What identifies a logged request that carried an Idempotency-Key (sha256 over plugin, action and
-- canonical params), so a key reused for a different request is refused instead of answered with
-- another action's reply. NULL for actions without a key.
alter table action_log add column request_fingerprint text;
