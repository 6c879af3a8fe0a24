// 人员: the members in reach (filters and search; deactivate, change areas), and enrolment — a code for
// a new rider or grid member, shown with its link (and QR once the API draws one) on a slip to print.
import { h, fill } from '../../dom.js';
import { t, formatTime } from '../../i18n.js';
import { get, request } from '../../api.js';
import { errorBlock } from '../../ui.js';
import { decide, emptyRow, field, filterForm, input, moreButton, page, post, s, scopeSelect, select, table, who } from './common.js';
import { PLATFORMS } from './rankings.js';

const ROLES = ['courier', 'grid_member', 'supervisor', 'admin'];
const codes = (text) => text.split(/[\s,，、;；]+/).filter(Boolean);

function row(m) {
  const manage = m.manageable && m.status === 'active';
  return h('tr', { dataset: { member: m.id } },
    h('td', null, who(m)), h('td', null, m.pseudonym), h('td', null, t(`role.${m.role}`)), h('td', null, m.phone || '—'),
    h('td', null, m.platform ? t(`supervisor.platform.${m.platform}`) : '—'), h('td', null, t(`supervisor.status.${m.status}`)),
    h('td.text', null, m.area_codes.join(', ')), h('td', null, m.last_seen_at ? formatTime(m.last_seen_at) : t('supervisor.never')),
    h('td', null, manage ? h('div.actions', null,
      decide(t('supervisor.reArea'), (text) => request(`/api/v1/members/${m.id}/areas`, { method: 'PUT', json: { area_codes: codes(text || '') } }),
        { name: 're-area', quiet: true, reason: { value: m.area_codes.join(' '), placeholder: t('supervisor.areaCodes'), required: true }, done: t('supervisor.saved') }),
      decide(t('supervisor.deactivate'), () => post(`/api/v1/members/${m.id}/deactivate`, {}),
        { name: 'deactivate', danger: true, ask: t('supervisor.deactivateAsk', { name: who(m) }) })) : null));
}

export async function membersView(ctx) {
  const form = filterForm(ctx,
    field(t('supervisor.role'), select(ctx, 'role', [['', t('supervisor.all')], ...ROLES.map((r) => [r, t(`role.${r}`)])])),
    field(t('supervisor.state'), select(ctx, 'status', [['', t('supervisor.all')], ...['active', 'deactivated', 'pseudonymised'].map((s) => [s, t(`supervisor.status.${s}`)])])),
    field(t('supervisor.area'), await scopeSelect(ctx, 'area')),
    field(t('supervisor.search'), input(ctx, 'q', { type: 'search', placeholder: t('supervisor.searchHint'), maxlength: 40 })));
  const q = new URLSearchParams([...ctx.query].filter(([k, v]) => v && ['role', 'status', 'area', 'q'].includes(k)));
  const head = [h('div.actions', null, h('a.button.primary', { href: '#/members/new', id: 'new-code' }, t('supervisor.enrol.new'))), form];
  try {
    const load = async (cursor) => {
      const p = await get(`/api/v1/members?${q}${cursor ? `&cursor=${cursor}` : ''}`);
      return { rows: p.items.map(row), next: p.next_cursor };
    };
    const first = await load();
    const tbl = table('members', [t('supervisor.col.name'), t('supervisor.col.pseudonym'), t('supervisor.role'), t('supervisor.col.phone'),
      t('supervisor.col.platform'), t('supervisor.state'), t('supervisor.col.areas'), t('supervisor.col.lastSeen'), ''],
    first.rows.length ? first.rows : emptyRow(9, t('supervisor.none')));
    return page(t('supervisor.nav.members'), head, tbl, moreButton(tbl.querySelector('tbody'), load, first.next));
  } catch (err) {
    return page(t('supervisor.nav.members'), head, errorBlock(err));
  }
}

// The link's QR code from the server's module rows ('1' dark), drawn here with a 4-module quiet zone.
function qrCode(rows) {
  const n = rows.length + 8;
  const dark = [];
  rows.forEach((row, y) => [...row].forEach((m, x) => {
    if (m === '1') dark.push(`M${x + 4} ${y + 4}h1v1h-1z`);
  }));
  return s('svg', { class: 'qr', viewBox: `0 0 ${n} ${n}`, role: 'img', 'aria-label': t('supervisor.enrol.qr'),
    'shape-rendering': 'crispEdges' },
  s('rect', { width: n, height: n, fill: '#fff' }), s('path', { d: dark.join(''), fill: '#000' }));
}

// The slip: what the new member needs to sign in, printed by the browser (app.css keeps only it on paper).
function slip(ctx, body, done) {
  let qr = h('div.qr.placeholder', null, t('supervisor.enrol.noQr'));
  if (done.qr?.length) qr = qrCode(done.qr);
  return h('section.slip', { id: 'enrol-slip' },
    h('h2', null, t('app.title')),
    h('p', null, `${body.display_name} · ${t(`role.${body.role}`)}`),
    qr,
    h('p', null, t('supervisor.enrol.code')), h('p.code', { id: 'enrol-code' }, done.code),
    h('p', null, h('a', { id: 'enrol-link', href: done.url }, done.url)),
    h('p.muted', null, t('supervisor.enrol.expires', { time: formatTime(done.expires_at) })),
    h('p.print-only', null, t('supervisor.enrol.howTo')),
    done.reactivated ? h('p.warn.no-print', null, t('supervisor.enrol.reactivated')) : null,
    h('div.actions.no-print', null, h('button.primary', { type: 'button', id: 'print', onclick: () => print() }, t('supervisor.enrol.print'))));
}

export async function enrolView(ctx) {
  const roles = ctx.member.role === 'admin' ? ['courier', 'grid_member', 'supervisor'] : ['courier', 'grid_member'];
  const out = h('div');
  const areas = await scopeSelect(null, 'areas', { blank: null, multiple: true, size: 8, required: true });
  const form = h('form.enrol', {
    onsubmit: async (event) => {
      event.preventDefault();
      const f = form.elements;
      const body = { role: f.role.value, display_name: f.display_name.value.trim(), phone: f.phone.value.trim(),
        area_codes: [...areas.selectedOptions].map((o) => o.value), platform: f.platform.value || null };
      f.submit.disabled = true;
      try {
        fill(out, slip(ctx, body, await post('/api/v1/enrolments', body)));
        out.scrollIntoView();
      } catch (err) {
        fill(out, errorBlock(err));
      }
      f.submit.disabled = false;
    },
  },
  field(t('supervisor.role'), select(null, 'role', roles.map((r) => [r, t(`role.${r}`)]))),
  field(t('supervisor.col.name'), h('input', { name: 'display_name', required: true, maxlength: 80 })),
  field(t('supervisor.col.phone'), h('input', { name: 'phone', type: 'tel', required: true, inputmode: 'numeric', autocomplete: 'off' })),
  field(t('supervisor.col.platform'), select(null, 'platform', [['', '—'], ...PLATFORMS.map((p) => [p, t(`supervisor.platform.${p}`)])])),
  field(t('supervisor.col.areas'), areas), h('p.muted', null, t('supervisor.enrol.areasHint')),
  h('div.actions', null, h('button.primary', { type: 'submit', name: 'submit' }, t('supervisor.enrol.create'))));
  return page(t('supervisor.enrol.new'), h('div.enrol-wrap', null, form, out));
}
