// 审核: open anti-gaming flags of the riders in reach (DESIGN.md §2d) — the evidence as the detector
// recorded it, clear (not gaming: what was held back is paid) or confirm with a reason — and appeals
// against rejected reports, upheld or dismissed.
import { h, fill } from '../../dom.js';
import { t, formatTime } from '../../i18n.js';
import { get } from '../../api.js';
import { errorBlock, loading, section } from '../../ui.js';
import { decide, page, post } from './common.js';
import { appealsBlock } from './incidents.js';

// Evidence is the detector's own record (distances, times, counts): shown as it is, key by key.
const evidence = (e) => h('dl.evidence', null, Object.entries(e).map(([k, v]) => [h('dt', null, k),
  h('dd', null, typeof v === 'object' ? JSON.stringify(v) : String(v))]));

function flagCard(f) {
  return h('article.card', { dataset: { flag: f.id } },
    h('div.card-head', null,
      h('strong.grow', null, t(`supervisor.flag.${f.kind}`)),
      h('span', null, f.member_pseudonym || '—')),
    h('p.muted', null, [formatTime(f.created_at), f.withheld_points ? t('supervisor.withheld', { n: f.withheld_points }) : null]
      .filter(Boolean).join(' · '), ' ',
    f.incident_id ? h('a', { href: `#/incidents/${f.incident_id}` }, t('supervisor.openIncident', { id: f.incident_id })) : null),
    evidence(f.evidence),
    h('div.actions', null,
      decide(t('supervisor.clear'), () => post(`/api/v1/review/flags/${f.id}/clear`, {}), { name: 'clear' }),
      decide(t('supervisor.confirm'), (reason) => post(`/api/v1/review/flags/${f.id}/confirm`, { reason }),
        { name: 'confirm', reason: 'required', danger: true })));
}

export async function reviewView() {
  const flags = h('div', { id: 'flags' }, loading());
  const appeals = h('div', null, loading());
  get('/api/v1/review').then((list) => fill(flags, list.length ? list.map(flagCard) : h('p.muted', null, t('supervisor.none'))),
    (err) => fill(flags, errorBlock(err)));
  appealsBlock().then((node) => fill(appeals, node), (err) => fill(appeals, errorBlock(err)));
  return page(t('supervisor.nav.review'), section(t('supervisor.flags'), flags), section(t('supervisor.appeals'), appeals));
}
