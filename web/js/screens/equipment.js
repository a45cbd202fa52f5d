// 装备 Equipment: draws, chests, five slots, equip/unequip, enhance, reforge (keep or discard), sell
// one piece or every unworn piece of some qualities; the bag is filtered and paged by the server.
import { h, bi, fmt, pct, statValue, qualityTag, confirmDialog, QUALITY_ORDER } from '../ui.js';

const SLOTS = ['faqi', 'guanjin', 'daopao', 'yunlv', 'fabao'];
const PAGE_SIZE = 20;

/** The bag filters: slot, quality, worn (all / yes / no), page. */
function filters(ctx) {
  ctx.memo.equipFilters ??= { slot: 'all', quality: 'all', worn: 'all', page: 1 };
  return ctx.memo.equipFilters;
}

async function load(ctx) {
  const f = filters(ctx);
  const params = { page: f.page, page_size: PAGE_SIZE };
  if (f.slot !== 'all') params.slot = f.slot;
  if (f.quality !== 'all') params.quality = f.quality;
  if (f.worn !== 'all') params.equipped = f.worn === 'yes';
  const [r, worn] = await Promise.all([
    ctx.act('equipment', 'list', params, { quiet: true, refresh: false }),
    // The worn pieces for the slot panel, whatever page the bag shows.
    ctx.act('equipment', 'list', { equipped: true }, { quiet: true, refresh: false }),
  ]);
  if (r) ctx.memo.equipment = r;
  if (worn) ctx.memo.equipWorn = worn.items;
  ctx.rerender();
}

function setFilter(ctx, key, value) {
  const f = filters(ctx);
  f[key] = value;
  if (key !== 'page') f.page = 1;
  load(ctx);
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
    const byId = new Map([...(ctx.memo.equipWorn ?? []), ...data.items].map((it) => [it.id, it]));
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
      // The whole bag, not just this page.
      const all = await ctx.act('equipment', 'list', {}, { quiet: true, refresh: false });
      if (!all) return;
      let n = 0;
      for (const slot of SLOTS) {
        const cands = all.items.filter((i) => i.item.slot === slot);
        if (!cands.length) continue;
        const top = cands.reduce((a, b) => (b.rank > a.rank || (b.rank === a.rank && Object.values(b.item.stats).reduce((x, y) => x + y, 0) > Object.values(a.item.stats).reduce((x, y) => x + y, 0)) ? b : a));
        if (top.item.equipped) continue;
        if (await ctx.act('equipment', 'equip', { id: top.id }, { button: best, label: `穿戴 Equipping ${top.item.name}`, refresh: false })) n += 1;
      }
      say(n ? `穿戴 Equipped ${n} better piece(s).` : 'Already wearing your best.');
      await ctx.refresh();
      await load(ctx);
    } }, bi('一键穿戴最佳', 'Equip best'));

    const f = filters(ctx);
    const items = data.items;
    const sellUpTo = h('select', { 'aria-label': 'qualities to sell', 'data-testid': 'batch-sell-quality' },
      QUALITY_ORDER.slice(0, 4).map((q, i) => h('option', { value: QUALITY_ORDER.slice(0, i + 1).join(',') },
        `≤ ${ctx.g.text(q)}`)));
    const batch = h('button.ghost.small', { 'data-testid': 'batch-sell', onclick: async () => {
      const qualities = sellUpTo.value;
      const where = f.slot === 'all' ? '' : ` (${ctx.g.text(f.slot)})`;
      const ok = await confirmDialog({ title: '批量出售 Sell in bulk',
        body: `Sell every unworn piece of ${qualities.split(',').map((q) => ctx.g.text(q)).join(', ')}${where}? Worn pieces are kept.`,
        confirm: '出售 Sell', danger: true });
      if (!ok) return;
      const params = { qualities };
      if (f.slot !== 'all') params.slot = f.slot;
      const r = await ctx.act('equipment', 'batch_sell', params, { button: batch, label: '批量出售 Selling in bulk' });
      if (r) say(`批量出售 Sold ${r.count} piece(s) for ${fmt(r.price)} stones.`);
      await load(ctx);
    } }, bi('批量出售', 'Sell all unworn'));
    const select = (key, label, options) => h('select', { 'aria-label': label, 'data-testid': `equip-filter-${key}`,
      onchange: (e) => setFilter(ctx, key, e.target.value) },
    options.map(([value, text]) => h('option', { value, selected: f[key] === value }, text)));
    const prev = h('button.ghost.small', { 'data-testid': 'equip-prev', disabled: data.page <= 1,
      onclick: () => setFilter(ctx, 'page', data.page - 1) }, '‹ 上页 Prev');
    const next = h('button.ghost.small', { 'data-testid': 'equip-next', disabled: data.page >= data.pages,
      onclick: () => setFilter(ctx, 'page', data.page + 1) }, '下页 Next ›');
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
        h('div.row.space', h('h3', bi('行囊', `Bag (${fmt(data.total)})`)),
          h('div.actions',
            select('slot', 'filter by slot', [['all', '全部部位 All slots'], ...SLOTS.map((s) => [s, ctx.g.text(s)])]),
            select('quality', 'filter by quality', [['all', '全部品质 All qualities'], ...QUALITY_ORDER.map((q) => [q, ctx.g.text(q)])]),
            select('worn', 'filter by worn', [['all', '全部 All'], ['yes', '已穿戴 Worn'], ['no', '未穿戴 In the bag']]))),
        h('div.actions', sellUpTo, batch),
        items.length ? h('ul.items', items.map((it) => itemCard(ctx, it, say)))
          : h('p.muted', data.total ? 'Nothing matches these filters.' : 'No equipment. Draw some with spirit stones.'),
        h('div.row.space', { 'data-testid': 'equip-pages' }, prev,
          h('span.small.muted', `第 ${data.page} / ${data.pages} 页 · ${fmt(data.matched)} 件 match of ${fmt(data.total)}`), next)));
  },
};
