// 装备 Equipment: draws, chests, five slots, equip/unequip, enhance, reforge (keep or discard), sell.
import { h, bi, fmt, pct, statValue, qualityTag, confirmDialog } from '../ui.js';

const SLOTS = ['faqi', 'guanjin', 'daopao', 'yunlv', 'fabao'];

async function load(ctx) {
  const r = await ctx.act('equipment', 'list', {}, { quiet: true, refresh: false });
  if (r) ctx.memo.equipment = r;
  ctx.rerender();
}

function statsList(ctx, stats, compare) {
  return h('ul.statlines', Object.entries(stats ?? {}).map(([k, v]) => {
    const old = compare?.[k];
    const cls = old === undefined ? '' : v > old ? 'up' : v < old ? 'down' : '';
    return h('li', { class: cls }, ctx.g.text(k), ' ', h('b', statValue(k, v)));
  }));
}

function itemCard(ctx, it, say) {
  const e = it.item;
  const act = async (action, params, label, button) => {
    const r = await ctx.act('equipment', action, { id: it.id, ...params }, { button, label });
    await load(ctx);
    return r;
  };
  const buttons = [];
  if (e.equipped) {
    const b = h('button.ghost.small', { onclick: async () => { if (await act('unequip', {}, `卸下 Taking off ${e.name}`, b)) say(`卸下 Took off ${e.name}.`); } }, bi('卸下', 'Unequip'));
    buttons.push(b);
  } else {
    const b = h('button.small', { 'data-testid': 'equip', onclick: async () => {
      const r = await act('equip', {}, `穿戴 Equipping ${e.name}`, b);
      if (r) say(`穿戴 Equipped ${e.name}${r.replaced ? `, replacing ${r.replaced.item.name}` : ''}.`);
    } }, bi('穿戴', 'Equip'));
    buttons.push(b);
  }
  if (!e.pending_reforge) {
    const enh = h('button.ghost.small', { disabled: it.enhance_cost === null, onclick: async () => {
      const r = await act('enhance', {}, `强化 Enhancing ${e.name}`, enh);
      if (r) say(`强化 ${e.name} is now +${r.item.item.enhance_level} (−${fmt(r.cost)} reinforce stones).`);
    } }, bi('强化', it.enhance_cost === null ? 'Max' : `Enhance (${fmt(it.enhance_cost)})`));
    buttons.push(enh);
    if (!e.enhance_level) {
      const ref = h('button.ghost.small', { onclick: async () => {
        const r = await act('reforge', {}, `洗练 Reforging ${e.name}`, ref);
        if (r) say(`洗练 New roll for ${e.name}: keep it or discard it below.`);
      } }, bi('洗练', 'Reforge (10)'));
      buttons.push(ref);
    }
  }
  if (!e.equipped) {
    const sell = h('button.ghost.small', { onclick: async () => {
      if (it.rank >= 3 && !(await confirmDialog({ title: '出售 Sell', body: `Sell ${e.name} (${it.quality_name_en}) for ${it.sell_price} stones?`, confirm: '出售 Sell' }))) return;
      const r = await act('sell', {}, `出售 Selling ${e.name}`, sell);
      if (r) say(`出售 Sold ${r.name} for ${fmt(r.price)} stones.`);
    } }, bi('出售', `Sell (${it.sell_price})`));
    buttons.push(sell);
  }
  let pending = null;
  if (e.pending_reforge) {
    const keep = h('button.small', { 'data-testid': 'reforge-keep', onclick: async () => {
      if (await act('reforge_confirm', { keep: true }, '保留 Keeping the new roll', keep)) say('保留 The new stats are applied.');
    } }, bi('保留', 'Keep new'));
    const drop = h('button.ghost.small', { 'data-testid': 'reforge-discard', onclick: async () => {
      if (await act('reforge_confirm', { keep: false }, '放弃 Discarding the roll', drop)) say('放弃 The old stats stay.');
    } }, bi('放弃', 'Discard'));
    pending = h('div.pending', h('div.row',
      h('div', h('div.muted', '原属性 Current'), statsList(ctx, e.stats)),
      h('div', h('div.muted', '新属性 New roll'), statsList(ctx, e.pending_reforge, e.stats))),
    h('div.actions', keep, drop));
  }
  return h('li.item', { style: { '--qc': it.colour }, 'data-quality': e.quality, 'data-id': it.id,
    'data-equipped': e.equipped ? 'yes' : 'no', 'data-testid': 'item' },
  h('div.row.space',
    h('div', h('b.iname', e.name, e.enhance_level ? ` +${e.enhance_level}` : ''), h('small.muted', e.name_en)),
    h('div.right', qualityTag(ctx.g, e.quality, `${it.quality_name} ${it.quality_name_en}`), h('div.small.muted', `${it.slot_name} ${it.slot_name_en}`))),
  statsList(ctx, e.stats),
  e.equipped ? h('div.small.good', '已穿戴 Worn') : null,
  pending,
  h('div.actions', buttons));
}

export default {
  id: 'equipment',
  title: ['装备', 'Equipment'],
  enter(ctx) {
    load(ctx);
  },
  render(ctx, root) {
    const data = ctx.memo.equipment;
    const p = ctx.state.player;
    const say = (t) => { ctx.memo.equipLog = t; ctx.rerender(); };
    if (!data) {
      root.replaceChildren(h('div.card', h('p.muted', '打开行囊… Opening your bag…')));
      return;
    }
    const byId = new Map(data.items.map((it) => [it.id, it]));
    const draw = (n) => {
      const b = h('button', { 'data-testid': `draw-${n}`, onclick: async () => {
        const r = await ctx.act('equipment', 'draw', { count: n }, { button: b, label: `抽取 Drawing ${n}` });
        if (r) say(`抽取 You drew: ${r.items.map((i) => `${i.item.name} (${i.quality_name_en})`).join(', ')}.`);
        await load(ctx);
      } }, bi(`抽取 ×${n}`, `Draw ${n} (${fmt(data.draw_price * n)} stones)`));
      return b;
    };
    const chests = p.items['chest:equipment'] ?? 0;
    const chest = h('button.ghost', { disabled: !chests, onclick: async () => {
      const r = await ctx.act('equipment', 'open_chest', {}, { button: chest, label: '开箱 Opening a chest' });
      if (r) say(`开箱 The chest held ${r.items.map((i) => i.item.name).join(', ')}.`);
      await load(ctx);
    } }, bi('开宝箱', `Open chest (${chests})`));
    const best = h('button.ghost', { 'data-testid': 'equip-best', onclick: async () => {
      let n = 0;
      for (const slot of SLOTS) {
        const cands = data.items.filter((i) => i.item.slot === slot);
        if (!cands.length) continue;
        const top = cands.reduce((a, b) => (b.rank > a.rank || (b.rank === a.rank && Object.values(b.item.stats).reduce((x, y) => x + y, 0) > Object.values(a.item.stats).reduce((x, y) => x + y, 0)) ? b : a));
        if (top.item.equipped) continue;
        if (await ctx.act('equipment', 'equip', { id: top.id }, { button: best, label: `穿戴 Equipping ${top.item.name}`, refresh: false })) n += 1;
      }
      say(n ? `穿戴 Equipped ${n} better piece(s).` : 'Already wearing your best.');
      await ctx.refresh();
      await load(ctx);
    } }, bi('一键穿戴最佳', 'Equip best'));

    const filter = ctx.memo.equipFilter ?? 'all';
    const items = data.items.filter((i) => filter === 'all' || i.item.slot === filter);
    root.replaceChildren(
      h('div.card',
        h('h2', bi('装备', 'Equipment')),
        h('p', '灵石 Stones ', h('b', fmt(p.currencies.spirit_stones ?? 0)), ' · 强化石 Reinforce ', h('b', fmt(p.currencies.reinforce_stones ?? 0)),
          ' · 洗练石 Refinement ', h('b', fmt(p.currencies.refinement_stones ?? 0)), ' · 评分 Score ', h('b', fmt(data.score))),
        h('div.actions', draw(1), draw(10), chest, best),
        h('p.small.muted', '真实概率 True odds: ', data.odds.map((o) => h('span.odds', { style: { color: o.colour } }, `${o.name} ${o.name_en} ${fmt(o.percent, 2)}%`))),
        h('p.log', { 'data-testid': 'equip-log' }, ctx.memo.equipLog ?? '')),
      h('div.card',
        h('h3', bi('装备栏', 'Slots')),
        h('ul.slots', { 'data-testid': 'slots' }, SLOTS.map((slot) => {
          const it = byId.get(data.equipped[slot]);
          const [cn, en] = ctx.g.pair(slot);
          return h('li', { 'data-slot': slot, style: it ? { '--qc': it.colour } : {} }, h('div.muted.small', bi(cn, en)),
            it ? h('b.iname', it.item.name, it.item.enhance_level ? ` +${it.item.enhance_level}` : '') : h('span.muted', '空 Empty'));
        }))),
      h('div.card',
        h('div.row.space', h('h3', bi('行囊', `Bag (${data.items.length})`)),
          h('select', { 'aria-label': 'filter by slot', onchange: (e) => { ctx.memo.equipFilter = e.target.value; ctx.rerender(); } },
            h('option', { value: 'all', selected: filter === 'all' }, '全部 All'),
            SLOTS.map((s) => h('option', { value: s, selected: filter === s }, ctx.g.text(s))))),
        items.length ? h('ul.items', items.slice(0, 60).map((it) => itemCard(ctx, it, say)))
          : h('p.muted', 'No equipment. Draw some with spirit stones.'),
        items.length > 60 ? h('p.muted', `…and ${items.length - 60} more (best first).`) : null));
  },
};
