// 排行 Leaderboards (with what each row is about) and who is online.
import { h, bi, fmt, QUALITY_ORDER } from '../ui.js';

const BOARDS = ['realm', 'spirit_stones', 'dungeon', 'duel', 'equipment', 'pets'];

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

async function loadOnline(ctx) {
  try {
    ctx.memo.online = await ctx.api.onlinePlayers();
    ctx.memo.onlineError = null;
  } catch (e) {
    ctx.memo.onlineError = e.message;
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
  if (board === 'spirit_stones') return `${fmt(score)} 灵石`;
  return null;
}

/** What an equipment or pet row is about: the plugin's description, or what the score encodes. */
function aboutText(ctx, board, r) {
  const d = r.detail;
  const quality = (rank) => ctx.g.text(QUALITY_ORDER[rank - 1] ?? '');
  if (board === 'equipment') {
    if (d) return h('span', { style: { color: d.colour } }, `${d.name}${d.enhance_level ? ` +${d.enhance_level}` : ''}`,
      h('small.muted', ` ${d.quality_name} ${d.quality_name_en ?? ''} · ${d.slot_name ?? ''}`));
    const rank = Math.floor(r.score / 1000);
    return rank ? `${quality(rank)} +${fmt(r.score % 1000)}` : '—';
  }
  if (board === 'pets') {
    if (d) return h('span', { style: { color: d.colour } }, d.name,
      h('small.muted', ` ${d.quality_name} ${d.quality_name_en ?? ''} · ${'★'.repeat(Math.min(d.star, 10)) || '☆'} · Lv ${d.level}`));
    const rank = Math.floor(r.score / 1e6);
    return rank ? `${quality(rank)} ★${Math.floor(r.score / 1e3) % 1000} Lv ${r.score % 1000}` : '—';
  }
  return scoreText(ctx, board, r.score) ?? fmt(r.score);
}

function since(ms) {
  const mins = Math.max(0, Math.round((Date.now() - ms) / 60000));
  const at = new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return `${at} (${mins < 1 ? '刚刚 just now' : `${mins} min`})`;
}

export default {
  id: 'ranks',
  title: ['排行', 'Rankings'],
  enter(ctx) {
    load(ctx, ctx.memo.board ?? 'realm');
    loadOnline(ctx);
  },
  render(ctx, root) {
    const board = ctx.memo.board ?? 'realm';
    const data = ctx.memo.boardData;
    const me = ctx.state.player.player.id;
    const online = ctx.memo.online;
    const unnamed = ctx.state.player.player.name === '无名修士';
    root.replaceChildren(h('div.card',
      h('h2', bi('排行榜', 'Leaderboards')),
      h('div.tabs', BOARDS.map((b) => h('button.small', { class: b === board ? 'active' : 'ghost', 'data-testid': `board-${b}`,
        onclick: () => load(ctx, b) }, ctx.g.label(b)))),
      unnamed ? h('p.small.muted', { 'data-testid': 'unnamed-hint' }, '无名修士不上榜 — choose a display name on the 角色 Character screen to appear here.') : null,
      ctx.memo.boardError ? h('p.error', ctx.memo.boardError) : null,
      data?.board === board ? (data.entries.length
        ? h('table.ranks', { 'data-testid': 'board' }, h('thead', h('tr', h('th', '#'), h('th', '道号 Name'),
          h('th', ['equipment', 'pets'].includes(board) ? '所凭 What' : '成就 Score'))),
          h('tbody', data.entries.map((r) => h('tr', { class: r.player_id === me ? 'me' : '' },
            h('td', r.rank), h('td', r.name), h('td', aboutText(ctx, board, r))))))
        : h('p.muted', 'Nobody on this board yet.')) : h('p.muted', 'Loading…')),
    h('div.card',
      h('div.row.space', h('h3', bi('在线道友', `Online (${online ? fmt(online.count) : '…'})`)),
        h('button.ghost.small', { 'data-testid': 'online-refresh', onclick: () => loadOnline(ctx) }, bi('刷新', 'Refresh'))),
      ctx.memo.onlineError ? h('p.error', ctx.memo.onlineError) : null,
      online ? (online.players.length
        ? h('ul.plain', { 'data-testid': 'online-list' }, online.players.map((p) => h('li', { class: p.player_id === me ? 'me' : '' },
          h('b', p.name), h('span.muted', ` · 上线 since ${since(p.since_ms)}`))))
        : h('p.muted', 'Nobody is online right now.')) : h('p.muted', 'Loading…')));
  },
};
