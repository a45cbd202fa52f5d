// 探索 Exploration: spend spirit, roll an event; keeps a log of what happened. Auto-explore repeats it.
import { h, bi, fmt, bar } from '../ui.js';
import { loopButton, running } from '../auto.js';

/** Writes an exploration's reply into the screen's log, newest first. */
function record(ctx, r) {
  const log = ctx.memo.exploreLog;
  const when = new Date().toLocaleTimeString();
  if (!r.events.length) log.unshift({ when, text: `−${fmt(r.spirit_cost)} spirit. 一无所获 You wander for a while and find nothing.`, tone: 'muted' });
  for (const e of r.events) {
    const bits = [];
    if (e.cultivation_delta) bits.push(`${e.cultivation_delta > 0 ? '+' : ''}${fmt(e.cultivation_delta, 1)} cultivation`);
    if (e.spirit_delta) bits.push(`${e.spirit_delta > 0 ? '+' : ''}${fmt(e.spirit_delta)} spirit`);
    if (e.item) bits.push(`+${e.item.qty} ${e.item.name}${e.item.gloss ? ` (${e.item.gloss})` : ''}`);
    if (e.currency && e.amount) bits.push(`+${fmt(e.amount)} ${ctx.g.text(e.currency)}`);
    log.unshift({ when, title: `${e.name}${e.gloss ? ` · ${e.gloss}` : ''}`, text: `${e.description} ${e.description_en ?? ''}`,
      effect: bits.join(', '), tone: e.cultivation_delta < 0 || e.spirit_delta < 0 ? 'bad' : 'good' });
  }
  log.splice(50);
}

/** One step of auto-explore. */
async function exploreStep(ctx) {
  ctx.memo.exploreLog ??= [];
  const res = await ctx.attempt('cultivation', 'explore', {}, { quiet: true });
  if (res.reply) record(ctx, res.reply);
  return res;
}

export default {
  id: 'explore',
  title: ['探索', 'Explore'],
  loops: true,
  enter(ctx) {
    ctx.memo.exploreLog ??= [];
    if (!ctx.memo.cultStatus) {
      ctx.act('cultivation', 'gather', {}, { quiet: true }).then((r) => {
        if (r) ctx.memo.cultStatus = r;
        ctx.rerender();
      });
    }
  },
  render(ctx, root) {
    const p = ctx.state.player;
    const s = ctx.memo.cultStatus;
    const log = ctx.memo.exploreLog;
    const btn = h('button', { 'data-testid': 'explore', disabled: running('auto-explore'), onclick: async () => {
      const r = await ctx.act('cultivation', 'explore', {}, { button: btn, label: '探索 Exploring' });
      if (r) {
        record(ctx, r);
        const st = await ctx.act('cultivation', 'gather', {}, { quiet: true });
        if (st) ctx.memo.cultStatus = st;
        ctx.rerender();
      }
    } }, bi('探索', 'Explore'));
    const need = s?.explore_min_cultivation;
    root.replaceChildren(
      h('div.card',
        h('h2', bi('探索', 'Exploration')),
        h('p', 'Wander the world for herbs, recipe fragments, stones — or trouble. ',
          s ? `Each trip costs ${fmt(s.explore_cost)} spirit and needs at least ${fmt(need, 1)} cultivation (30 % of this level).` : ''),
        bar(p.stats.cultivation ?? 0, p.stats.max_cultivation ?? 0, 'cult'),
        h('p', '灵力 Spirit ', h('b', fmt(p.currencies.spirit ?? 0)), ' · 探索次数 Explorations ', h('b', fmt(p.counters.explorations ?? 0))),
        h('div.actions', btn, loopButton(ctx, 'auto-explore', ['自动探索', 'Auto-explore'], () => exploreStep(ctx)))),
      h('div.card',
        h('h3', bi('见闻录', 'Event log')),
        log.length ? h('ol.log-list', { 'data-testid': 'explore-log' }, log.map((e) => h('li', { class: e.tone },
          h('time', e.when), e.title ? h('b', e.title) : null, h('div', e.text), e.effect ? h('div.effect', e.effect) : null)))
          : h('p.muted', 'Nothing explored yet.')));
  },
};
