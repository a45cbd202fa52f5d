// Idle loops (auto-meditate, auto-explore, auto-formation, auto-hunt): one action again and again
// until the player stops it. A loop keeps running while the player browses other screens; the
// header shows every running or paused loop with its stop button. A rejection (the rules say no:
// not enough spirit, the daily cap, too little cultivation) or any other failure pauses the loop
// and says why; a 429 waits the server's Retry-After and carries on.
import { h, bi } from './ui.js';

/** How long to wait between two steps of a loop, ms: well under the server's action rate limit. */
const PACE_MS = 1200;

/** The loops by id. */
const loops = new Map();
let changed = () => {};

/** Calls `fn` whenever a loop starts, steps, pauses or stops (the shell redraws the header). */
export function onLoopChange(fn) {
  changed = fn;
}

/** The loop `id`, if it exists (running, waiting or paused). */
export function loop(id) {
  return loops.get(id);
}

/** Whether loop `id` is running (not paused, not stopped). */
export function running(id) {
  const l = loops.get(id);
  return Boolean(l && l.state !== 'paused');
}

/**
 * Starts loop `id` (stopping any earlier loop with that id, and every loop of the same `group`:
 * one auto-hunt at a time). `step()` runs one action through `ctx.attempt` and returns its
 * `{ reply, error }`; `label` is [Chinese, English].
 */
export function start(ctx, id, label, step, group = id) {
  for (const other of [...loops.values()]) if (other.id === id || other.group === group) stop(other.id);
  const l = { id, group, label, state: 'running', count: 0, reason: '', until: 0, token: {} };
  loops.set(id, l);
  changed();
  run(ctx, l, step);
  return l;
}

/** Stops loop `id` at once (a step in flight finishes, nothing more is sent). */
export function stop(id) {
  const l = loops.get(id);
  if (!l) return;
  l.token = null;
  loops.delete(id);
  changed();
}

/** Stops every loop (at log-out). */
export function stopAll() {
  for (const id of [...loops.keys()]) stop(id);
}

async function run(ctx, l, step) {
  const token = l.token;
  const alive = () => l.token === token && loops.get(l.id) === l;
  while (alive()) {
    const { reply, error } = await step();
    if (!alive()) return;
    if (error?.status === 429) {
      const secs = Number(error.retryAfter) > 0 ? Number(error.retryAfter) : 5;
      l.state = 'waiting';
      l.until = Date.now() + secs * 1000;
      l.reason = `服务器请稍候 The server asks to wait ${secs} s`;
      changed();
      await pause(secs * 1000, alive);
      if (!alive()) return;
      l.state = 'running';
      l.reason = '';
      changed();
      continue;
    }
    if (error) {
      l.state = 'paused';
      l.reason = error.message;
      changed();
      return;
    }
    l.count += 1;
    l.last = reply;
    changed();
    await pause(PACE_MS, alive);
  }
}

/** Sleeps `ms`, waking early when the loop stops. */
async function pause(ms, alive) {
  const end = Date.now() + ms;
  while (alive() && Date.now() < end) {
    await new Promise((r) => setTimeout(r, Math.min(250, end - Date.now())));
  }
}

/** The header's strip: one chip per loop, with what it is doing and its stop button. */
export function loopStrip() {
  return [...loops.values()].map((l) => h('span.loop', {
    'data-testid': `loop-${l.id}`, 'data-state': l.state, title: l.reason || undefined },
  l.state === 'paused' ? '⏸ ' : '⟳ ', bi(l.label[0], `${l.label[1]} ×${l.count}`),
  l.state === 'paused' ? h('span.loop-reason', { 'data-testid': `loop-${l.id}-reason` }, ` — ${l.reason}`) : null,
  l.state === 'waiting' ? h('span.loop-reason', ` — ${l.reason}`) : null,
  h('button.ghost.small', { type: 'button', 'data-testid': `loop-${l.id}-stop`, onclick: () => stop(l.id) },
    l.state === 'paused' ? '关闭 Close' : '停止 Stop')));
}

/**
 * The start/stop button for loop `id` on a screen: "auto" while stopped, "stop (n)" while running,
 * "resume" while paused (with the reason beside it).
 */
export function loopButton(ctx, id, label, step, { disabled = false, group = id } = {}) {
  const l = loops.get(id);
  if (l && l.state !== 'paused') {
    return h('button.danger', { type: 'button', 'data-testid': `${id}-stop`, onclick: () => stop(id) },
      bi(`停止${label[0]}`, `Stop ${label[1].toLowerCase()} (${l.count})`));
  }
  return h('button.ghost', { type: 'button', 'data-testid': `${id}-start`, disabled,
    onclick: () => start(ctx, id, label, step, group) },
  bi(label[0], l ? `${label[1]} — resume` : label[1]));
}
