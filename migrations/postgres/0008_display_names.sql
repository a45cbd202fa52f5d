-- Display names. `players.name` is the name other players see (leaderboards, events, the online list);
-- it is never the login name. Every character starts as 无名修士 ("nameless cultivator") and picks a
-- name with the rename route. Characters made before this migration carried their login name here, so
-- they start over as 无名修士 too.
--
-- The partial unique index is what decides who gets a name: two players asking for the same one at once
-- cannot both commit. The default name is exempt, since everyone starts with it.
update players set name = '无名修士';
alter table players add column name_changes bigint not null default 0 check (name_changes >= 0);
create unique index players_display_name on players (name) where name <> '无名修士';
