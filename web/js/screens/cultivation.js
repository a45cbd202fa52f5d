// 修炼 Cultivation: gather, meditate (and auto-meditate), formation, check-in, tribulation.
import { h, bi, fmt, bar, pct, confirmDialog, QUALITY_ORDER } from '../ui.js';
import { loopButton, running } from '../auto.js';

async function loadStatus(ctx, quiet = true) {
  const r = await ctx.act('cultivation', 'gather', {}, { quiet, label: '聚气 Gathering spirit' });
  if (r) ctx.memo.cultStatus = r;
  return r;
}

function luckText(l) {
  return l ? ` ${l.name ?? ''}${l.gloss ? ` (${l.gloss})` : ''} ×${l.multiplier}` : '';
}

function breakthroughText(ctx, b) {
  if (!b) return '';
  const [cn, en] = ctx.g.realm(b.level);
  return ` 突破！Breakthrough to ${cn} (${en}), +${fmt(b.spirit_reward)} spirit.`;
}

/** One step of auto-meditation: meditate, and say what it gave. */
async function meditateStep(ctx) {
  const res = await ctx.attempt('cultivation', 'meditate', {}, { quiet: true });
  if (res.reply) {
    const r = res.reply;
    ctx.memo.cultLog = `自动打坐 Auto-meditation: +${fmt(r.cultivation_gain, 1)}${luckText(r.luck)}.${breakthroughText(ctx, r.breakthrough)}`;
  }
  return res;
}

/** One step of auto-formation: a formation session, and what it gave. */
async function formationStep(ctx) {
  const res = await ctx.attempt('cultivation', 'formation', {}, { quiet: true });
  if (res.reply) {
    const r = res.reply;
    ctx.memo.cultLog = `自动聚灵阵 Auto-formation: −${fmt(r.stone_cost)} stones, +${fmt(r.cultivation_gain, 1)} cultivation${luckText(r.luck)}.${breakthroughText(ctx, r.breakthrough)}`;
  }
  return res;
}

function worst(ctx, kind) {
  const list = ctx.state.player.entities.filter((e) => e.kind === kind && QUALITY_ORDER.includes(e.data?.quality));
  list.sort((a, b) => QUALITY_ORDER.indexOf(b.data.quality) - QUALITY_ORDER.indexOf(a.data.quality)
    || String(a.id).localeCompare(String(b.id)));
  return list[0];
}

export default {
  id: 'cultivation',
  title: ['修炼', 'Cultivate'],
  loops: true,
  enter(ctx) {
    loadStatus(ctx).then(() => ctx.rerender());
  },
  render(ctx, root) {
    const p = ctx.state.player;
    const s = ctx.memo.cultStatus;
    const level = p.stats.level ?? 1;
    const [cn, en] = ctx.g.realm(level);
    const say = (t) => { ctx.memo.cultLog = t; };

    const meditate = h('button#meditate', { 'data-testid': 'meditate', disabled: running('auto-meditate'),
      onclick: async () => {
        const r = await ctx.act('cultivation', 'meditate', {}, { button: meditate, label: '打坐 Meditating' });
        if (r) say(`打坐 Meditated: −${fmt(r.spirit_cost)} spirit, +${fmt(r.cultivation_gain, 1)} cultivation${luckText(r.luck)}.${breakthroughText(ctx, r.breakthrough)}`);
        await loadStatus(ctx);
        ctx.rerender();
      } }, bi('打坐', 'Meditate'));
    const autoMeditate = loopButton(ctx, 'auto-meditate', ['自动打坐', 'Auto-meditate'], () => meditateStep(ctx));
    const autoFormation = loopButton(ctx, 'auto-formation', ['自动聚灵阵', 'Auto-formation'], () => formationStep(ctx));
    const formation = h('button', { 'data-testid': 'formation', disabled: running('auto-formation'), onclick: async () => {
      const r = await ctx.act('cultivation', 'formation', {}, { button: formation, label: '聚灵阵 Formation' });
      if (r) say(`聚灵阵 Formation: −${fmt(r.stone_cost)} stones${r.discounted ? ' (discounted)' : ''}, +${fmt(r.cultivation_gain, 1)} cultivation${luckText(r.luck)}.${breakthroughText(ctx, r.breakthrough)}`);
      await loadStatus(ctx);
      ctx.rerender();
    } }, bi('聚灵阵', 'Formation'));
    const gather = h('button.ghost', { 'data-testid': 'gather', onclick: async () => {
      const r = await loadStatus(ctx, false);
      if (r) say(`聚气 Gathered ${fmt(r.accrual.gained)} spirit (${fmt(r.accrual.spirit_rate, 2)}/s).`);
      ctx.rerender();
    } }, bi('收取灵力', 'Gather spirit'));
    const checkin = h('button.ghost', { 'data-testid': 'checkin', disabled: s?.checkin?.checked_in_today, onclick: async () => {
      const r = await ctx.act('cultivation', 'checkin', {}, { button: checkin, label: '签到 Daily check-in' });
      if (r) say(`签到 Checked in, day ${r.streak_day}: +${fmt(r.reward)} ${ctx.g.text(r.currency)}.`);
      await loadStatus(ctx);
      ctx.rerender();
    } }, bi('签到', s?.checkin?.checked_in_today ? 'Checked in today' : `Check in${s ? ` (+${fmt(s.checkin.next_reward)})` : ''}`));

    const trib = h('button.danger', { 'data-testid': 'tribulation', onclick: async () => {
      const eq = worst(ctx, 'equipment');
      const pet = worst(ctx, 'pet');
      const ok = await confirmDialog({
        title: '渡劫 Heavenly tribulation',
        danger: true,
        confirm: '渡劫 Face the tribulation',
        body: [
          h('p.warn', '⚠ The tribulation DESTROYS your best equipment and your best pet, whether you survive or not.'),
          h('ul', h('li', '装备 Equipment lost: ', eq ? `${eq.data.name} (${ctx.g.text(eq.data.quality)})` : 'none'),
            h('li', '灵宠 Pet lost: ', pet ? `${pet.data.name} (${ctx.g.text(pet.data.quality)})` : 'none')),
          h('p', `Success chance: ${pct(ctx.state.stats?.effective?.du_jie_rate ?? 0.05)}. Failure resets your cultivation to 0.`),
        ],
      });
      if (!ok) return;
      const r = await ctx.act('cultivation', 'tribulation', {}, { button: trib, label: '渡劫 Tribulation' });
      if (r) say(`${r.success ? '渡劫成功 You survived!' : '渡劫失败 You failed.'} ${r.message ?? ''}`);
      await loadStatus(ctx);
      ctx.rerender();
    } }, bi('渡劫', 'Tribulation'));

    root.replaceChildren(
      h('div.card',
        h('h2', bi(cn, en)),
        bar(p.stats.cultivation ?? 0, p.stats.max_cultivation ?? 0, 'cult'),
        h('p', '灵力 Spirit ', h('b', fmt(p.currencies.spirit ?? 0)), ' · 灵石 Stones ', h('b', fmt(p.currencies.spirit_stones ?? 0)),
          s ? h('span.muted', ` · +${fmt(s.spirit_rate, 2)}/s`) : null),
        s ? h('ul.plain.small',
          h('li', `打坐 Meditate: costs ${fmt(s.meditate_cost)} spirit, about +${fmt(s.meditate_gain, 1)} cultivation × luck`),
          h('li', `聚灵阵 Formation: costs ${fmt(s.formation_cost)} stones (${s.formation_discounted_left} discounted uses left today)`),
          h('li', `探索 Explore: ${fmt(s.explore_cost)} spirit, needs ${fmt(s.explore_min_cultivation, 1)} cultivation`)) : h('p.muted', 'Loading…'),
        h('div.actions', meditate, autoMeditate, formation, autoFormation, gather, checkin),
        h('p.log', { 'data-testid': 'cult-log' }, ctx.memo.cultLog ?? '')),
      h('div.card.danger-zone',
        h('h3', bi('渡劫', 'Heavenly tribulation')),
        h('p', 'At 金丹期九层 (Golden Core, layer 9) with full cultivation you must face the tribulation to reach 元婴 (Nascent Soul).'),
        h('p.warn', '⚠ Warning: it destroys your highest-quality equipment and your highest-quality pet, win or lose.'),
        s?.tribulation_ready ? h('p.good', 'You are ready.') : h('p.muted', 'Not ready yet.'),
        trib));
  },
};
