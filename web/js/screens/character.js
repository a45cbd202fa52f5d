// 角色 Character: realm, cultivation progress, spirit, currencies, effective stats with their sources, buffs.
import { h, bi, fmt, bar, statValue } from '../ui.js';

/** The name every character has until it chooses one. */
export const NAMELESS = '无名修士';

function renameCard(ctx) {
  const current = ctx.state.player.player.name;
  const input = h('input', { 'data-testid': 'rename-input', 'aria-label': 'new display name', maxlength: 6,
    placeholder: '1–6 字 characters', value: ctx.memo.renameDraft ?? '' });
  input.addEventListener('input', () => { ctx.memo.renameDraft = input.value; });
  const go = h('button.small', { type: 'submit', 'data-testid': 'rename-btn' }, bi('改名', 'Rename'));
  const form = h('form.row', { onsubmit: async (e) => {
    e.preventDefault();
    const name = input.value.trim();
    if (!name) return;
    go.disabled = true;
    try {
      const r = await ctx.api.rename(name);
      ctx.memo.renameDraft = '';
      ctx.memo.renameLog = r.cost ? `道号改为 ${r.name} (−${fmt(r.cost)} 灵石 stones).` : `道号改为 ${r.name} (free).`;
      await ctx.refresh();
    } catch (err) {
      ctx.memo.renameLog = err.message;
      ctx.rerender();
    } finally {
      go.disabled = false;
    }
  } }, input, go);
  return h('div.card', { 'data-testid': 'rename' },
    h('h3', bi('道号', 'Display name')),
    h('p', h('b', current), current === NAMELESS
      ? h('span.muted', ' — 尚未取名, 不上排行榜 Not on the leaderboards until you choose a name.') : null),
    form,
    h('p.small.muted', '1–6 字, 不可重名; 首次免费, 之后每次 100 灵石. 1–6 characters, unique; the first change is free, later ones cost 100 spirit stones. Others see this name, never your login.'),
    h('p.log', { 'data-testid': 'rename-log' }, ctx.memo.renameLog ?? ''));
}

const MAIN_STATS = ['attack', 'health', 'defense', 'speed', 'spirit_rate', 'cultivation_rate', 'luck', 'du_jie_rate'];

export default {
  id: 'character',
  title: ['角色', 'Character'],
  render(ctx, root) {
    const { player: p, stats } = ctx.state;
    const g = ctx.g;
    const level = p.stats.level ?? 1;
    const [cn, en] = g.realm(level);
    const eff = stats?.effective ?? {};
    const base = stats?.base ?? {};
    const mods = stats?.modifiers ?? [];
    const keys = [...MAIN_STATS, ...Object.keys(eff).filter((k) => !MAIN_STATS.includes(k)
      && !['level', 'cultivation', 'max_cultivation'].includes(k)).sort()];

    const now = Date.now();
    root.replaceChildren(
      h('div.card.hero', { 'data-testid': 'character' },
        h('div.row.space',
          h('div', h('div.muted', '境界 Realm'), h('div.big', { 'data-testid': 'char-realm' }, bi(cn, en))),
          h('div.right', h('div.muted', '等级 Level'), h('div.big', { 'data-testid': 'char-level' }, level))),
        h('div.muted', '修为 Cultivation'),
        bar(p.stats.cultivation ?? 0, p.stats.max_cultivation ?? 0, 'cult'),
        h('div.row.space',
          h('span', '灵力 Spirit ', h('b', { 'data-testid': 'char-spirit' }, fmt(p.currencies.spirit ?? 0))),
          h('span.muted', `+${fmt(eff.spirit_rate ?? p.stats.spirit_rate ?? 0, 2)} / s`))),
      h('div.grid2',
        renameCard(ctx),
        h('div.card',
          h('h3', bi('财物', 'Currencies')),
          h('dl.kv', Object.entries(p.currencies).flatMap(([k, v]) => [h('dt', g.label(k)), h('dd', fmt(v))]))),
        h('div.card',
          h('h3', bi('属性', 'Stats')),
          h('table.stats', { 'data-testid': 'stats-table' },
            h('thead', h('tr', h('th', '属性 Stat'), h('th', '基础 Base'), h('th', '实际 Effective'))),
            h('tbody', keys.filter((k) => eff[k] !== undefined).map((k) => h('tr',
              h('td', g.label(k)),
              h('td.num', statValue(k, base[k] ?? 0)),
              h('td.num', { class: (eff[k] ?? 0) > (base[k] ?? 0) ? 'up' : '' }, statValue(k, eff[k]))))))),
        h('div.card',
          h('h3', bi('加成', 'Modifiers')),
          mods.length
            ? h('ul.plain', mods.map((m) => h('li',
              h('span.muted', m.source || '—'), ' ', g.text(m.stat), ' ',
              m.add ? `+${statValue(m.stat, m.add)} ` : '', m.mul ? `×${fmt(1 + m.mul, 3)}` : '')))
            : h('p.muted', 'None. Wear equipment, deploy a pet or eat a pill.')),
        h('div.card',
          h('h3', bi('状态', 'Buffs')),
          p.buffs?.length
            ? h('ul.plain', p.buffs.map((b) => h('li', h('b', g.text(b.id.split(':').pop())), ' — ',
              (b.modifiers ?? []).map((m) => `${g.text(m.stat)} ${m.add ? `+${statValue(m.stat, m.add)}` : ''}${m.mul ? ` ×${fmt(1 + m.mul, 3)}` : ''}`).join(', '),
              h('span.muted', ` (${Math.max(0, Math.round((b.expires_ms - now) / 60000))} min left)`))))
            : h('p.muted', 'No active buffs.')),
        h('div.card',
          h('h3', bi('行囊', 'Bag')),
          Object.keys(p.items).length
            ? h('dl.kv', Object.entries(p.items).flatMap(([k, v]) => [h('dt', g.label(k)), h('dd', fmt(v))]))
            : h('p.muted', 'Empty.')),
        h('div.card',
          h('h3', bi('记录', 'Records')),
          h('dl.kv', Object.entries(p.counters).flatMap(([k, v]) => [h('dt', g.label(k)), h('dd', fmt(v))]),
            Object.entries(p.scores ?? {}).flatMap(([k, v]) => [h('dt', g.label(k)), h('dd', fmt(v))])))));
  },
};
