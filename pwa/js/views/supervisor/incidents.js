// Incidents a supervisor must act on: unrouted ones to dispatch to a grid, complex-case requests to
// approve or decline, appeals against a rejection (shown in the review queue) — and one incident in
// full, where notifications and the dashboard's overdue list lead.
import { h, fill } from '../../dom.js';
import { t, pick, formatTime } from '../../i18n.js';
import { get } from '../../api.js';
import { errorBlock, loading, mapButtons, section } from '../../ui.js';
import { decide, dur, gridSelect, moreButton, page, post, stateChip, table } from './common.js';

const act = (id, action, body) => post(`/api/v1/incidents/${id}/${action}`, body || {});
const list = (query, cursor) => get(`/api/v1/incidents?${query}&limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);

// What a supervisor may do to an incident in its present state (DESIGN.md §2b), as buttons.
async function actionsFor(inc) {
  const id = inc.id;
  if (inc.state === 'unrouted') {
    const grid = await gridSelect(`grid-${id}`);
    return [grid, decide(t('supervisor.dispatch'), () => act(id, 'dispatch', { grid_code: grid.value }),
      { name: 'dispatch', done: t('supervisor.dispatched') })];
  }
  if (inc.state === 'accepted' && inc.complex_state === 'requested') {
    return [decide(t('supervisor.approve'), () => act(id, 'approve_complex'), { name: 'approve_complex' }),
      decide(t('supervisor.decline'), (reason) => act(id, 'decline_complex', { reason }), { name: 'decline_complex', reason: 'optional', danger: true })];
  }
  if (inc.state === 'rejected' && inc.appeal_state === 'pending') {
    return [decide(t('supervisor.uphold'), (reason) => act(id, 'uphold_appeal', { reason }), { name: 'uphold_appeal', reason: 'optional' }),
      decide(t('supervisor.dismiss'), (reason) => act(id, 'dismiss_appeal', { reason }), { name: 'dismiss_appeal', reason: 'required', danger: true })];
  }
  return [];
}

async function card(inc, extra) {
  return h('article.card', { dataset: { incident: inc.id } },
    h('div.card-head', null,
      h('a', { href: `#/incidents/${inc.id}` }, `#${inc.id}`),
      h('strong.grow', { class: inc.life_safety ? 'life-text' : null }, pick(inc, 'category')),
      stateChip(inc.state)),
    h('p.muted', null, [inc.area_zh || inc.area_code || t('supervisor.noArea'), t('incident.reports', { n: inc.report_count }),
      inc.seconds_left != null ? t(inc.seconds_left < 0 ? 'supervisor.overdueBy' : 'supervisor.left', { d: dur(inc.seconds_left) }) : null]
      .filter(Boolean).join(' · ')),
    extra,
    h('div.actions', null, await actionsFor(inc)));
}

// The API's list has no appeal or complex-request filter yet, nor appeal_state or complex_reason in its
// items: walk the pages of the state, read the detail of an item that lacks what `keep` needs, keep the matches.
async function scan(query, keep, lacks) {
  const found = [];
  let cursor = null;
  for (let n = 0; n < 10; n++) {
    const p = await list(query, cursor);
    const items = await Promise.all(p.items.map((i) => (lacks(i) ? get(`/api/v1/incidents/${i.id}`) : i)));
    found.push(...items.filter(keep));
    if (!(cursor = p.next_cursor)) break;
  }
  return found;
}

// Event kinds are open-ended (jobs add their own): a kind without a name is shown as it is.
const eventName = (kind) => { const key = `supervisor.event.${kind}`, name = t(key); return name === key ? kind : name; };

const why = (text) => (text ? h('p', null, h('strong', null, t('supervisor.reasonGiven')), ' ', text) : null);

export async function appealsBlock() {
  const items = await scan('state=rejected&appeal=pending', (i) => i.appeal_state === 'pending', (i) => i.appeal_state === undefined);
  return h('div', { id: 'appeals' }, items.length
    ? await Promise.all(items.map((i) => card(i, why(i.reject_reason && t(`reject.${i.reject_reason}`)))))
    : h('p.muted', null, t('supervisor.none')));
}

export async function incidentsView(ctx) {
  const unrouted = h('div', { id: 'unrouted' }, loading());
  const complex = h('div', { id: 'complex' }, loading());
  const draw = async (cursor) => {
    const p = await list('state=unrouted', cursor);
    return { rows: await Promise.all(p.items.map((i) => card(i))), next: p.next_cursor };
  };
  draw().then(async (first) => {
    fill(unrouted, first.rows.length ? first.rows : h('p.muted', null, t('supervisor.none')), moreButton(unrouted, draw, first.next));
  }, (err) => fill(unrouted, errorBlock(err)));
  const requested = (i) => i.complex_state === 'requested';
  scan('state=accepted&complex=requested', requested, (i) => requested(i) && i.complex_reason === undefined)
    .then(async (items) => fill(complex, items.length ? await Promise.all(items.map((i) => card(i, why(i.complex_reason))))
      : h('p.muted', null, t('supervisor.none'))), (err) => fill(complex, errorBlock(err)));
  return page(t('supervisor.nav.incidents'),
    section(t('supervisor.unrouted'), unrouted),
    section(t('supervisor.complex'), complex));
}

export async function incidentView(ctx) {
  let inc;
  try {
    inc = await get(`/api/v1/incidents/${encodeURIComponent(ctx.params.id)}`);
  } catch (err) {
    return page(t('incident.title'), errorBlock(err));
  }
  const photos = inc.photos.filter((p) => p.thumb_url).map((p) => h('a', { href: p.display_url, target: '_blank', rel: 'noopener' },
    h('img.photo', { src: p.thumb_url, alt: t(p.role === 'proof' ? 'incident.proof' : 'supervisor.reportPhoto'), loading: 'lazy' })));
  return page(`#${inc.id} ${pick(inc, 'category')}`,
    h('div.incident', null,
      await card(inc, [
        why(inc.complex_reason), why(inc.reject_reason && t(`reject.${inc.reject_reason}`)),
        inc.appeal_state !== 'none' ? h('p', null, t('supervisor.appealState', { s: t(`supervisor.appeal.${inc.appeal_state}`) })) : null,
        mapButtons(inc.lat, inc.lon, pick(inc, 'category'))]),
      section(t('incident.progress'), h('ul.stages', null, inc.stages.map((s) => h('li', null, h('strong', null, t(`stage.${s.stage}`)), ' ',
        s.done_at ? t('incident.doneAt', { time: formatTime(s.done_at) }) : s.due_at ? t('incident.dueAt', { time: formatTime(s.due_at) }) : '—',
        s.overdue_at ? h('span.warn', null, ` · ${t('incident.overdue')}`) : null)))),
      photos.length ? section(t('supervisor.photos'), h('div.gallery', null, photos)) : null,
      section(t('supervisor.reports'), table('reports', [t('supervisor.col.reporter'), t('supervisor.col.phone'), t('supervisor.col.captured'),
        t('supervisor.col.note'), t('supervisor.col.flags')], inc.reports.map((r) => h('tr', null, h('td', null, r.reporter),
        h('td', null, r.reporter_phone || '—'), h('td', null, formatTime(r.captured_at)), h('td.text', null, r.note || ''), h('td.warn', null, r.flags.join(', ')))))),
      section(t('supervisor.events'), h('ul.ledger', null, inc.events.map((e) => h('li', null,
        h('span.grow', null, h('strong', null, eventName(e.kind)), h('span.muted', null, `${e.actor || ''} ${formatTime(e.occurred_at)}`)),
        e.data.reason ? h('span', null, e.data.reason) : null))))));
}
