// 秘境 Dungeon: runs with floors and buff choices, fights played back round by round; hunts and slays.
import { h, bi, fmt, pct, sleep } from '../ui.js';
import { loopButton } from '../auto.js';

async function load(ctx) {
  const r = await ctx.act('dungeon', 'status', {}, { quiet: true, refresh: false });
  if (r) ctx.memo.dungeon = r;
  ctx.rerender();
}

/** What a hunt or slay won, in words. */
function spoils(ctx, r) {
  const drops = r.drops.map((d) => `${d.qty}× ${ctx.g.text(d.item)}`).join(', ');
  return r.won ? `Spoils: ${[drops, r.spirit_stones ? `+${r.spirit_stones} stones` : '', r.cultivation ? `+${r.cultivation} cultivation` : ''].filter(Boolean).join(', ') || 'nothing'}.` : '';
}

/** One step of auto-hunt on beast `m`: fight it, say how it went (no playback), reload the counts. */
async function huntStep(ctx, m) {
  const res = await ctx.attempt('dungeon', 'hunt', { monster: m.id }, { quiet: true });
  if (res.reply) {
    const r = res.reply;
    ctx.memo.dungeonMsg = `自动降服 Auto-hunt: ${r.name} — ${r.won ? `won. ${spoils(ctx, r)}` : 'lost.'}`;
    await load(ctx);
  }
  return res;
}

function hpBar(label, hp, max, cls) {
  const p = max > 0 ? Math.max(0, Math.min(1, hp / max)) : 0;
  return h(`div.hp.${cls}`, h('div.hp-label', label, h('span', `${fmt(Math.max(0, hp))} / ${fmt(max)}`)),
    h('div.bar', h('div.fill', { style: { width: `${(p * 100).toFixed(1)}%` } })));
}

function actionText(a, names) {
  if (a.text) return a.text.replace(/^Round \d+:\s*/, '');
  const who = a.actor === 'player' ? names.player : names.enemy;
  if (a.kind === 'stunned') return `${who} is stunned and loses the turn.`;
  if (a.dodged) return `${who} attacks — dodged!`;
  const bits = [`${who} ${a.kind === 'counter' ? 'counters' : 'strikes'} for ${fmt(a.damage)}`];
  if (a.crit) bits.push('crit');
  if (a.combo) bits.push('combo');
  if (a.stun) bits.push('stuns');
  if (a.heal) bits.push(`heals ${fmt(a.heal)}`);
  return `${bits.join(', ')}.`;
}

/** Plays a battle into `el` round by round; resolves when done (or skipped). */
export async function playBattle(ctx, el, battle, names, summary) {
  const token = {};
  ctx.memo.battleToken = token;
  let skip = false;
  const log = h('ol.battle-log', { 'data-testid': 'battle-log' });
  const bars = h('div.hp-bars');
  const skipBtn = h('button.ghost.small', { onclick: () => { skip = true; } }, '跳过 Skip');
  const result = h('p.battle-result', { 'data-testid': 'battle-result', hidden: true });
  el.replaceChildren(h('div.row.space', h('h3', bi('战斗', 'Battle')), skipBtn), bars, log, result);
  const draw = (ph, eh) => bars.replaceChildren(
    hpBar(names.player, ph, battle.player_max_health, 'me'), hpBar(names.enemy, eh, battle.enemy_max_health, 'foe'));
  draw(battle.player_max_health, battle.enemy_max_health);
  for (const round of battle.log) {
    if (ctx.memo.battleToken !== token) return;
    const li = h('li', h('b', `第${round.round}回合 Round ${round.round}`),
      h('ul', round.actions.map((a) => h('li', { class: a.actor === 'player' ? 'me' : 'foe' }, actionText(a, names)))));
    log.append(li);
    draw(round.player_health, round.enemy_health);
    if (!skip) {
      li.scrollIntoView?.({ block: 'nearest' });
      await sleep(350);
    }
  }
  draw(battle.player_health, battle.enemy_health);
  skipBtn.remove();
  const won = battle.winner === 'player';
  result.className = `battle-result ${won ? 'good' : 'bad'}`;
  result.dataset.outcome = won ? 'won' : 'lost';
  result.textContent = `${won ? '胜利 Victory!' : '败北 Defeat.'} ${battle.rounds} rounds${battle.timed_out ? ' (time ran out)' : ''}. ${summary ?? ''}`;
  result.hidden = false;
}

function rewardsText(ctx, r) {
  return Object.entries(r ?? {}).filter(([, v]) => v).map(([k, v]) => `+${fmt(v)} ${ctx.g.text(k)}`).join(', ');
}

export default {
  id: 'dungeon',
  loops: true,
  title: ['秘境', 'Dungeon'],
  enter(ctx) {
    ctx.memo.battleEl ??= h('div.card.battle', { 'data-testid': 'battle' });
    load(ctx);
  },
  render(ctx, root) {
    const st = ctx.memo.dungeon;
    const p = ctx.state.player;
    if (!st) {
      root.replaceChildren(h('div.card', h('p.muted', '进入秘境… Entering…')));
      return;
    }
    const me = p.player.name;
    const run = st.run;
    const diff = h('select#difficulty', { 'aria-label': 'difficulty', 'data-testid': 'difficulty' },
      st.difficulties.map((d) => h('option', { value: d.key, selected: (run?.difficulty ?? ctx.memo.difficulty ?? 'easy') === d.key },
        `${d.name} ${d.name_en} (enemies ×${d.enemy_mod}, rewards ×${d.reward_mod})`)));
    diff.addEventListener('change', () => { ctx.memo.difficulty = diff.value; });
    const start = h('button', { 'data-testid': 'dungeon-start', onclick: async () => {
      const restart = !!run && run.difficulty !== diff.value;
      const r = await ctx.act('dungeon', 'dungeon_start', { difficulty: diff.value, restart }, { button: start, label: '进入秘境 Entering the dungeon' });
      if (r) ctx.memo.dungeonMsg = r.message;
      await load(ctx);
    } }, bi(run ? '换难度重来' : '进入秘境', run ? 'Restart at this difficulty' : 'Start a run'));

    let runCard = null;
    if (run) {
      const fight = h('button', { 'data-testid': 'dungeon-fight', onclick: async () => {
        const r = await ctx.act('dungeon', 'dungeon_fight', {}, { button: fight, label: `挑战第${run.floor}层 Fighting floor ${run.floor}` });
        if (!r) return;
        const summary = r.won ? `Floor ${r.floor} cleared: ${rewardsText(ctx, r.rewards)}.` : 'The run is over.';
        await load(ctx);
        await playBattle(ctx, ctx.memo.battleEl, r.battle, { player: me, enemy: run.enemy.name }, summary);
      } }, bi(`挑战第${run.floor}层`, `Fight floor ${run.floor} (−${fmt(run.cost.spirit)} spirit, −${fmt(run.cost.spirit_stones)} stones)`));
      const refresh = h('button.ghost.small', { disabled: !run.offer.length || !run.refreshes_left, onclick: async () => {
        await ctx.act('dungeon', 'dungeon_refresh', {}, { button: refresh, label: '刷新 Re-rolling the buffs' });
        await load(ctx);
      } }, bi('刷新', `Re-roll (${run.refreshes_left} left)`));
      const e = run.enemy;
      runCard = h('div.card', { 'data-testid': 'run' },
        h('div.row.space', h('h3', bi(`第${run.floor}层`, `Floor ${run.floor}`)), h('span.tag', ctx.g.text(run.difficulty))),
        h('p.small', `守卫 ${e.name}: ❤ ${fmt(e.health)} · ⚔ ${fmt(e.attack)} · 🛡 ${fmt(e.defense)} · 速 ${fmt(e.speed)} · crit ${pct(e.crit_rate)} · dodge ${pct(e.dodge_rate)}`),
        run.offer.length ? [h('h4', bi('选择增益', 'Choose a blessing')), h('div.offer', { 'data-testid': 'offer' }, run.offer.map((b) => {
          const pick = h('button.buff', { class: `tier-${b.tier}`, 'data-testid': 'buff', onclick: async () => {
            await ctx.act('dungeon', 'dungeon_pick', { buff: b.id }, { button: pick, label: `选择 Taking ${b.name}` });
            await load(ctx);
          } }, h('b', b.name), h('small', b.name_en), h('span.small', b.description));
          return pick;
        })), refresh] : h('p.small.muted', 'Blessing chosen for this floor.'),
        run.buffs.length ? h('p.small', '已得增益 Blessings: ', run.buffs.map((b) => `${b.name} (${b.name_en})`).join(' · ')) : null,
        h('div.actions', fight));
    }

    const daily = (kind, list, info) => h('div.card',
      h('h3', kind === 'hunt' ? bi('降服妖兽', `Beast hunts ${info.used}/${info.cap}`) : bi('除魔卫道', `Demon slaying ${info.used}/${info.cap}`)),
      h('p.small.muted', `Each costs ${fmt(info.spirit_cost)} spirit. ${kind === 'hunt' ? 'Beasts drop herbs.' : 'Demons pay stones, cultivation and sometimes fragments, chests or eggs.'}`),
      h('ul.hunts', list.map((m) => {
        const b = h('button.small', { 'data-testid': `${kind}-${m.id}`, onclick: async () => {
          const r = await ctx.act('dungeon', kind, kind === 'hunt' ? { monster: m.id } : { target: m.id }, { button: b, label: `${kind === 'hunt' ? '降服' : '除魔'} ${m.name}` });
          if (!r) return;
          const summary = spoils(ctx, r);
          await load(ctx);
          await playBattle(ctx, ctx.memo.battleEl, r.battle, { player: me, enemy: r.name }, summary);
        } }, bi('挑战', 'Fight'));
        const auto = kind === 'hunt'
          ? loopButton(ctx, `auto-hunt-${m.id}`, ['自动降服', `Auto-hunt ${m.name_en ?? m.name}`], () => huntStep(ctx, m), { group: 'auto-hunt' })
          : null;
        return h('li.row.space', h('span', h('b', m.name), ' ', h('small.muted', m.name_en ?? ''), m.herb ? h('small', ` → ${ctx.g.text(`herb:${m.herb}`)}`) : null,
          m.attack ? h('small.muted', ` ⚔${fmt(m.attack)} ❤${fmt(m.health)}`) : null), h('span.row', b, auto));
      })));

    root.replaceChildren(
      h('div.card',
        h('h2', bi('秘境', 'Dungeon')),
        h('p', '最高层 Best floor ', h('b', st.best_floor), ' · 灵力 Spirit ', h('b', fmt(p.currencies.spirit ?? 0)), ' · 灵石 Stones ', h('b', fmt(p.currencies.spirit_stones ?? 0))),
        h('div.actions', diff, start),
        ctx.memo.dungeonMsg ? h('p.log', ctx.memo.dungeonMsg) : null),
      runCard,
      ctx.memo.battleEl,
      daily('hunt', st.beasts, st.hunts),
      daily('slay', st.demons, st.slays));
  },
};
