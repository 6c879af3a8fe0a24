// My reports: first what is still on this phone (the outbox, with honest states and the server's reasons
// for a refusal), then what the server has, with the incident's state and the points it earned.
import { h, fill } from '../../dom.js';
import { t, pick, formatTime } from '../../i18n.js';
import { get } from '../../api.js';
import { items, onOutboxChange, remove } from '../../outbox.js';
import { categoryByCode, iconOf } from '../../categories.js';
import { sendNow } from '../../sync.js';
import { chip, errorBlock, errorText, loading, section } from '../../ui.js';

// The state a rider sees for a report the server has: its incident's progress once it has one.
export function reportState(report) {
  const s = report.incident_state;
  if (s === 'accepted') return 'accepted';
  if (s === 'resolved' || s === 'closed') return 'resolved';
  if (s === 'rejected') return 'rejected';
  if (s === 'merged') return 'merged';
  return 'received';
}

async function outboxCard(item) {
  const category = await categoryByCode(item.meta.category);
  // Why it waits: the last answer, or the phone being offline right now (then nothing was even tried).
  const wait = item.state !== 'queued' ? null : item.wait || (navigator.onLine ? null : 'network');
  const waitText = wait ? t(`wait.${wait}`) : null;
  const chipState = item.state === 'sent' ? 'received' : item.state;
  return h('article.card', { dataset: { clientId: item.client_id, state: item.state } },
    h('div.card-head', null,
      h('span.icon', { 'aria-hidden': 'true' }, iconOf(category)),
      h('strong.grow', null, category ? pick(category, 'name') : item.meta.category),
      chip(chipState)),
    h('p.muted', null, formatTime(item.meta.captured_at),
      item.photos?.length ? ` · ${t('reports.photos', { n: item.photos.length })}` : ''),
    waitText ? h('p.muted', { dataset: { wait } }, waitText) : null,
    item.state === 'failed' ? errorBlock(item.error) : null,
    item.state === 'failed' ? h('div.actions', null,
      h('a.button.primary', { href: `#/edit/${item.client_id}`, dataset: { action: 'edit' } }, t('reports.edit')),
      h('button.danger', {
        type: 'button', dataset: { action: 'delete' },
        onclick: async () => { if (confirm(t('reports.deleteConfirm'))) await remove(item.client_id); },
      }, t('reports.delete'))) : null);
}

// Points as the API works them out per report: final (paid, net of reversals) and, while the incident
// is open, provisional (grey: what it is expected to earn).
function pointsOf(report) {
  const signed = (n) => (n > 0 ? `+${n}` : String(n));
  return [
    report.points_final ? h('span.points.final', null, t('points.signed', { n: signed(report.points_final) })) : null,
    report.points_provisional ? h('span.points.provisional', null, t('points.provisionalShort', { n: signed(report.points_provisional) })) : null,
  ];
}

function serverCard(report) {
  const state = reportState(report);
  const thumb = report.photos.find((p) => p.thumb_url);
  const body = [
    thumb ? h('img.thumb-sm', { src: thumb.thumb_url, alt: '', loading: 'lazy' }) : h('span.icon.big', { 'aria-hidden': 'true' }, '📍'),
    h('span.grow', null,
      h('strong', { dataset: { category: report.category } }, report.category_name),
      h('span.muted', null, formatTime(report.captured_at))),
    h('span.side', null, chip(state), ...pointsOf(report)),
  ];
  return report.incident_id != null
    ? h('a.card.row', { href: `#/incidents/${report.incident_id}`, dataset: { reportId: report.id } }, body)
    : h('article.card.row', { dataset: { reportId: report.id } }, body);
}

export async function reportsView(ctx) {
  const me = ctx.member;
  const local = h('div', { id: 'outbox' });
  const remote = h('div', { id: 'my-reports' }, loading());
  const more = h('div');
  let serverIds = new Set();

  async function drawLocal() {
    if (!ctx.isCurrent()) return;
    // Sent items the server list already shows are not shown twice.
    const mine = (await items(me.id)).filter((i) => !(i.state === 'sent' && serverIds.has(i.report_id)));
    const cards = await Promise.all(mine.map(outboxCard));
    fill(local, cards.length ? cards : h('p.muted', null, t('reports.outboxEmpty')),
      mine.some((i) => i.state === 'queued')
        ? h('button', { type: 'button', id: 'send-now', onclick: () => sendNow({ force: true }) }, t('reports.sendNow'))
        : null);
  }

  async function loadPage(cursor) {
    const query = cursor ? `?cursor=${encodeURIComponent(cursor)}` : '';
    const page = await get(`/api/v1/me/reports${query}`);
    for (const r of page.items) {
      const c = await categoryByCode(r.category);
      r.category_name = c ? pick(c, 'name') : r.category;
      serverIds.add(r.id);
    }
    return page;
  }

  async function drawRemote() {
    try {
      const page = await loadPage(null);
      serverIds = new Set(page.items.map((r) => r.id));
      fill(remote, page.items.length ? page.items.map((r) => serverCard(r)) : h('p.muted', null, t('reports.none')));
      drawMore(page.next_cursor);
      drawLocal();
    } catch (err) {
      fill(remote, h('p.muted', null, err.status === 0 ? t('reports.offline') : errorText(err)));
    }
  }

  function drawMore(cursor) {
    fill(more, cursor ? h('button', {
      type: 'button',
      onclick: async () => {
        const page = await loadPage(cursor);
        remote.append(...page.items.map((r) => serverCard(r)));
        drawMore(page.next_cursor);
      },
    }, t('reports.more')) : null);
  }

  ctx.onCleanup(onOutboxChange(drawLocal));
  // The reasons shown depend on the network too ("离线" needs no failed attempt to be true).
  addEventListener('online', drawLocal);
  addEventListener('offline', drawLocal);
  ctx.onCleanup(() => { removeEventListener('online', drawLocal); removeEventListener('offline', drawLocal); });
  await drawLocal();
  drawRemote();
  return h('div', null,
    h('h1', null, t('reports.title')),
    section(t('reports.onPhone'), local),
    section(t('reports.sent'), remote, more));
}
