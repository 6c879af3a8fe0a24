// Small pieces every role's views use: state chips, errors in words, map links, toasts.
import { h } from './dom.js';
import { t } from './i18n.js';
import { mapLinks } from './geo.js';

// A chip for a state key of strings' "state.*" (queued, sending, received, accepted, resolved, rejected…).
export const chip = (state) => h('span.chip', { dataset: { state } }, t(`state.${state}`));

// An ApiError (or anything thrown) as one sentence and its field messages, in the reader's language.
export function errorText(err) {
  if (!err) return '';
  if (err.status === 0) return t('error.network');
  return err.message || t('error.generic', { status: err.status ?? '?' });
}

export function errorBlock(err) {
  const fields = (err?.errors || []).map((e) => h('li', null, e.message || e.code));
  return h('div.error', { role: 'alert' }, h('p', null, errorText(err)), fields.length ? h('ul', null, fields) : null);
}

export function mapButtons(lat, lon, name) {
  const links = mapLinks(lat, lon, name);
  return h('div.maplinks', null,
    h('a.button', { href: links.amap, target: '_blank', rel: 'noopener noreferrer' }, t('map.amap')),
    h('a.button', { href: links.geo }, t('map.geo')));
}

export const loading = () => h('p.loading', { role: 'status' }, t('common.loading'));

let toastTimer = null;
export function toast(text) {
  const el = document.getElementById('toast');
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 4000);
}

export const section = (title, ...children) => h('section.block', null, h('h2', null, title), ...children);
