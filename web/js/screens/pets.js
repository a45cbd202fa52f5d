// 灵宠 Pets: draw, hatch, deploy/recall, upgrade, star-up, release one or every idle pet of some
// qualities; the list is filtered and paged by the server.
import { h, bi, fmt, pct, statValue, qualityTag, confirmDialog, QUALITY_ORDER } from '../ui.js';

const PAGE_SIZE = 20;

/** The list filters: quality, deployed (all / yes / no), page. */
function filters(ctx) {
  ctx.memo.petFilters ??= { quality: 'all', active: 'all', page: 1 };
  return ctx.memo.petFilters;
}

async function loadList(ctx) {
  const f = filters(ctx);
  const params = { page: f.page, page_size: PAGE_SIZE };
  if (f.quality !== 'all') params.quality = f.quality;
  if (f.active !== 'all') params.active = f.active === 'yes';
  const r = await ctx.act('pet', 'list', params, { quiet: true, refresh: false });
  if (r) ctx.memo.petList = r;
  ctx.rerender();
}

function setFilter(ctx, key, value) {
  const f = filters(ctx);
  f[key] = value;
  if (key !== 'page') f.page = 1;
  loadList(ctx);
}

async function loadInfo(ctx) {
  if (ctx.memo.petInfo) return;
  const r = await ctx.act('pet', 'info', {}, { quiet: true, refresh: false });
  if (r) ctx.memo.petInfo = r;
  ctx.rerender();
}

function qualityOf(ctx, key) {
  const list = ctx.memo.petInfo?.qualities ?? ctx.memo.petInfo?.quality ?? [];
  return list.find((q) => q.key === key || q.id === key || q.quality === key);
}

function petEnglish(ctx, pet) {
  const q = qualityOf(ctx, pet.quality);
  const i = q?.names?.indexOf(pet.name) ?? -1;
  return i >= 0 ? q.names_en?.[i] : '';
}

export default {
  id: 'pets',
  title: ['灵宠', 'Pets'],
  enter(ctx) {
    loadInfo(ctx);
    loadList(ctx);
  },
  render(ctx, root) {
    const p = ctx.state.player;
    const say = (t) => { ctx.memo.petLog = t; ctx.rerender(); };
    const pets = p.entities.filter((e) => e.kind === 'pet');
    pets.sort((a, b) => (b.data.active - a.data.active) || QUALITY_ORDER.indexOf(b.data.quality) - QUALITY_ORDER.indexOf(a.data.quality)
      || (b.data.star - a.data.star) || (b.data.level - a.data.level));
    const draw = (n) => {
      const b = h('button', { 'data-testid': `pet-draw-${n}`, onclick: async () => {
        const r = await ctx.act('pet', 'draw', { count: n }, { button: b, label: `召唤 Summoning ${n}` });
        await loadList(ctx);
        if (r) say(`召唤 New pets: ${r.pets.map((x) => `${x.pet.name} (${ctx.g.text(x.pet.quality)})`).join(', ')}.`);
      } }, bi(`召唤 ×${n}`, `Draw ${n} (${fmt(100 * n)} stones)`));
      return b;
    };
    const eggs = p.items['egg:pet'] ?? 0;
    const hatch = h('button.ghost', { 'data-testid': 'pet-hatch', disabled: !eggs, onclick: async () => {
      const r = await ctx.act('pet', 'hatch', {}, { button: hatch, label: '孵化 Hatching an egg' });
      await loadList(ctx);
      if (r) say(`孵化 Out came ${r.pets.map((x) => x.pet.name).join(', ')}!`);
    } }, bi('孵化', `Hatch egg (${eggs})`));

    const card = (e) => {
      const pet = e.data;
      const en = petEnglish(ctx, pet);
      const q = qualityOf(ctx, pet.quality);
      const act = async (action, params, label, button) => {
        const r = await ctx.act('pet', action, { id: e.id, ...params }, { button, label });
        await loadList(ctx);
        return r;
      };
      const deploy = pet.active
        ? h('button.ghost.small', { onclick: async () => { if (await act('recall', {}, `召回 Recalling ${pet.name}`, deploy)) say(`召回 ${pet.name} is resting.`); } }, bi('召回', 'Recall'))
        : h('button.small', { 'data-testid': 'pet-deploy', onclick: async () => { if (await act('deploy', {}, `出战 Deploying ${pet.name}`, deploy)) say(`出战 ${pet.name} fights at your side.`); } }, bi('出战', 'Deploy'));
      const upgrade = h('button.ghost.small', { onclick: async () => {
        const r = await act('upgrade', {}, `升级 Upgrading ${pet.name}`, upgrade);
        if (r) say(`升级 ${pet.name} reached level ${r.pet.pet.level} (−${fmt(r.essence_spent)} essence).`);
      } }, bi('升级', `Upgrade (${fmt(pet.level * 10)} essence)`));
      const foods = pets.filter((f) => f.id !== e.id && f.data.quality === pet.quality && !f.data.active);
      const foodSel = h('select.small', { 'aria-label': 'pet to feed' }, foods.map((f) => h('option', { value: f.id },
        `${f.data.name} Lv${f.data.level} ★${f.data.star}${f.data.name === pet.name ? ' (100%)' : ' (30%)'}`)));
      const star = h('button.ghost.small', { disabled: !foods.length, onclick: async () => {
        const food = foodSel.value;
        const f = foods.find((x) => x.id === food);
        const ok = await confirmDialog({ title: '升星 Star-up', body: `Feed ${f?.data.name} to ${pet.name}? The food pet is consumed whether or not it works (${f?.data.name === pet.name ? '100' : '30'} % chance).`, confirm: '升星 Star up' });
        if (!ok) return;
        const r = await act('star_up', { food }, `升星 Starring up ${pet.name}`, star);
        if (r) say(r.success ? `升星成功 ${pet.name} now has ${r.pet.pet.star} star(s)!` : `升星失败 It did not work (${pct(r.chance)} chance); the food pet is gone.`);
      } }, bi('升星', 'Star up'));
      const release = h('button.ghost.small', { disabled: pet.active, onclick: async () => {
        const ok = await confirmDialog({ title: '放生 Release', body: `Release ${pet.name}? It leaves for good and you receive spirit stones.`, confirm: '放生 Release', danger: true });
        if (!ok) return;
        const r = await act('release', {}, `放生 Releasing ${pet.name}`, release);
        if (r) say(`放生 ${r.name} returned to the wild; +${fmt(r.spirit_stones)} stones.`);
      } }, bi('放生', 'Release'));
      return h('li.item', { style: { '--qc': q?.colour ?? ctx.g.colour(pet.quality) }, 'data-quality': pet.quality, 'data-id': e.id,
        'data-active': pet.active ? 'yes' : 'no', 'data-testid': 'pet' },
      h('div.row.space',
        h('div', h('b.iname', pet.name), en ? h('small.muted', en) : null, h('div.small', `Lv ${pet.level} · ${'★'.repeat(Math.min(pet.star, 10)) || '☆'}`)),
        h('div.right', qualityTag(ctx.g, pet.quality, q ? `${q.name} ${q.name_en}` : undefined))),
      h('ul.statlines', Object.entries(pet.stats ?? {}).map(([k, v]) => h('li', ctx.g.text(k), ' ', h('b', statValue(k, v)))),
        ['attack_bonus', 'defense_bonus', 'health_bonus'].filter((k) => pet[k]).map((k) => h('li', ctx.g.text(k.replace('_bonus', '')), ' ', h('b', `+${pct(pet[k])}`)))),
      pet.active ? h('div.small.good', '出战中 Deployed') : null,
      h('div.actions', deploy, upgrade, foods.length ? [foodSel, star] : null, release));
    };

    const f = filters(ctx);
    const list = ctx.memo.petList;
    const shown = (list?.pets ?? []).map((v) => ({ id: v.id, data: v.pet }));
    const releaseUpTo = h('select', { 'aria-label': 'qualities to release', 'data-testid': 'batch-release-quality' },
      QUALITY_ORDER.slice(0, 4).map((q, i) => h('option', { value: QUALITY_ORDER.slice(0, i + 1).join(',') },
        `≤ ${qualityOf(ctx, q)?.name ?? ctx.g.text(q)}`)));
    const batch = h('button.ghost.small', { 'data-testid': 'batch-release', onclick: async () => {
      const qualities = releaseUpTo.value;
      const ok = await confirmDialog({ title: '批量放生 Release in bulk',
        body: `Release every pet of ${qualities.split(',').map((q) => qualityOf(ctx, q)?.name ?? q).join(', ')} that is not deployed? They leave for good; each pays its spirit stones.`,
        confirm: '放生 Release', danger: true });
      if (!ok) return;
      const r = await ctx.act('pet', 'batch_release', { qualities }, { button: batch, label: '批量放生 Releasing in bulk' });
      await loadList(ctx);
      if (r) say(`批量放生 ${r.count} pet(s) returned to the wild; +${fmt(r.spirit_stones)} stones.`);
    } }, bi('批量放生', 'Release all idle'));
    const select = (key, label, options) => h('select', { 'aria-label': label, 'data-testid': `pet-filter-${key}`,
      onchange: (ev) => setFilter(ctx, key, ev.target.value) },
    options.map(([value, text]) => h('option', { value, selected: f[key] === value }, text)));
    const prev = h('button.ghost.small', { 'data-testid': 'pet-prev', disabled: !list || list.page <= 1,
      onclick: () => setFilter(ctx, 'page', list.page - 1) }, '‹ 上页 Prev');
    const next = h('button.ghost.small', { 'data-testid': 'pet-next', disabled: !list || list.page >= list.pages,
      onclick: () => setFilter(ctx, 'page', list.page + 1) }, '下页 Next ›');
    const info = ctx.memo.petInfo;
    const odds = (info?.qualities ?? info?.quality ?? []).map((q) => h('span.odds', { style: { color: q.colour } },
      `${q.name} ${q.name_en ?? ''} ${fmt(q.odds ?? q.percent, 2)}%`));
    root.replaceChildren(
      h('div.card',
        h('h2', bi('灵宠', 'Pets')),
        h('p', '灵石 Stones ', h('b', fmt(p.currencies.spirit_stones ?? 0)), ' · 灵宠精华 Essence ', h('b', fmt(p.currencies.pet_essence ?? 0))),
        h('div.actions', draw(1), draw(10), hatch),
        odds.length ? h('p.small.muted', '真实概率 True odds: ', odds) : null,
        h('p.log', { 'data-testid': 'pet-log' }, ctx.memo.petLog ?? '')),
      h('div.card',
        h('div.row.space', h('h3', bi('灵宠园', `Your pets (${fmt(list?.total ?? pets.length)})`)),
          h('div.actions',
            select('quality', 'filter by quality', [['all', '全部品质 All qualities'],
              ...QUALITY_ORDER.map((q) => [q, qualityOf(ctx, q)?.name ?? ctx.g.text(q)])]),
            select('active', 'filter by deployed', [['all', '全部 All'], ['yes', '出战 Deployed'], ['no', '休息 Resting']]))),
        h('div.actions', releaseUpTo, batch),
        !list ? h('p.muted', 'Loading…')
          : shown.length ? h('ul.items', shown.map(card))
            : h('p.muted', list.total ? 'No pet matches these filters.' : 'No pets yet.'),
        list ? h('div.row.space', { 'data-testid': 'pet-pages' }, prev,
          h('span.small.muted', `第 ${list.page} / ${list.pages} 页 · ${fmt(list.matched)} match of ${fmt(list.total)}`), next) : null));
  },
};
