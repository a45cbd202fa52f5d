// 斗法 Duels: opponents near the player's realm (paged), a duel played back round by round, records.
import { h, bi, fmt, pct } from '../ui.js';
import { playBattle } from './dungeon.js';

const PAGE = 8;

async function loadStatus(ctx) {
  const [status, records] = await Promise.all([
    ctx.act('duel', 'status', {}, { quiet: true, refresh: false }),
    ctx.act('duel', 'records', {}, { quiet: true, refresh: false }),
  ]);
  if (status) ctx.memo.duelStatus = status;
  if (records) ctx.memo.duelRecords = records;
  ctx.rerender();
}

async function loadOpponents(ctx, offset) {
  ctx.memo.duelOffset = Math.max(0, offset);
  try {
    ctx.memo.duelOpponents = await ctx.api.around('realm', PAGE, ctx.memo.duelOffset);
    ctx.memo.duelError = null;
  } catch (e) {
    ctx.memo.duelError = e.message;
  }
  ctx.rerender();
}

function realmText(ctx, level) {
  const [cn, en] = ctx.g.realm(level);
  return en ? `${cn} · ${en}` : cn;
}

function loadout(side) {
  const gear = side.equipment.map((g) => `${g.name}${g.enhance_level ? ` +${g.enhance_level}` : ''}`);
  const bits = [];
  if (gear.length) bits.push(`装备 Gear: ${gear.join(' · ')}`);
  if (side.pet) bits.push(`灵宠 Pet: ${side.pet.name} Lv.${side.pet.level}`);
  return bits.length ? h('p.small.muted', bits.join(' — ')) : null;
}

function fighterLine(side) {
  const f = side.fighter;
  return h('p.small', h('b', side.name), ` ❤ ${fmt(f.health)} · ⚔ ${fmt(f.attack)} · 🛡 ${fmt(f.defense)} · 速 ${fmt(f.speed)}`
    + ` · crit ${pct(f.crit_rate)} · dodge ${pct(f.dodge_rate)}`);
}

async function challenge(ctx, opponent, button) {
  const r = await ctx.act('duel', 'challenge', { opponent: opponent.player_id },
    { button, label: `斗法 Dueling ${opponent.name}` });
  if (!r) return;
  ctx.memo.duelLast = r;
  const summary = r.won
    ? `+${fmt(r.spirit_stones)} spirit stones, +${fmt(r.cultivation)} 修为${r.multiplier !== 1 ? ` (×${r.multiplier})` : ''}.`
    : `−${fmt(r.spirit_spent)} spirit.`;
  await loadStatus(ctx);
  await playBattle(ctx, ctx.memo.duelBattleEl, r.battle, { player: r.me.name, enemy: r.opponent.name }, summary);
}

export default {
  id: 'duel',
  title: ['斗法', 'Duels'],
  enter(ctx) {
    ctx.memo.duelBattleEl ??= h('div.card.battle', { 'data-testid': 'duel-battle' });
    loadStatus(ctx);
    loadOpponents(ctx, ctx.memo.duelOffset ?? 0);
  },
  render(ctx, root) {
    const st = ctx.memo.duelStatus;
    if (!st) {
      root.replaceChildren(h('div.card', h('p.muted', '斗法台… Entering the arena…')));
      return;
    }
    const left = st.daily_cap - st.used_today;
    const head = h('div.card', { 'data-testid': 'duel-status' },
      h('h2', bi('道友斗法', 'Duel a fellow cultivator')),
      h('p', `今日剩余 Duels left today: ${left} / ${st.daily_cap} · 每场 Each duel: ${fmt(st.spirit_cost)} spirit`),
      st.eligible ? null : h('p.error', { 'data-testid': 'duel-locked' },
        `需达到${realmText(ctx, st.min_level)}方可斗法 — duels open at realm level ${st.min_level}.`),
      h('p.small.muted', '胜者得灵石与修为，败者仅耗灵力。 A win pays spirit stones and 修为 (sometimes ×1.5 to ×3); a loss costs only the spirit.'));

    const data = ctx.memo.duelOpponents;
    const offset = ctx.memo.duelOffset ?? 0;
    let list;
    if (ctx.memo.duelError) list = h('p.error', ctx.memo.duelError);
    else if (!data) list = h('p.muted', 'Loading…');
    else if (!data.entries.length) list = h('p.muted', offset ? 'No more opponents.' : 'No named cultivators near your realm yet.');
    else {
      list = h('table.ranks', { 'data-testid': 'opponents' },
        h('thead', h('tr', h('th', '#'), h('th', '道号 Name'), h('th', '境界 Realm'), h('th', ''))),
        h('tbody', data.entries.map((o) => {
          const btn = h('button.small', { 'data-testid': 'challenge', disabled: !st.eligible || left <= 0,
            onclick: () => challenge(ctx, o, btn) }, bi('挑战', 'Challenge'));
          return h('tr', h('td', o.rank), h('td', o.name), h('td', realmText(ctx, o.score)), h('td', btn));
        })));
    }
    const prev = h('button.ghost.small', { 'data-testid': 'opponents-prev', disabled: offset === 0,
      onclick: () => loadOpponents(ctx, offset - PAGE) }, bi('上一页', 'Previous'));
    const next = h('button.ghost.small', { 'data-testid': 'opponents-next', disabled: !data || data.entries.length < PAGE,
      onclick: () => loadOpponents(ctx, offset + PAGE) }, bi('下一页', 'Next'));
    const opponents = h('div.card',
      h('h3', bi('对手', 'Opponents near your realm')),
      list,
      h('div.row', prev, h('span.small.muted', `${offset + 1}–${offset + (data?.entries.length ?? 0)}`), next));

    const last = ctx.memo.duelLast;
    const lastCard = last ? h('div.card', { 'data-testid': 'duel-sides' },
      h('h3', bi('上一场', 'Last duel')), fighterLine(last.me), loadout(last.me), fighterLine(last.opponent), loadout(last.opponent)) : null;

    const rec = ctx.memo.duelRecords;
    const stats = rec?.stats ?? st.stats;
    const records = h('div.card', { 'data-testid': 'duel-records' },
      h('h3', bi('斗法记录', 'Records')),
      h('p', `${stats.wins} 胜 wins · ${stats.losses} 负 losses · 胜率 win rate ${pct(stats.win_rate)}`
        + ` · 连胜 streak ${stats.current_streak} (best ${stats.best_streak})`),
      rec?.records?.length ? h('ul.small', rec.records.map((r) => h('li', { class: r.won ? 'good' : 'bad' },
        `${r.won ? '胜 Won' : '负 Lost'} vs ${r.opponent_name} in ${r.rounds} rounds`
        + (r.won ? ` · +${fmt(r.spirit_stones)} stones, +${fmt(r.cultivation)} 修为` : ''))))
        : h('p.small.muted', 'No duels yet.'));

    root.replaceChildren(head, opponents, ctx.memo.duelBattleEl, lastCard ?? '', records);
  },
};
