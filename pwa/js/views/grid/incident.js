// One incident of my grid: photos (thumbnails; a tap shows the larger one), where it is (the phone's map
// apps), the reports and riders' confirmations, each stage's deadline, the history, and at the bottom
// what I may do now (actions.js). Notifications open here (#/incidents/ID); the live stream refreshes it.
import { h, fill } from '../../dom.js';
import { t, pick, formatTime, formatDistance } from '../../i18n.js';
import { get } from '../../api.js';
import { categoryByCode, iconOf } from '../../categories.js';
import { errorBlock, loading, mapButtons, section, toast } from '../../ui.js';
import { stateChip, leftText, urgency, STAGE_OF, metres, whereAmI } from './common.js';
import { onLive } from './live.js';
import { actionBar } from './actions.js';

function viewer(photo) {
  const close = () => box.remove();
  const box = h('div.viewer', { role: 'dialog', 'aria-modal': 'true', onclick: close },
    h('img', { src: photo.display_url, alt: t('grid.photo') }),
    h('button', { type: 'button', onclick: close }, t('grid.close')));
  document.body.append(box);
}

function photos(list) {
  if (!list.length) return null;
  return h('div.strip-photos', null, list.map((p) => (p.thumb_url
    ? h('button.thumb', { type: 'button', dataset: { photo: p.id, role: p.role }, onclick: () => viewer(p) },
      h('img', { src: p.thumb_url, alt: t(p.role === 'proof' ? 'incident.proof' : 'grid.photo'), loading: 'lazy' }))
    : h('span.thumb.pending', { dataset: { photo: p.id } }, t(p.state === 'failed' ? 'grid.photoFailed' : 'grid.photoPending')))));
}

function stages(inc) {
  const current = STAGE_OF[inc.state];
  return h('ol.stages', null, inc.stages.filter((s) => s.due_at || s.done_at).map((s) => {
    const running = s.stage === current && !s.done_at && inc.seconds_left != null;
    return h('li', { dataset: { stage: s.stage } },
      h('strong', null, t(`stage.${s.stage}`)), ' ',
      s.done_at ? t('incident.doneAt', { time: formatTime(s.done_at) }) : t('incident.dueAt', { time: formatTime(s.due_at) }),
      running ? h('span.left', { dataset: { urgency: urgency(inc.seconds_left, inc.life_safety) } }, ` · ${leftText(inc.seconds_left)}`) : null,
      s.overdue_at ? h('span.warn', null, ` · ${t('incident.overdue')}`) : null);
  }));
}

function reportItem(r) {
  return h('li', { dataset: { report: r.id } },
    h('strong', null, r.reporter), r.reporter_phone ? h('span.muted', null, ` · ${r.reporter_phone}`) : null,
    h('div.muted', null, `${formatTime(r.captured_at)} · ±${formatDistance(r.accuracy_m)}`,
      r.flags.map((f) => ` · ${t(`grid.flag.${f}`)}`)),
    r.note ? h('p.note', null, r.note) : null);
}

function eventItem(e) {
  const d = e.data || {};
  const detail = [
    d.reason && (e.kind === 'reject' ? t(`reject.${d.reason}`) : d.reason),
    d.stage && t(`stage.${d.stage}`),
    d.note,
    d.into && `→ #${d.into}`,
  ].filter(Boolean).join(' · ');
  const label = t(`grid.ev.${e.kind}`);
  return h('li', null, h('span.muted', null, formatTime(e.occurred_at)), ' ',
    h('strong', null, label.startsWith('grid.ev.') ? e.kind : label),
    e.actor ? ` · ${e.actor}` : '', detail ? h('div.muted', null, detail) : null);
}

export function incidentView(ctx) {
  const id = ctx.params.id;
  const body = h('div', null, loading());
  const notice = h('div', { id: 'notice' }); // survives redraws: the last action's outcome or error
  const bar = h('div.bottom-bar.grid-bar', { id: 'actions', hidden: true });
  let busy = false; // a sheet is open: a live update must not wipe what the member is typing or shooting

  async function load() {
    let inc;
    try {
      inc = await get(`/api/v1/incidents/${encodeURIComponent(id)}`);
    } catch (err) {
      if (ctx.isCurrent()) fill(body, h('h1', null, t('incident.title')), errorBlock(err), h('a.button', { href: '#/' }, t('grid.nav.inbox')));
      return;
    }
    const [category, here] = await Promise.all([categoryByCode(inc.category), whereAmI()]);
    if (!ctx.isCurrent()) return;
    const name = pick(inc, 'category');
    const far = here ? formatDistance(metres(here, inc)) : null;
    fill(body,
      h('h1', null, h('span', { 'aria-hidden': 'true' }, iconOf(category), ' '), name),
      h('p', { id: 'state', dataset: { state: inc.state } }, stateChip(inc.state), ' ', h('span.muted', null, `#${inc.id}`)),
      inc.life_safety ? h('p.life-note', null, t('incident.lifeSafety')) : null,
      inc.reject_reason ? h('p.warn', null, t('incident.rejected', { reason: t(`reject.${inc.reject_reason}`) })) : null,
      inc.merged_into_id ? h('p', null, h('a', { href: `#/incidents/${inc.merged_into_id}` }, t('grid.mergedInto', { id: inc.merged_into_id }))) : null,
      inc.complex_state !== 'none' ? h('p.warn', { id: 'complex' }, t(`grid.complex.${inc.complex_state}`), inc.complex_reason ? ` · ${inc.complex_reason}` : '') : null,
      photos(inc.photos.filter((p) => p.role !== 'proof')),
      section(t('grid.deadlines'), stages(inc)),
      section(t('incident.where'),
        h('p', null, [inc.area_zh, far && t('grid.away', { d: far })].filter(Boolean).join(' · ')),
        mapButtons(inc.lat, inc.lon, name)),
      inc.photos.some((p) => p.role === 'proof') ? section(t('incident.proof'), photos(inc.photos.filter((p) => p.role === 'proof'))) : null,
      section(t('incident.reports', { n: inc.report_count }), h('ul.plain', { id: 'reports' }, inc.reports.map(reportItem))),
      inc.verifications.length ? section(t('grid.verifications'), h('ul.plain', null, inc.verifications.map((v) => h('li', null,
        h('strong', null, t(`answer.${v.answer}`)), ` · ${v.by} · ${formatTime(v.answered_at)} · ${formatDistance(v.distance_m)}`)))) : null,
      section(t('grid.history'), h('ul.plain.history', { id: 'history' }, inc.events.map(eventItem))));
    const actions = actionBar(inc, ctx.member, {
      done: (message, leave) => {
        busy = false;
        if (leave) { toast(message); ctx.navigate(''); return; }
        fill(notice, h('p.ok', { role: 'status' }, message));
        load();
      },
      sheet: (open) => { busy = open; },
    });
    bar.hidden = !actions;
    if (actions) fill(bar, actions);
    else bar.replaceChildren();
    body.classList.toggle('with-bar', Boolean(actions));
  }

  ctx.onCleanup(onLive(({ data }) => {
    if (String(data?.incident_id) !== String(id)) return;
    if (!busy) { load(); return; }
    fill(notice, h('p.warn', { role: 'status' }, t('grid.changed'), ' ',
      h('button.link', { type: 'button', onclick: () => { fill(notice); busy = false; load(); } }, t('nearby.refresh'))));
  }));
  ctx.onCleanup(() => document.querySelector('.viewer')?.remove());
  load();
  return h('div.incident.grid-incident', { id: 'incident' }, body, notice, bar);
}
