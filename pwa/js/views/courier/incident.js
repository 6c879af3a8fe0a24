// One incident the rider reported: where it is in its life, the after-photo once resolved, and the place
// on the phone's map app. A notification for the rider opens here too (#/incidents/ID).
import { h } from '../../dom.js';
import { t, pick, formatTime } from '../../i18n.js';
import { get } from '../../api.js';
import { chip, errorBlock, mapButtons, section } from '../../ui.js';
import { reportState } from './reports.js';

export async function incidentView(ctx) {
  let inc;
  try {
    inc = await get(`/api/v1/incidents/${encodeURIComponent(ctx.params.id)}`);
  } catch (err) {
    return h('div', null, h('h1', null, t('incident.title')), errorBlock(err), h('a.button', { href: '#/reports' }, t('nav.reports')));
  }
  const name = pick(inc, 'category');
  const state = reportState({ incident_state: inc.state });
  const photo = (p) => h('a', { href: p.display_url || p.thumb_url, target: '_blank', rel: 'noopener' },
    h('img.photo', { src: p.thumb_url, alt: t(p.role === 'proof' ? 'incident.proof' : 'incident.yourPhoto'), loading: 'lazy' }));
  const proofs = inc.photos.filter((p) => p.role === 'proof' && p.thumb_url);
  const mine = inc.photos.filter((p) => p.role !== 'proof' && p.thumb_url);
  const stages = inc.stages.map((s) => h('li', { dataset: { stage: s.stage } },
    h('strong', null, t(`stage.${s.stage}`)), ' ',
    s.done_at ? t('incident.doneAt', { time: formatTime(s.done_at) })
      : s.due_at ? t('incident.dueAt', { time: formatTime(s.due_at) }) : '—',
    s.overdue_at ? h('span.warn', null, ` · ${t('incident.overdue')}`) : null));
  return h('div.incident', null,
    h('h1', null, name),
    h('p', null, chip(state), ' ', inc.area_zh ? h('span.muted', null, inc.area_zh) : null),
    inc.life_safety ? h('p.life-note', null, t('incident.lifeSafety')) : null,
    inc.reject_reason ? h('p.warn', null, t('incident.rejected', { reason: t(`reject.${inc.reject_reason}`) })) : null,
    proofs.length ? section(t('incident.proof'), h('div.gallery', null, proofs.map(photo))) : null,
    section(t('incident.progress'), h('ol.stages', null, stages)),
    mine.length ? section(t('incident.yourPhoto'), h('div.gallery', null, mine.map(photo))) : null,
    section(t('incident.where'), h('p.muted', null, t('incident.reports', { n: inc.report_count })), mapButtons(inc.lat, inc.lon, name)));
}
