-- Leaderboards set through the SetScore effect. The database is the durable copy (Redis may serve a
-- faster one), so a board survives a cache flush and can be rebuilt from here.

create table scores (
    board text not null,
    player_id integer not null references players (id) on delete cascade,
    score real not null,
    primary key (board, player_id)
) strict;
-- Hot query: the top N of a board.
create index scores_board_rank on scores (board, score desc, player_id);
-- Deleting a player cascades here; without this the cascade would scan every board.
create index scores_player on scores (player_id);
