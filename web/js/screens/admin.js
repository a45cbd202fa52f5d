// 管理 Plugin administration, for admin accounts: what each plugin serves on the cluster (version,
// digest, load time, refused loads, its canary and share, its shadow and what the shadow runs
// found), uploading a new version (a wasm module,
// or a bundle of module and content tables) for everyone or as a canary for a share of the players,
// widening, promoting or ending a canary, attaching a stored version as a shadow, rolling back to
// the version before, and unloading.
import { h, bi, fmt, confirmDialog } from '../ui.js';

/** The media type of a plugin bundle (module and content tables in one file). */
const BUNDLE_TYPE = 'application/vnd.cauldron.bundle';

async function load(ctx) {
  try {
    ctx.memo.adminPlugins = await ctx.api.admin.plugins();
    ctx.memo.adminError = null;
  } catch (e) {
    ctx.memo.adminError = e.message;
  }
  ctx.rerender();
}

/** Runs an admin request with a visible result, then reloads the list. */
async function run(ctx, label, button, fn) {
  button.disabled = true;
  ctx.notice('busy', `${label}…`);
  try {
    await fn();
    ctx.notice('ok', `${label} — done`);
  } catch (e) {
    ctx.notice('error', `${label}: ${e.message}`);
  } finally {
    button.disabled = false;
  }
  await load(ctx);
}

function when(ms) {
  return ms ? new Date(ms).toLocaleString() : '—';
}

export default {
  id: 'admin',
  title: ['管理', 'Admin'],
  /** Only administrators see this screen. */
  visible: (ctx) => ctx.state.me?.account?.role === 'admin',
  enter(ctx) {
    load(ctx);
  },
  render(ctx, root) {
    const plugins = ctx.memo.adminPlugins;
    const rows = (plugins ?? []).map((p) => {
      const rollback = h('button.ghost.small', { type: 'button', 'data-testid': `admin-rollback-${p.name}`,
        onclick: async () => {
          const ok = await confirmDialog({ title: `回滚 Roll back ${p.name}`, confirm: '回滚 Roll back',
            body: h('p', `Serve the version of ${p.name} that was active before ${p.version ?? 'this one'}, on every host, content tables included.`) });
          if (ok) await run(ctx, `Rolling back ${p.name}`, rollback, () => ctx.api.admin.rollback(p.name));
        } }, '回滚 Roll back');
      const unload = h('button.danger.small', { type: 'button', 'data-testid': `admin-unload-${p.name}`,
        onclick: async () => {
          const ok = await confirmDialog({ title: `卸载 Unload ${p.name}`, confirm: '卸载 Unload', danger: true,
            body: h('p', `Stop serving ${p.name} on every host. Its stored versions are kept; players cannot use its actions until it is uploaded or rolled back again.`) });
          if (ok) await run(ctx, `Unloading ${p.name}`, unload, () => ctx.api.admin.unload(p.name));
        } }, '卸载 Unload');
      const c = p.canary;
      let canaryCell = h('span.muted', 'none');
      if (c) {
        const share = h('input', { type: 'number', min: 0, max: 100, step: 1, value: c.share_percent,
          'data-testid': `admin-canary-share-${p.name}`, style: { width: '4.5rem' } });
        const widen = h('button.ghost.small', { type: 'button', 'data-testid': `admin-canary-set-${p.name}`,
          onclick: () => run(ctx, `Canary of ${p.name} to ${share.value} %`, widen,
            () => ctx.api.admin.canary(p.name, c.sha256, share.value)) }, '设定 Set');
        const promote = h('button.small', { type: 'button', 'data-testid': `admin-canary-promote-${p.name}`,
          onclick: () => run(ctx, `Promoting ${p.name} ${c.version}`, promote, () => ctx.api.admin.promote(p.name)) },
        '全量 Promote');
        const end = h('button.ghost.small', { type: 'button', 'data-testid': `admin-canary-end-${p.name}`,
          onclick: () => run(ctx, `Ending the canary of ${p.name}`, end, () => ctx.api.admin.endCanary(p.name)) },
        '撤回 Roll back');
        canaryCell = h('div', { 'data-testid': `admin-canary-${p.name}` },
          h('div', h('b', c.version), ' ', h('code', { title: c.sha256 }, c.sha256.slice(0, 12)),
            ` · ${fmt(c.share_percent, 2)} % of players`),
          h('div.row', share, '%', widen, promote, end));
      }
      const sh = p.shadow;
      const runs = sh ? p.shadow_runs?.[sh.version] : null;
      let shadowCell;
      if (sh) {
        const detach = h('button.ghost.small', { type: 'button', 'data-testid': `admin-shadow-end-${p.name}`,
          onclick: () => run(ctx, `Detaching the shadow of ${p.name}`, detach, () => ctx.api.admin.endShadow(p.name)) },
        '停止 Detach');
        shadowCell = h('div', { 'data-testid': `admin-shadow-${p.name}` },
          h('div', h('b', sh.version), ` · ${fmt(sh.share_percent, 2)} % of calls`),
          h('div.small', runs
            ? `${fmt(runs.identical)} identical · ${fmt(runs.diverged)} diverged · ${fmt(runs.faulted)} faulted · ${fmt(runs.dropped)} dropped (this host)`
            : 'no call compared yet'),
          detach);
      } else {
        const version = h('input', { placeholder: 'stored digest (sha256)', maxLength: 64, style: { width: '9rem' },
          'data-testid': `admin-shadow-version-${p.name}` });
        const share = h('input', { type: 'number', min: 0, max: 100, step: 1, value: 10, style: { width: '4.5rem' } });
        const attach = h('button.ghost.small', { type: 'button', 'data-testid': `admin-shadow-start-${p.name}`,
          onclick: () => run(ctx, `Shadowing ${p.name} with ${version.value}`, attach,
            () => ctx.api.admin.shadow(p.name, version.value, share.value)) }, '影子 Shadow');
        shadowCell = h('div.row', version, share, '%', attach);
      }
      return h('tr', { 'data-testid': 'admin-plugin', 'data-name': p.name },
        h('td', h('b', p.name)),
        h('td', p.version ?? h('span.muted', 'not serving')),
        h('td', h('code', { title: p.sha256 ?? '' }, (p.sha256 ?? '—').slice(0, 12))),
        h('td.small', when(p.loaded_at_ms)),
        h('td.small', canaryCell),
        h('td.small', shadowCell),
        h('td.small', p.last_error ? h('span.bad', { 'data-testid': 'admin-error' }, p.last_error) : h('span.muted', 'none'),
          p.refused ? h('span.muted', ` (${fmt(p.refused)} refused since start)`) : null),
        h('td', h('div.row', rollback, unload)));
    });

    const name = h('input', { 'data-testid': 'admin-upload-name', placeholder: 'plugin name', required: true,
      pattern: '[a-z0-9_-]{1,64}', maxLength: 64 });
    const file = h('input', { type: 'file', 'data-testid': 'admin-upload-file', accept: '.wasm,.bundle',
      onchange: () => {
        const f = file.files[0];
        if (f && !name.value) name.value = f.name.replace(/\.(wasm|bundle)$/, '');
      } });
    const chosen = () => {
      const f = file.files[0];
      if (!f || !name.value) {
        ctx.notice('error', 'Choose a .wasm or .bundle file and the plugin name.');
        return null;
      }
      return { f, type: f.name.endsWith('.bundle') ? BUNDLE_TYPE : 'application/wasm' };
    };
    const upload = h('button', { type: 'button', 'data-testid': 'admin-upload', onclick: async () => {
      const c = chosen();
      if (c) await run(ctx, `Uploading ${name.value}`, upload, () => ctx.api.admin.upload(name.value, c.f, c.type));
    } }, '上传 Upload for everyone');
    const share = h('input', { type: 'number', min: 0, max: 100, step: 1, value: 10, 'data-testid': 'admin-canary-new-share',
      style: { width: '4.5rem' } });
    const canary = h('button.ghost', { type: 'button', 'data-testid': 'admin-canary-start', onclick: async () => {
      const c = chosen();
      if (c) {
        await run(ctx, `Canary of ${name.value} for ${share.value} %`, canary, async () => {
          const stored = await ctx.api.admin.store(name.value, c.f, c.type);
          await ctx.api.admin.canary(name.value, stored.stored.sha256, share.value);
        });
      }
    } }, '灰度 As a canary for');

    root.replaceChildren(
      h('div.card',
        h('div.row.space', h('h2', bi('插件', 'Plugins')),
          h('button.ghost.small', { type: 'button', onclick: () => load(ctx) }, '刷新 Refresh')),
        ctx.memo.adminError ? h('p.bad', ctx.memo.adminError) : null,
        plugins ? h('table.admin', h('thead', h('tr', ['Plugin', 'Version', 'Digest', 'Loaded', 'Canary', 'Shadow', 'Refused loads', ''].map((t) => h('th', t)))),
          h('tbody', rows)) : h('p.muted', 'Loading…')),
      h('div.card',
        h('h3', bi('上传新版本', 'Upload a version')),
        h('p.small.muted', 'A bundle (.bundle, from `cauldron plugin build`) carries the module and its content tables; a bare .wasm runs with the content tables on the hosts\' disks. The host validates it like a hot reload, stores it and rolls it out to every host.'),
        h('div.row', name, file, upload, canary, share, '% of players')));
  },
};
