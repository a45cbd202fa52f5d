// 万法 All actions: forms built from every plugin's manifest (ParamSpec), so a new plugin is playable
// without touching the client.
import { h, bi } from '../ui.js';

function field(ctx, spec) {
  const id = `p-${spec.name}`;
  let input;
  switch (spec.type) {
    case 'integer':
    case 'number':
    case 'player':
      input = h('input', { type: 'number', name: spec.name, id, step: spec.type === 'number' ? 'any' : 1, required: spec.required });
      break;
    case 'bool':
      input = h('input', { type: 'checkbox', name: spec.name, id });
      break;
    case 'entity': {
      const ents = ctx.state.player.entities.filter((e) => !spec.of || e.kind === spec.of);
      input = h('select', { name: spec.name, id, required: spec.required },
        spec.required ? null : h('option', { value: '' }, '—'),
        ents.map((e) => h('option', { value: e.id }, `${e.data?.name ?? e.id}${e.data?.quality ? ` (${ctx.g.text(e.data.quality)})` : ''}${e.data?.level ? ` Lv${e.data.level}` : ''}`)));
      break;
    }
    default:
      input = spec.of
        ? h('select', { name: spec.name, id, required: spec.required }, spec.required ? null : h('option', { value: '' }, '—'),
          spec.of.split(',').map((v) => h('option', { value: v.trim() }, ctx.g.text(v.trim()))))
        : h('input', { type: 'text', name: spec.name, id, required: spec.required });
  }
  input.dataset.type = spec.type;
  return h('label.field', { for: id }, h('span', spec.name, spec.required ? ' *' : '', spec.description ? h('small.muted', ` ${spec.description}`) : null), input);
}

function readParams(form, specs) {
  const params = {};
  for (const spec of specs) {
    const el = form.elements.namedItem(spec.name);
    if (!el) continue;
    if (spec.type === 'bool') {
      params[spec.name] = el.checked;
      continue;
    }
    if (el.value === '') continue;
    params[spec.name] = spec.type === 'integer' || spec.type === 'player' ? parseInt(el.value, 10) : spec.type === 'number' ? Number(el.value) : el.value;
  }
  return params;
}

export default {
  id: 'all',
  title: ['万法', 'All actions'],
  render(ctx, root) {
    const catalog = ctx.state.catalog;
    const sel = ctx.memo.generic ?? {};
    const plugin = catalog.find((c) => c.manifest.name === sel.plugin) ?? catalog[0];
    if (!plugin) {
      root.replaceChildren(h('div.card', h('p.muted', 'No plugins are loaded.')));
      return;
    }
    const m = plugin.manifest;
    const action = m.actions.find((a) => a.name === sel.action) ?? m.actions[0];
    const out = h('pre.reply', { 'data-testid': 'generic-reply' }, ctx.memo.genericReply ?? '');
    const submit = h('button', { type: 'submit', 'data-testid': 'generic-run' }, bi('施展', `Run ${action?.name ?? ''}`));
    const form = action ? h('form.card', { 'data-testid': 'generic-form', onsubmit: async (e) => {
      e.preventDefault();
      const params = readParams(form, action.params);
      const reply = await ctx.act(m.name, action.name, params, { button: submit, label: `${m.title || m.name} · ${action.title || action.name}` });
      if (reply !== null) {
        ctx.memo.genericReply = JSON.stringify(reply, null, 2);
        ctx.rerender();
      }
    } },
    h('h3', action.title || action.name, h('small.muted', ` ${m.name}/${action.name}${action.query ? ' · read-only' : ''}`)),
    action.description ? h('p', action.description) : null,
    action.params.length ? action.params.map((s) => field(ctx, s)) : h('p.muted', 'No parameters.'),
    h('div.actions', submit)) : h('p.muted', 'This plugin has no actions.');
    root.replaceChildren(
      h('div.card',
        h('h2', bi('万法', 'Every action of every plugin')),
        h('p.small.muted', 'Built from the plugins\' manifests: a newly installed plugin shows up here at once.'),
        h('div.tabs', { 'data-testid': 'plugins' }, catalog.map((c) => h('button.small', { class: c === plugin ? 'active' : 'ghost', 'data-plugin': c.manifest.name,
          onclick: () => { ctx.memo.generic = { plugin: c.manifest.name }; ctx.memo.genericReply = ''; ctx.rerender(); } },
        bi(c.manifest.title || c.manifest.name, `${c.manifest.name} ${c.version}`)))),
        m.description ? h('p', m.description) : null,
        h('div.tabs', m.actions.map((a) => h('button.small', { class: a === action ? 'active' : 'ghost', 'data-action': a.name,
          onclick: () => { ctx.memo.generic = { plugin: m.name, action: a.name }; ctx.memo.genericReply = ''; ctx.rerender(); } },
        a.title || a.name)))),
      form,
      h('div.card', h('h3', bi('回应', 'Reply')), out));
  },
};
