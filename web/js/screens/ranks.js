// 排行 Leaderboards.
import { h, bi, fmt } from '../ui.js';

const BOARDS = ['realm', 'dungeon', 'duel', 'equipment', 'pets'];

async function load(ctx, board) {
  ctx.memo.board = board;
  try {
    ctx.memo.boardData = await ctx.api.board(board, 20);
    ctx.memo.boardError = null;
  } catch (e) {
    ctx.memo.boardError = e.message;
  }
  ctx.rerender();
}

function scoreText(ctx, board, score) {
  if (board === 'realm') {
    const [cn, en] = ctx.g.realm(score);
    return `${cn} · ${en}`;
  }
  if (board === 'dungeon') return `第${fmt(score)}层 Floor ${fmt(score)}`;
  if (board === 'duel') return `${fmt(score)} 胜 wins`;
  return fmt(score);
}

export default {
  id: 'ranks',
  title: ['排行', 'Rankings'],
  enter(ctx) {
    load(ctx, ctx.memo.board ?? 'realm');
  },
  render(ctx, root) {
    const board = ctx.memo.board ?? 'realm';
    const data = ctx.memo.boardData;
    const me = ctx.state.player.player.id;
    root.replaceChildren(h('div.card',
      h('h2', bi('排行榜', 'Leaderboards')),
      h('div.tabs', BOARDS.map((b) => h('button.small', { class: b === board ? 'active' : 'ghost', 'data-testid': `board-${b}`,
        onclick: () => load(ctx, b) }, ctx.g.label(b)))),
      ctx.memo.boardError ? h('p.error', ctx.memo.boardError) : null,
      data?.board === board ? (data.entries.length
        ? h('table.ranks', { 'data-testid': 'board' }, h('thead', h('tr', h('th', '#'), h('th', '道号 Name'), h('th', '成就 Score'))),
          h('tbody', data.entries.map((r) => h('tr', { class: r.player_id === me ? 'me' : '' },
            h('td', r.rank), h('td', r.name), h('td', scoreText(ctx, board, r.score))))))
        : h('p.muted', 'Nobody on this board yet.')) : h('p.muted', 'Loading…')));
  },
};
