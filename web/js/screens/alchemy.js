// 炼丹 Alchemy: the recipe book with owned materials and true success rates, fragments, crafting, pills.
import { h, bi, fmt, pct } from '../ui.js';

async function load(ctx) {
  const r = await ctx.act('alchemy', 'recipes', {}, { quiet: true, refresh: false });
  if (r) ctx.memo.recipes = r;
  ctx.rerender();
}

function effectText(ctx, e) {
  if (!e) return '';
  const amount = fmt(e.amount, 2);
  const target = ctx.g.text(e.target);
  const dur = e.duration_ms ? ` for ${Math.round(e.duration_ms / 60000)} min` : '';
  return `+${amount} ${target}${dur}`;
}

export default {
  id: 'alchemy',
  title: ['炼丹', 'Alchemy'],
  enter(ctx) {
    load(ctx);
  },
  render(ctx, root) {
    const book = ctx.memo.recipes;
    const p = ctx.state.player;
    const say = (t) => { ctx.memo.alchemyLog = t; };
    if (!book) {
      root.replaceChildren(h('div.card', h('p.muted', '翻阅丹方… Opening the recipe book…')));
      return;
    }
    const pills = Object.entries(p.items).filter(([k, v]) => k.startsWith('pill:') && v > 0);
    const recipeCards = book.recipes.map((r) => {
      const qty = h('input', { type: 'number', min: 1, max: 100, value: Math.max(1, r.fragments_needed - r.fragments),
        'aria-label': 'fragments to buy', class: 'qty' });
      const buy = h('button.ghost.small', { 'data-testid': `buy-${r.id}`, onclick: async () => {
        const n = Number(qty.value);
        const res = await ctx.act('alchemy', 'buy_fragment', { recipe: r.id, quantity: n }, { button: buy, label: `购买残页 Buying ${n} fragment(s)` });
        if (res) say(`Bought ${res.quantity} fragment(s) for ${fmt(res.cost)} stones.${res.unlocked ? ' 丹方解锁 Recipe unlocked!' : ''}`);
        await load(ctx);
      } }, bi('购买残页', `Buy (${fmt(r.fragment_price)} each)`));
      const craft = h('button.small', { 'data-testid': `craft-${r.id}`, disabled: !r.can_craft, onclick: async () => {
        const res = await ctx.act('alchemy', 'craft', { recipe: r.id }, { button: craft, label: `炼制 Crafting ${r.name}` });
        if (res) say(res.success ? `成丹！${res.name} (${res.name_en}) crafted. You have ${res.pills}.` : `炼丹失败 The ${res.name_en} batch failed (${pct(res.success_rate)} chance); materials are spent.`);
        await load(ctx);
      } }, bi('炼制', 'Craft'));
      return h('div.card.recipe', { 'data-recipe': r.id, class: r.open ? '' : 'closed' },
        h('div.row.space', h('h3', bi(r.name, r.name_en)), h('span.tag', `${r.grade_name} · ${pct(r.success_rate)} success`)),
        !r.open ? h('p.muted', '未开放 Not available yet.') : null,
        h('p.small', '效果 Effect: ', effectText(ctx, r.effect)),
        h('p.small', '丹方 Recipe: ', r.unlocked ? h('b.good', '已解锁 Unlocked')
          : `${r.fragments}/${r.fragments_needed} fragments`),
        h('ul.materials', r.materials.map((m) => h('li', { class: m.have >= m.need ? 'good' : 'bad' },
          `${m.name} ${m.name_en ? `(${m.name_en})` : ''}: ${m.have}/${m.need}`))),
        r.open ? h('div.actions', r.unlocked ? craft : [qty, buy]) : null,
        r.pills ? h('p.small', `Pills held: ${r.pills}`) : null);
    });
    root.replaceChildren(
      h('div.card',
        h('h2', bi('炼丹', 'Alchemy')),
        h('p', 'Collect a grade\'s worth of fragments (残页) to unlock a recipe, gather its herbs from hunts and exploration, then craft. Success rates shown are the real ones.'),
        h('p', '灵石 Stones ', h('b', fmt(p.currencies.spirit_stones ?? 0)), ` · crafted ${book.pills_crafted} · eaten ${book.pills_eaten}`),
        h('p.log', { 'data-testid': 'alchemy-log' }, ctx.memo.alchemyLog ?? '')),
      h('div.card',
        h('h3', bi('丹药', 'Pills')),
        pills.length ? h('ul.plain', { 'data-testid': 'pills' }, pills.map(([k, v]) => {
          const id = k.slice(5);
          const eat = h('button.small', { 'data-testid': `eat-${id}`, onclick: async () => {
            const res = await ctx.act('alchemy', 'eat', { pill: id }, { button: eat, label: `服用 Eating ${ctx.g.text(k)}` });
            if (res) say(`服用 You ate ${res.name} (${res.name_en}): ${effectText(ctx, res.effect)}. ${res.pills_left} left.`);
            await load(ctx);
          } }, bi('服用', 'Eat'));
          return h('li.row.space', h('span', ctx.g.label(k), ` ×${v}`), eat);
        })) : h('p.muted', 'No pills yet.')),
      h('div.card',
        h('h3', bi('药草', 'Herbs')),
        h('ul.herbs', book.herbs.filter((x) => x.have > 0).map((x) => h('li', `${x.name} (${x.name_en}) ×${x.have}`))),
        book.herbs.some((x) => x.have > 0) ? null : h('p.muted', 'No herbs. Hunt beasts (dungeon screen) or explore.')),
      h('div.recipes', recipeCards));
  },
};
