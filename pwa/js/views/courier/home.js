// Home: the huge "标记隐患" button in the thumb zone; under it what waits (drafts, queued, refused);
// on top this month's points and rank.
import { h, fill } from '../../dom.js';
import { t, formatTime, formatDistance, pick } from '../../i18n.js';
import { get } from '../../api.js';
import { kvGet, kvSet } from '../../idb.js';
import { items, onOutboxChange } from '../../outbox.js';
import { categoryByCode, iconOf, loadCategories } from '../../categories.js';
import { createDraft, listDrafts, locate, onDraftChange, settleOrphans } from './drafts.js';

async function pointsStrip(el, memberId) {
  const key = `points:${memberId}`; // the last figures, shown at once and offline
  const show = (p) => fill(el,
    h('span', null, t('points.month'), ' ', h('strong', { id: 'month-points' }, String(p.month_points))),
    h('span', null, t('points.rank'), ' ', h('strong', null, p.rank ? `#${p.rank}` : '—')),
    p.provisional ? h('span.muted', null, t('points.provisionalShort', { n: p.provisional })) : null);
  const cached = await kvGet(key);
  if (cached) show(cached);
  try {
    const fresh = await get('/api/v1/me/points');
    await kvSet(key, { month_points: fresh.month_points, rank: fresh.rank, provisional: fresh.provisional });
    show(fresh);
  } catch {
    if (!cached) fill(el, t('points.unavailable'));
  }
}

async function draftCard(d) {
  const category = d.category ? await categoryByCode(d.category) : null;
  const where = d.position ? `±${formatDistance(d.position.accuracy_m)}` : t(`locate.${d.locating}`);
  return h('a.card.draft', { href: `#/mark/${d.id}`, dataset: { draft: d.id } },
    h('span.icon', { 'aria-hidden': 'true' }, category ? iconOf(category) : '📍'),
    h('span.grow', null,
      h('strong', null, category ? pick(category, 'name') : t('draft.noCategory')),
      h('span.muted', null, `${formatTime(d.captured_at)} · ${where}`)),
    h('span.go', null, t('draft.finish')));
}

export async function homeView(ctx) {
  const me = ctx.member;
  await settleOrphans(me.id);
  const strip = h('a.strip', { href: '#/points', id: 'points-strip' }, t('common.loading'));
  const counts = h('div.counts', { id: 'counts', 'aria-live': 'polite' });
  const list = h('div.drafts');

  async function drawWaiting() {
    if (!ctx.isCurrent()) return;
    const drafts = await listDrafts(me.id);
    const outbox = await items(me.id);
    const queued = outbox.filter((i) => i.state === 'queued' || i.state === 'sending').length;
    const failed = outbox.filter((i) => i.state === 'failed').length;
    fill(counts,
      h('span', { dataset: { count: 'drafts' } }, t('home.drafts', { n: drafts.length })),
      h('a', { href: '#/reports', dataset: { count: 'queued' } }, t('home.queued', { n: queued })),
      failed ? h('a.warn', { href: '#/reports', dataset: { count: 'failed' } }, t('home.failed', { n: failed })) : null);
    fill(list, await Promise.all(drafts.map(draftCard)));
  }

  async function mark() {
    // Time now, position as soon as it comes, a buzz so the rider knows without looking.
    const draft = await createDraft(me.id);
    navigator.vibrate?.(60);
    locate(draft.id);
    ctx.navigate(`mark/${draft.id}`);
  }

  // Fetched now, while there is a network, so marks can be finished later without one.
  loadCategories({ fresh: true }).catch(() => {});
  ctx.onCleanup(onDraftChange(drawWaiting));
  ctx.onCleanup(onOutboxChange(drawWaiting));
  pointsStrip(strip, me.id);
  await drawWaiting();
  return h('div.home', null,
    strip,
    list,
    h('div.thumbzone', null,
      counts,
      h('button.mark', { type: 'button', id: 'mark', onclick: mark },
        h('span.mark-label', null, t('home.mark')), h('span.mark-sub', null, t('home.markHint')))));
}
