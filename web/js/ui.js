// DOM helpers, number formatting and the glossary (Chinese names with English glosses).

/** h('div.card#id', {onclick, class, ...}, ...children) */
export function h(spec, attrs, ...children) {
  if (attrs === null || typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs)) {
    children.unshift(attrs);
    attrs = {};
  }
  const [, tag = 'div', rest = ''] = spec.match(/^([a-z0-9]*)(.*)$/i);
  const el = document.createElement(tag || 'div');
  for (const part of rest.match(/[.#][^.#]+/g) ?? []) {
    if (part[0] === '.') el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className += ` ${v}`;
    else if (k === 'style' && typeof v === 'object') {
      for (const [sk, sv] of Object.entries(v)) {
        if (sk.startsWith('--')) el.style.setProperty(sk, sv);
        else el.style[sk] = sv;
      }
    }
    else if (k === 'text') el.textContent = v;
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Two-line bilingual label: 打坐 <small>Meditate</small>. */
export function bi(cn, en) {
  return h('span.bi', cn, en && cn !== en ? h('small', en) : null);
}

export function fmt(n, digits = 0) {
  if (n === undefined || n === null || Number.isNaN(n)) return '—';
  const v = Number(n);
  if (Math.abs(v) >= 1e8) return `${(v / 1e8).toFixed(2)}亿`;
  return v.toLocaleString('en-US', { maximumFractionDigits: digits });
}

export function pct(x, digits = 1) {
  return `${(Number(x) * 100).toFixed(digits).replace(/\.0+$/, '')}%`;
}

/** Renders a stat value: rates as percentages, flat stats as whole numbers. */
export function statValue(key, v) {
  if (RATE_STATS.has(key) || (Math.abs(v) < 1 && v !== 0 && !FLAT_STATS.has(key))) return pct(v, 1);
  return fmt(v, 2);
}

const FLAT_STATS = new Set(['attack', 'health', 'defense', 'speed', 'level', 'cultivation', 'max_cultivation']);
const RATE_STATS = new Set(['du_jie_rate', 'crit_rate', 'combo_rate', 'counter_rate', 'stun_rate', 'dodge_rate',
  'vampire_rate']);

// Names the plugins' content tables do not spell out; the rest comes from the catalog.
const BASE_NAMES = {
  spirit: ['灵力', 'Spirit'],
  spirit_stones: ['灵石', 'Spirit stones'],
  reinforce_stones: ['强化石', 'Reinforce stones'],
  refinement_stones: ['洗练石', 'Refinement stones'],
  pet_essence: ['灵宠精华', 'Pet essence'],
  level: ['等级', 'Level'],
  cultivation: ['修为', 'Cultivation'],
  max_cultivation: ['突破所需', 'Cultivation to break through'],
  attack: ['攻击', 'Attack'],
  health: ['生命', 'Health'],
  defense: ['防御', 'Defense'],
  speed: ['速度', 'Speed'],
  spirit_rate: ['灵力速率', 'Spirit per second'],
  cultivation_rate: ['修炼速率', 'Cultivation rate'],
  du_jie_rate: ['渡劫成功率', 'Tribulation chance'],
  luck: ['福缘', 'Luck'],
  explorations: ['探索次数', 'Explorations'],
  pills_crafted: ['炼丹次数', 'Pills crafted'],
  pills_eaten: ['服丹次数', 'Pills eaten'],
  best_floor: ['秘境最高层', 'Best dungeon floor'],
  'chest:equipment': ['装备宝箱', 'Equipment chest'],
  'egg:pet': ['灵宠蛋', 'Pet egg'],
  realm: ['境界榜', 'Realm'],
  equipment: ['装备榜', 'Equipment'],
  pets: ['灵宠榜', 'Pets'],
  dungeon: ['秘境榜', 'Dungeon'],
  duel: ['斗法榜', 'Duel wins'],
  common: ['凡品', 'Common'],
  uncommon: ['良品', 'Uncommon'],
  rare: ['上品', 'Rare'],
  epic: ['极品', 'Epic'],
  legendary: ['仙品', 'Legendary'],
  mythic: ['神品', 'Mythic'],
};

export const QUALITY_ORDER = ['common', 'uncommon', 'rare', 'epic', 'legendary', 'mythic'];

/** The glossary: id -> [Chinese, English], filled from the catalog's content tables. */
export class Glossary {
  constructor() {
    this.map = new Map(Object.entries(BASE_NAMES));
    this.colours = {};
    this.realms = null;
  }

  load(catalog) {
    for (const entry of catalog) {
      const c = entry.content ?? {};
      for (const table of Object.values(c)) this.scan(table);
      const m = entry.manifest;
      if (m?.name && m.title) this.map.set(`plugin:${m.name}`, [m.title, m.name]);
      if (c.realms) this.realms = c.realms;
    }
    for (const entry of catalog) {
      const recipes = entry.content?.recipes?.recipes;
      for (const r of recipes ?? []) {
        this.map.set(`pill:${r.id}`, [r.name, r.name_en]);
        this.map.set(`fragment:${r.id}`, [`${r.name}残页`, `${r.name_en} fragment`]);
        this.map.set(r.id, [r.name, r.name_en]);
      }
    }
  }

  // Walks a content table and records every {id|key, name, name_en|gloss} it finds.
  scan(node, prefix = '') {
    if (Array.isArray(node)) {
      for (const x of node) this.scan(x, prefix);
      return;
    }
    if (!node || typeof node !== 'object') return;
    const id = node.id ?? node.key;
    const en = node.name_en ?? node.gloss;
    if (id !== undefined && typeof node.name === 'string' && !this.map.has(String(id))) {
      this.map.set(String(id), [node.name, en ?? '']);
      if (node.colour) this.colours[String(id)] = node.colour;
    }
    if (id !== undefined && node.colour && QUALITY_ORDER.includes(String(id))) {
      this.colours[String(id)] = node.colour;
      if (node.name) this.map.set(String(id), [node.name, en ?? '']);
    }
    for (const v of Object.values(node)) if (v && typeof v === 'object') this.scan(v, prefix);
  }

  /** [cn, en] for an id like `spirit_stones`, `herb:spirit_grass`, `pill:x`. */
  pair(id) {
    if (this.map.has(id)) return this.map.get(id);
    const [kind, rest] = String(id).split(':');
    if (rest && this.map.has(rest)) {
      const [cn, en] = this.map.get(rest);
      return [cn, en];
    }
    return [id, ''];
  }

  label(id) {
    const [cn, en] = this.pair(id);
    return bi(cn, en);
  }

  text(id) {
    const [cn, en] = this.pair(id);
    return en && en !== cn ? `${cn} (${en})` : cn;
  }

  /** The realm name of a level from the cultivation content table. */
  realm(level) {
    const r = this.realms;
    if (!r?.majors?.length || !level) return [`Level ${level ?? '?'}`, ''];
    const i = Math.floor((level - 1) / 9);
    const n = ((level - 1) % 9) + 1;
    const major = r.majors[Math.min(i, r.majors.length - 1)];
    const layer = r.layers?.[n - 1] ?? String(n);
    const cn = (r.name_format ?? '{major}期{layer}层').replace('{major}', major.name).replace('{layer}', layer)
      .replace('{n}', n);
    const en = (r.gloss_format ?? '{major}, layer {n}').replace('{major}', major.gloss).replace('{n}', n)
      .replace('{layer}', layer);
    return [cn, en];
  }

  colour(quality) {
    return this.colours[quality] ?? `var(--q-${quality}, #999)`;
  }
}

/** A progress bar. */
export function bar(value, max, cls = '') {
  const p = max > 0 ? Math.max(0, Math.min(1, value / max)) : 0;
  return h(`div.bar${cls ? `.${cls}` : ''}`, { role: 'progressbar', 'aria-valuenow': Math.round(p * 100),
    'aria-valuemin': 0, 'aria-valuemax': 100 },
  h('div.fill', { style: { width: `${(p * 100).toFixed(1)}%` } }),
  h('span.bar-text', `${fmt(value, 1)} / ${fmt(max, 1)}`));
}

export function qualityTag(g, quality, text) {
  return h('span.quality', { style: { '--qc': g.colour(quality) }, 'data-quality': quality },
    text ?? g.text(quality));
}

/** A confirmation dialog; resolves true when the player confirms. */
export function confirmDialog({ title, body, confirm = '确定 Confirm', danger = false }) {
  return new Promise((resolve) => {
    const dlg = h('dialog.modal', { 'data-testid': 'confirm-dialog' },
      h('h3', title),
      h('div.modal-body', body),
      h('div.row.end',
        h('button.ghost', { type: 'button', 'data-testid': 'confirm-cancel', onclick: () => dlg.close('no') },
          '取消 Cancel'),
        h(`button${danger ? '.danger' : ''}`, { type: 'button', 'data-testid': 'confirm-ok',
          onclick: () => dlg.close('yes') }, confirm)));
    dlg.addEventListener('close', () => {
      resolve(dlg.returnValue === 'yes');
      dlg.remove();
    });
    document.body.append(dlg);
    dlg.showModal();
  });
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
