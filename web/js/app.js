// The player client: login, the shell (header, tabs, event feed) and the shared action runner.
import { createApi, session } from './api.js';
import { createLive } from './live.js';
import { Glossary, h, bi, fmt } from './ui.js';
import character from './screens/character.js';
import cultivation from './screens/cultivation.js';
import explore from './screens/explore.js';
import alchemy from './screens/alchemy.js';
import equipment from './screens/equipment.js';
import pets from './screens/pets.js';
import dungeon from './screens/dungeon.js';
import duel from './screens/duel.js';
import ranks from './screens/ranks.js';
import generic from './screens/generic.js';
import admin from './screens/admin.js';
import { describeEvent } from './events.js';
import { loopStrip, onLoopChange, stopAll } from './auto.js';

const SCREENS = [character, cultivation, explore, alchemy, equipment, pets, dungeon, duel, ranks, generic, admin];

/** The screens this account may open (the admin screen is for administrators only). */
const screens = () => SCREENS.filter((s) => s.visible?.(ctx) ?? true);
const $ = (sel) => document.querySelector(sel);

const ctx = {
  api: null,
  live: null,
  g: new Glossary(),
  state: { me: null, player: null, stats: null, catalog: [] },
  busy: 0,
  screen: null,
  /** Screen-local memory that survives re-renders (last replies, logs). */
  memo: {},
};

ctx.api = createApi({ onUnauthorized: () => loggedOut('Your session has ended. Please log in again.') });

// ---------------------------------------------------------------------------------------------------
// Notices: progress, errors and successes in words.

let noticeTimer = null;
function notice(kind, text) {
  const el = $('#notice');
  clearTimeout(noticeTimer);
  el.className = `notice ${kind}`;
  el.dataset.kind = kind;
  el.textContent = text;
  el.hidden = false;
  if (kind !== 'error') noticeTimer = setTimeout(() => { el.hidden = true; }, kind === 'busy' ? 15000 : 4000);
}
ctx.notice = notice;

/**
 * Whether the catalog marks `plugin/action` as a query: a read-only action whose reply changes nothing
 * on the server (no new state version, no events).
 */
ctx.isQuery = (plugin, action) => Boolean(ctx.state.catalog
  .find((c) => c.manifest.name === plugin)?.manifest.actions
  .find((a) => a.name === action)?.query);

/**
 * Runs a plugin action with visible progress and returns `{ reply }`, or `{ error }` (an `ApiError`
 * with `status`, `code`, `retryAfter`) when it failed; the failure is shown unless `quiet`. `label`
 * names what is happening, e.g. '打坐 Meditating'. After an action the player's state is reloaded
 * (`refresh`, default on); after a query it is not, since a query changes nothing.
 */
ctx.attempt = async (plugin, action, params = {}, { button, label, quiet = false, refresh } = {}) => {
  const query = ctx.isQuery(plugin, action);
  const reload = refresh ?? !query;
  const what = label ?? `${plugin} · ${action}`;
  if (button) {
    button.disabled = true;
    button.classList.add('working');
  }
  ctx.busy += 1;
  document.body.classList.add('busy');
  if (!quiet) notice('busy', `${what}…`);
  try {
    const res = await ctx.api.act(plugin, action, params, { query });
    if (!quiet) notice('ok', `${what} — done`);
    if (!ctx.live?.connected) for (const ev of res.events ?? []) addFeed(ev, true);
    if (reload) await ctx.refresh();
    return { reply: res.reply };
  } catch (e) {
    if (!quiet) notice('error', `${what}: ${e.message}`);
    return { error: e };
  } finally {
    ctx.busy -= 1;
    if (!ctx.busy) document.body.classList.remove('busy');
    if (button) {
      button.disabled = false;
      button.classList.remove('working');
    }
  }
};

/**
 * Runs a plugin action like `ctx.attempt` and returns the reply, or null when it failed (the
 * failure is shown, even when `quiet`).
 */
ctx.act = async (plugin, action, params = {}, opts = {}) => {
  const { reply, error } = await ctx.attempt(plugin, action, params, opts);
  if (error) {
    if (opts.quiet) notice('error', `${opts.label ?? `${plugin} · ${action}`}: ${error.message}`);
    return null;
  }
  return reply;
};

/** The reload in flight, if any (a log-out waits for it: its token is about to be revoked). */
let reloading = null;

/** Reloads the player's state and stats, then redraws the header and the current screen. */
ctx.refresh = async () => {
  if (!session.token) return;
  const load = Promise.all([ctx.api.player(), ctx.api.stats()]);
  reloading = load.catch(() => {});
  try {
    const [player, stats] = await load;
    ctx.state.player = player;
    ctx.state.stats = stats;
    ctx.state.receivedAt = performance.now();
  } catch (e) {
    if (e.status !== 401) notice('error', `Could not load your character: ${e.message}`);
    return;
  }
  renderHeader();
  renderScreen();
};

ctx.rerender = () => renderScreen();

// ---------------------------------------------------------------------------------------------------
// Login.

function showLogin(message) {
  $('#app').hidden = true;
  const root = $('#login');
  root.hidden = false;
  root.replaceChildren();
  const user = h('input#username', { name: 'username', autocomplete: 'username', required: true,
    minLength: 3, maxLength: 32, placeholder: 'e.g. qingyun_zi' });
  const pass = h('input#password', { name: 'password', type: 'password', autocomplete: 'current-password',
    required: true, placeholder: 'at least 8 characters' });
  const err = h('p.form-error', { role: 'alert', 'data-testid': 'login-error', hidden: !message }, message ?? '');
  async function go(kind, btn) {
    if (!user.value || !pass.value) {
      err.textContent = 'Please enter a name and a password.';
      err.hidden = false;
      return;
    }
    btn.disabled = true;
    btn.classList.add('working');
    err.hidden = true;
    try {
      const s = kind === 'register'
        ? await ctx.api.register(user.value.trim(), pass.value)
        : await ctx.api.login(user.value.trim(), pass.value);
      session.token = s.token;
      await enter();
    } catch (e) {
      err.textContent = e.status === 401 && kind === 'login' ? 'Wrong name or password.' : e.message;
      err.hidden = false;
    } finally {
      btn.disabled = false;
      btn.classList.remove('working');
    }
  }
  const loginBtn = h('button#login-btn', { type: 'submit' }, bi('登录', 'Log in'));
  const regBtn = h('button.ghost#register-btn', { type: 'button', onclick: () => go('register', regBtn) },
    bi('注册', 'Create account'));
  root.append(h('form.card.login-card', {
    onsubmit: (e) => {
      e.preventDefault();
      go('login', loginBtn);
    },
  },
  h('h1', '修仙 · Cauldron'),
  h('p.muted', 'An idle cultivation game. Walk the path from Qi Refining to immortality.'),
  h('label', bi('道号', 'Name'), user),
  h('label', bi('密码', 'Password'), pass),
  err,
  h('div.row', loginBtn, regBtn)));
  user.focus();
}

function loggedOut(message) {
  session.token = null;
  stopAll();
  ctx.live?.stop();
  ctx.state.me = null;
  showLogin(message);
}

async function logout() {
  // Nothing more is asked with this token once it is revoked: no loop step, no live event's
  // reload, and what is under way (an action and its reload, a reload) finishes first, for up to
  // 5 s.
  clearTimeout(refreshTimer);
  stopAll();
  ctx.live?.stop();
  const until = Date.now() + 5000;
  while (ctx.busy && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  await reloading;
  try {
    await ctx.api.logout();
  } catch {
    // The token is dropped either way.
  }
  loggedOut();
}

// ---------------------------------------------------------------------------------------------------
// The shell.

async function enter() {
  try {
    const [me, catalog] = await Promise.all([ctx.api.me(), ctx.api.catalog()]);
    ctx.state.me = me;
    ctx.state.catalog = catalog;
    ctx.g = new Glossary();
    ctx.g.load(catalog);
  } catch (e) {
    if (e.status === 401) return loggedOut('Your session has ended. Please log in again.');
    $('#login').hidden = true;
    return showLogin(`Cannot load the game: ${e.message}`);
  }
  $('#login').hidden = true;
  $('#app').hidden = false;
  buildNav();
  ctx.live.start(session.token);
  pollOnline();
  await ctx.refresh();
}

function buildNav() {
  const nav = $('#nav');
  nav.replaceChildren(...screens().map((s) => h('a', { href: `#/${s.id}`, 'data-screen': s.id,
    'data-testid': `tab-${s.id}` }, bi(s.title[0], s.title[1]))));
}

function currentScreen() {
  const id = location.hash.replace(/^#\/?/, '') || 'character';
  return screens().find((s) => s.id === id) ?? SCREENS[0];
}

function renderScreen() {
  if (!ctx.state.player) return;
  const screen = currentScreen();
  const main = $('#screen');
  if (ctx.screen !== screen) {
    ctx.screen?.leave?.(ctx);
    ctx.screen = screen;
    main.replaceChildren();
    main.dataset.screen = screen.id;
    screen.enter?.(ctx);
  }
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.dataset.screen === screen.id);
    if (a.dataset.screen === screen.id) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  screen.render(ctx, main);
}

function renderHeader() {
  const p = ctx.state.player;
  if (!p) return;
  const level = p.stats.level ?? 1;
  const [cn, en] = ctx.g.realm(level);
  $('#who').replaceChildren(h('strong', { 'data-testid': 'display-name' }, p.player.name), ' ', h('span.realm', { 'data-testid': 'realm' },
    bi(cn, en)));
  $('#purse').replaceChildren(
    h('span.coin', { title: 'Spirit 灵力 (counting up at your income rate)' }, '灵 ', h('b', { 'data-testid': 'spirit' }, fmt(spiritNow()))),
    h('span.coin', { title: 'Spirit stones 灵石' }, '石 ', h('b', fmt(p.currencies.spirit_stones ?? 0))));
  renderLoops();
}

/**
 * The spirit a player would have if they gathered now: the last state the server sent, plus the
 * income since the cultivation plugin last accrued it (its rate from the effective stats, its
 * clock from the server's game time). Every server reply replaces the estimate with the truth.
 */
function spiritNow() {
  const p = ctx.state.player;
  const base = p?.currencies?.spirit ?? 0;
  const cult = p?.plugin_state?.cultivation;
  const rate = ctx.state.stats?.effective?.spirit_rate ?? p?.stats?.spirit_rate ?? 0;
  if (!cult || typeof cult.last_accrual_ms !== 'number' || typeof p.now_ms !== 'number' || !(rate > 0)) return base;
  const now = p.now_ms + (performance.now() - (ctx.state.receivedAt ?? performance.now()));
  const seconds = Math.max(0, now - cult.last_accrual_ms) / 1000;
  const fraction = Number.isFinite(cult.spirit_fraction) ? cult.spirit_fraction : 0;
  return base + Math.floor(rate * seconds + fraction);
}

// The header's spirit counts up once a second between server replies.
setInterval(() => {
  const el = document.querySelector('[data-testid=spirit]');
  if (el && ctx.state.player) el.textContent = fmt(spiritNow());
}, 1000);

/** The running and paused idle loops, in the header so that they can be stopped from any screen. */
function renderLoops() {
  $('#loops').replaceChildren(...loopStrip());
}

onLoopChange(() => {
  renderLoops();
  if (ctx.screen?.loops) renderScreen();
});

let onlineTimer = null;
async function pollOnline() {
  clearTimeout(onlineTimer);
  try {
    const o = await ctx.api.online();
    setOnline(o.count);
  } catch {
    $('#online').textContent = '在线 ? online';
  }
  if (ctx.state.me) onlineTimer = setTimeout(pollOnline, 20000);
}

function setOnline(n) {
  $('#online').replaceChildren('在线 ', h('b', { 'data-testid': 'online-count' }, fmt(n)), ' online');
}

// ---------------------------------------------------------------------------------------------------
// The live feed.

function addFeed(ev, local = false) {
  const list = $('#feed-list');
  const d = describeEvent(ev, ctx);
  const item = h('li', { class: `feed-${d.tone ?? 'info'}`, 'data-topic': ev.topic ?? '',
    'data-scope': ev.scope ?? '', 'data-testid': 'feed-item' },
  h('time', new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })),
  h('span', d.text), local ? null : h('span.tag', '●'));
  list.prepend(item);
  while (list.children.length > 100) list.lastChild.remove();
  $('#feed-empty').hidden = true;
}

// Every server message of docs/websocket.md: `event`, `presence`, `plugin_reloaded`,
// `plugin_unloaded`, `action_result`, `pong` and `error`.
function onLive(msg) {
  switch (msg.type) {
    case 'event':
      if (!msg.event) break;
      addFeed(msg.event);
      if (msg.event.player_id === ctx.state.player?.player?.id) scheduleRefresh();
      break;
    case 'presence':
      if (typeof msg.online === 'number') setOnline(msg.online);
      break;
    case 'plugin_reloaded':
      addFeed({ plugin: msg.name, topic: 'plugin_reloaded', scope: 'global', data: { plugin: msg.name, version: msg.version } });
      reloadCatalog();
      break;
    case 'plugin_unloaded':
      addFeed({ plugin: msg.name, topic: 'plugin_unloaded', scope: 'global', data: { plugin: msg.name } });
      reloadCatalog();
      break;
    case 'action_result':
      // Actions sent over the socket: a success changed the player's state.
      if (msg.status === 200) scheduleRefresh();
      else console.debug(`live: action ${msg.id} refused (${msg.status} ${msg.error?.code}): ${msg.error?.message}`);
      break;
    case 'error':
      console.debug(`live: the server could not act on a message (${msg.error?.code}): ${msg.error?.message}`);
      break;
    case 'pong':
      break;
    default:
      console.debug(`live: ignoring a message of unknown type ${msg.type}`);
      break;
  }
}

/** Reloads the catalog after a plugin change, so forms and names follow the plugins serving now. */
function reloadCatalog() {
  ctx.api.catalog().then((c) => {
    ctx.state.catalog = c;
    ctx.g = new Glossary();
    ctx.g.load(c);
    ctx.rerender();
  }).catch(() => {});
}

let refreshTimer = null;
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => { if (!ctx.busy) ctx.refresh(); }, 300);
}

function liveStatus(status) {
  const el = $('#live');
  el.dataset.status = status;
  el.title = {
    open: 'Live updates on',
    connecting: 'Connecting to live updates…',
    retrying: 'Live updates unavailable; retrying',
    refused: 'Live updates refused',
    off: 'Live updates off',
  }[status] ?? status;
  el.textContent = status === 'open' ? '● 实时 Live' : '○ 实时 Live';
}

// ---------------------------------------------------------------------------------------------------

function boot() {
  ctx.live = createLive({ onMessage: onLive, onStatus: liveStatus });
  $('#logout').addEventListener('click', logout);
  $('#notice').addEventListener('click', () => { $('#notice').hidden = true; });
  window.addEventListener('hashchange', () => renderScreen());
  if (session.token) enter();
  else showLogin();
}

boot();
