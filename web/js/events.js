// Turns a game event ({plugin, topic, scope, player_id, data}) into a sentence for the feed.
import { fmt } from './ui.js';

export function describeEvent(ev, ctx) {
  const g = ctx.g;
  const d = ev.data ?? {};
  const who = d.player ?? d.name_of_player ?? (ev.player_id === ctx.state.player?.player?.id ? '你 You' : `道友 #${ev.player_id ?? '?'}`);
  switch (ev.topic) {
    case 'breakthrough': {
      const level = d.level ?? d.to ?? d.new_level;
      const [cn, en] = g.realm(level);
      return { tone: 'good', text: `${who} 突破 broke through to ${cn} (${en})` };
    }
    case 'tribulation':
      return { tone: d.success ? 'good' : 'bad', text: `${who} 渡劫 ${d.success ? '成功 survived' : '失败 failed'} the heavenly tribulation` };
    case 'exploration':
      return { tone: 'good', text: `${who} 探索 found: ${d.name ?? d.event ?? ''} ${d.gloss ? `(${d.gloss})` : ''}` };
    case 'recipe_unlocked':
      return { tone: 'good', text: `丹方解锁 Recipe unlocked: ${g.text(d.recipe ?? d.name)}` };
    case 'equipment_rare_drop':
    case 'rare_pet':
      return { tone: 'rare', text: `${who} 获得 obtained ${d.name ?? ''} — ${g.text(d.quality ?? '')}` };
    case 'dungeon_floor_cleared':
      return { tone: 'good', text: `${who} 秘境 cleared dungeon floor ${d.floor} (${d.difficulty ?? ''})` };
    case 'duel_won':
      return { tone: 'good', text: `${who} 斗法 won a duel against ${d.opponent_name ?? 'a rival'} in ${d.rounds} rounds${d.multiplier > 1 ? ` (rewards ×${d.multiplier})` : ''}` };
    case 'plugin_reloaded':
      return { tone: 'info', text: `玩法更新 The ${d.plugin ?? ev.plugin} rules were updated${d.version ? ` to ${d.version}` : ''}` };
    case 'plugin_unloaded':
      return { tone: 'bad', text: `玩法下线 The ${d.plugin ?? ev.plugin} rules were taken offline` };
    default: {
      const bits = Object.entries(d).filter(([, v]) => typeof v !== 'object').slice(0, 4)
        .map(([k, v]) => `${k}: ${typeof v === 'number' ? fmt(v, 2) : v}`);
      return { tone: 'info', text: `[${ev.plugin ?? '?'}] ${ev.topic ?? 'event'}${bits.length ? ` — ${bits.join(', ')}` : ''}` };
    }
  }
}
