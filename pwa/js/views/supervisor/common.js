// Pieces every supervisor screen shares: filter forms kept in the hash (so a view is a link and the
// browser's back button undoes a filter), area pickers, decisions with a reason, tables, SVG bars and
// the area map, CSV downloads. One copy of each, so the role's views stay small.
import { h, append, fill } from '../../dom.js';
import { t, pick, getLang } from '../../i18n.js';
import { ApiError, get, request } from '../../api.js';
import { token } from '../../session.js';
import { loadCategories } from '../../categories.js';
import { errorBlock } from '../../ui.js';

export const post = (path, json) => request(path, { method: 'POST', json });
export const pct = (rate) => (rate == null ? '—' : `${(rate * 100).toFixed(1)}%`);
export const stateChip = (state) => h('span.chip', { dataset: { state } }, t(`supervisor.state.${state}`));
export const who = (m) => m.display_name || m.pseudonym;

export function dur(seconds) {
  if (seconds == null) return '—';
  const m = Math.floor(Math.abs(seconds) / 60);
  const d = Math.floor(m / 1440);
  if (d) return t('supervisor.dur.d', { d, h: Math.floor((m % 1440) / 60) });
  return m >= 60 ? t('supervisor.dur.h', { h: Math.floor(m / 60), m: m % 60 }) : t('supervisor.dur.m', { m });
}

// Areas change only when an admin imports a new file: one fetch per page load serves every picker.
let areaList = null;
export function areas() {
  areaList ??= get('/api/v1/areas').catch((err) => { areaList = null; throw err; });
  return areaList;
}

let categories = null;
export async function categoryName(code) {
  categories ??= loadCategories().then((list) => new Map(list.map((c) => [c.code, c])), () => new Map());
  const found = (await categories).get(code);
  return found ? pick(found, 'name') : code; // picked now: the language may have changed since the fetch
}

// ── filters: a form whose values become the hash's query; submitting re-renders the view from it ──

export function filterForm(ctx, ...fields) {
  const form = h('form.filters', {
    onsubmit: (event) => {
      event.preventDefault();
      const q = new URLSearchParams();
      for (const [key, value] of new FormData(form)) if (value) q.set(key, value);
      const next = `#/${ctx.path}${q.size ? `?${q}` : ''}`;
      if (location.hash === next) ctx.rerender(); else location.hash = next;
    },
  }, fields, h('button.primary', { type: 'submit' }, t('supervisor.apply')));
  return form;
}

export const field = (label, control) => h('label.field', null, h('span', null, label), control);

export const input = (ctx, name, props = {}) => h('input', { name, id: `f-${name}`, value: ctx.query.get(name) || props.value || '', ...props });

// options: [[value, label], …]; the query's value (else `value`) is selected.
export function select(ctx, name, options, { value = '', id = `f-${name}`, ...props } = {}) {
  const current = ctx?.query.get(name) ?? value;
  return h('select', { name, id, ...props },
    options.map(([v, label]) => h('option', { value: v, selected: String(v) === String(current) ? true : null }, label)));
}

// Every area in reach, indented by depth (a county's streets, communities and grids), for `scope`.
export async function scopeSelect(ctx, name = 'scope', { blank = t('supervisor.scopeAll'), levels, ...props } = {}) {
  let list = [];
  try {
    list = await areas();
  } catch {
    // No list: the picker offers "everything" only; the figures still load.
  }
  const depth = new Map();
  for (const a of list) depth.set(a.code, a.parent_code && depth.has(a.parent_code) ? depth.get(a.parent_code) + 1 : 0);
  const shown = list.filter((a) => !levels || levels.includes(a.level));
  return select(ctx, name, [...(blank ? [['', blank]] : []),
    ...shown.map((a) => [a.code, `${'\u3000'.repeat(depth.get(a.code))}${pick(a, 'name')}`])], props);
}

// Grids grouped by their community: the dispatch picker.
export async function gridSelect(id) {
  const list = await areas();
  const names = new Map(list.map((a) => [a.code, pick(a, 'name')]));
  const groups = new Map();
  for (const a of list.filter((x) => x.level === 'grid')) {
    if (!groups.has(a.parent_code)) groups.set(a.parent_code, []);
    groups.get(a.parent_code).push(h('option', { value: a.code }, `${pick(a, 'name')} · ${a.code}`));
  }
  return h('select', { id, 'aria-label': t('supervisor.grid') },
    h('option', { value: '' }, t('supervisor.pickGrid')),
    [...groups].map(([parent, options]) => h('optgroup', { label: names.get(parent) || parent || '—' }, options)));
}

// ── decisions ──

// A button that calls the API. With `reason` ('required' | 'optional', or {value, placeholder, required})
// it first opens a text field whose value `run` gets; with `ask` it asks "are you sure" first. On success
// the row's actions give way to `done` (the item is decided; nothing more to do here).
export function decide(label, run, { reason = null, ask = null, danger = false, quiet = false, done = t('supervisor.done'), name } = {}) {
  const box = h('span.decide');
  const out = h('span');
  const go = async (button, text) => {
    button.disabled = true;
    fill(out);
    try {
      await run(text);
      const row = box.closest('.actions') || box;
      fill(row, h('p.ok', { role: 'status' }, done));
    } catch (err) {
      button.disabled = false;
      fill(out, errorBlock(err));
    }
  };
  const kind = danger ? 'button.danger' : quiet ? 'button' : 'button.primary';
  const start = h(kind, {
    type: 'button', dataset: { action: name },
    onclick: (event) => {
      if (ask && !confirm(ask)) return null;
      if (!reason) return go(event.currentTarget);
      const spec = typeof reason === 'string' ? { required: reason === 'required', placeholder: t(`supervisor.reason.${reason}`) } : reason;
      const text = h('input', { type: 'text', maxlength: 500, ...spec, dataset: { reason: name } });
      fill(box, h('form.reason', {
        onsubmit: (e) => { e.preventDefault(); go(e.submitter || e.currentTarget.querySelector('button'), text.value.trim() || null); },
      }, text, h(kind, { type: 'submit', dataset: { confirm: name } }, label),
      h('button.link', { type: 'button', onclick: () => fill(box, start, out) }, t('supervisor.cancel'))), out);
      text.focus();
    },
  }, label);
  return append(box, [start, out]);
}

// ── tables, lists, charts ──

export const table = (id, heads, rows) => h('div.table-wrap', null,
  h('table.tbl', { id }, h('thead', null, h('tr', null, heads.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', null, rows)));

export const emptyRow = (cols, text) => h('tr', null, h('td.muted', { colspan: cols }, text));

// "More" for a cursor-paged list: load(cursor) → {rows, next}; rows are appended to `into`.
export function moreButton(into, load, next) {
  const button = h('button', { type: 'button', id: 'more', hidden: !next }, t('supervisor.more'));
  let cursor = next;
  button.onclick = async () => {
    button.disabled = true;
    try {
      const page = await load(cursor);
      append(into, page.rows);
      cursor = page.next;
      button.hidden = !cursor;
    } catch (err) {
      button.after(errorBlock(err));
    }
    button.disabled = false;
  };
  return button;
}

const SVG = 'http://www.w3.org/2000/svg';
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) if (value != null) el.setAttribute(key, String(value));
  return append(el, children);
}

// Horizontal bars: [{key, label, value, text?}], scaled to `max` or the largest value. The numbers are
// written beside each bar (and in data-value) so nothing is read off a length alone.
export function bars(id, items, { max } = {}) {
  const top = max ?? Math.max(1, ...items.map((i) => i.value));
  const row = 26, left = 140, width = 300;
  return s('svg', { class: 'chart', id, viewBox: `0 0 ${left + width + 80} ${items.length * row + 4}`, role: 'img', 'aria-label': items.map((i) => `${i.label} ${i.text ?? i.value}`).join(', ') },
    items.map((it, n) => {
      const w = (it.value / top) * width;
      return s('g', { transform: `translate(0 ${n * row})`, 'data-key': it.key, 'data-value': it.value },
        s('title', null, `${it.label}: ${it.text ?? it.value}`),
        s('text', { x: left - 8, y: 17, 'text-anchor': 'end' }, it.label),
        s('rect', { class: 'bar', x: left, y: 4, height: 18, rx: 3, width: it.value ? Math.max(2, w) : 0 }),
        s('text', { x: left + w + 6, y: 17 }, it.text ?? String(it.value)));
    }));
}

// The areas' outlines (GeoJSON Polygon / MultiPolygon in `polygon`, when the API sends them) and the
// hotspot cells as circles at their centres. Equirectangular, x scaled by cos(middle latitude): a
// county spans tens of kilometres, where that is true to the eye; nobody measures on this map.
export function areaMap(shapes, cells) {
  const rings = shapes.flatMap((a) => {
    const g = a.polygon;
    const polys = g?.type === 'Polygon' ? [g.coordinates] : g?.type === 'MultiPolygon' ? g.coordinates : [];
    return polys.map((p) => ({ area: a, rings: p }));
  });
  const points = [...rings.flatMap((r) => r.rings.flat()), ...cells.map((c) => [c.lon, c.lat])];
  if (!points.length) return h('p.muted', { id: 'map' }, t('supervisor.map.empty'));
  const lons = points.map((p) => p[0]), lats = points.map((p) => p[1]);
  const k = Math.cos(((Math.min(...lats) + Math.max(...lats)) / 2) * Math.PI / 180);
  // At least ~1 km each way around what is drawn: a lone hotspot sits in the middle, not in a corner.
  const widen = (lo, hi, min) => [lo - Math.max(0, min - (hi - lo)) / 2, hi + Math.max(0, min - (hi - lo)) / 2];
  const [w0, e0] = widen(Math.min(...lons), Math.max(...lons), 0.01 / k);
  const [s0, n0] = widen(Math.min(...lats), Math.max(...lats), 0.01);
  const spanX = (e0 - w0) * k, spanY = n0 - s0;
  const scale = Math.min(600 / spanX, 420 / spanY), pad = 16;
  const x = (lon) => (pad + (lon - w0) * k * scale).toFixed(1);
  const y = (lat) => (pad + (n0 - lat) * scale).toFixed(1);
  const most = Math.max(1, ...cells.map((c) => c.incidents));
  return s('svg', { class: 'map', id: 'map', viewBox: `0 0 ${spanX * scale + 2 * pad} ${spanY * scale + 2 * pad}`, role: 'img', 'aria-label': t('supervisor.map.title') },
    rings.map(({ area, rings: r }) => s('path', { class: `area ${area.level}`, 'data-area': area.code,
      d: r.map((ring) => `M${ring.map(([lon, lat]) => `${x(lon)},${y(lat)}`).join('L')}Z`).join('') },
    s('title', null, pick(area, 'name')))),
    cells.map((c) => s('circle', { class: c.recurrences ? 'hot recur' : 'hot', 'data-cell': c.cell, cx: x(c.lon), cy: y(c.lat), r: (4 + 12 * Math.sqrt(c.incidents / most)).toFixed(1) },
      s('title', null, t('supervisor.map.cell', { n: c.incidents, r: c.recurrences })))));
}

// ── downloads ──

// A CSV through fetch with the Bearer header (never a token in a URL), saved under `name`.
export async function download(path, name) {
  let res;
  try {
    res = await fetch(path, { headers: { Authorization: `Bearer ${token()}`, 'Accept-Language': getLang() }, credentials: 'omit', cache: 'no-store' });
  } catch {
    throw new ApiError({ status: 0, code: 'network' });
  }
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    throw new ApiError({ status: res.status, code: body.code || `http_${res.status}`, message: body.title || '', errors: body.errors || [] });
  }
  const url = URL.createObjectURL(await res.blob());
  const link = h('a', { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000); // the browser has read it long before
}

export const page = (title, ...children) => h('div.sv', null, h('h1', null, title), ...children);
