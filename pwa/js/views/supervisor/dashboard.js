// 总览: the figures of GET /api/v1/dashboard for a date range and an area — counts, on-time rates,
// completion, what is overdue now (each a link to the incident), bars, and the area and hotspot map.
import { h } from '../../dom.js';
import { t, formatTime } from '../../i18n.js';
import { get } from '../../api.js';
import { errorBlock, section } from '../../ui.js';
import { areaMap, bars, categoryName, dur, emptyRow, field, filterForm, input, page, pct, scopeSelect, table } from './common.js';

const STATES = ['unrouted', 'dispatched', 'accepted', 'resolved', 'closed', 'rejected', 'merged'];
const STAGES = ['dispatch', 'accept', 'resolve'];

const figure = (id, value, label, sub) => h('div', null, h('strong', { id }, String(value)), h('span', null, label),
  sub ? h('span.muted', null, sub) : null);

// The areas drawn: the chosen scope's subtree (the API limits it to the caller's), as GeoJSON features.
async function shapes(scope) {
  const q = scope ? `?scope=${encodeURIComponent(scope)}` : '';
  const fc = await get(`/api/v1/areas/shapes${q}`).catch(() => ({ features: [] }));
  return fc.features.map((f) => ({ ...f.properties, polygon: f.geometry }));
}

export async function dashboardView(ctx) {
  const q = new URLSearchParams([...ctx.query].filter(([k, v]) => ['scope', 'from', 'to'].includes(k) && v));
  const form = filterForm(ctx,
    field(t('supervisor.from'), input(ctx, 'from', { type: 'date' })),
    field(t('supervisor.to'), input(ctx, 'to', { type: 'date' })),
    field(t('supervisor.scope'), await scopeSelect(ctx)));
  let d, areaShapes;
  try {
    [d, areaShapes] = await Promise.all([get(`/api/v1/dashboard?${q}`), shapes(ctx.query.get('scope'))]);
  } catch (err) {
    return page(t('supervisor.nav.dashboard'), form, errorBlock(err));
  }
  // The range the server used (its default is this month so far), so the pickers never show blanks.
  form.elements.from.value = d.from;
  form.elements.to.value = d.to;

  const cats = await Promise.all(Object.entries(d.by_category).sort((a, b) => b[1] - a[1])
    .map(async ([key, value]) => ({ key, value, label: await categoryName(key) })));
  const overdue = await Promise.all(d.overdue.incidents.map(async (i) => h('tr', { dataset: { incident: i.id } },
    h('td', null, h('a', { href: `#/incidents/${i.id}` }, `#${i.id}`)),
    h('td', null, await categoryName(i.category)), h('td', null, i.area_code || '—'),
    h('td', null, t(`stage.${i.stage}`)), h('td.warn', null, dur(i.overdue_s)), h('td', null, formatTime(i.due_at)))));
  const outlines = areaShapes.some((a) => a.polygon);

  return page(t('supervisor.nav.dashboard'), form,
    h('div.figures.wide', null,
      figure('fig-incidents', d.incidents, t('supervisor.fig.incidents')),
      figure('fig-completion', pct(d.completion.rate), t('supervisor.fig.completion'),
        t('supervisor.fig.of', { a: d.completion.completed, b: d.completion.eligible })),
      figure('fig-overdue', d.overdue.count, t('supervisor.fig.overdue')),
      figure('fig-riders', d.riders.active, t('supervisor.fig.riders'))),
    h('div.panels', null,
      section(t('supervisor.fig.byState'), bars('chart-states', STATES.map((key) => ({ key, label: t(`supervisor.state.${key}`), value: d.by_state[key] || 0 })))),
      section(t('supervisor.fig.onTime'), bars('chart-ontime', STAGES.map((key) => {
        const o = d.on_time[key];
        return { key, label: t(`stage.${key}`), value: (o.rate ?? 0) * 100, text: `${pct(o.rate)} (${o.on_time}/${o.judged})` };
      }), { max: 100 }),
      h('p.muted', null, t('supervisor.fig.medians', {
        a: dur(d.durations.creation_to_dispatch.median_s), b: dur(d.durations.dispatch_to_accept.median_s),
        c: dur(d.durations.accept_to_resolve.median_s) }))),
      section(t('supervisor.fig.byCategory'), cats.length ? bars('chart-categories', cats) : h('p.muted', null, t('supervisor.none'))),
      section(t('supervisor.fig.platforms'), d.riders.by_platform.length ? bars('chart-platforms', d.riders.by_platform.map((p) => ({
        key: p.platform || 'none', label: t(`supervisor.platform.${p.platform || 'none'}`), value: p.reports,
        text: t('supervisor.fig.ridersReports', { r: p.riders, n: p.reports }) }))) : h('p.muted', null, t('supervisor.none')))),
    section(t('supervisor.map.title'), areaMap(areaShapes, d.hotspots),
      outlines ? null : h('p.muted', null, t('supervisor.map.noOutlines')),
      h('p.muted', null, t('supervisor.map.legend'))),
    section(t('supervisor.fig.overdueNow', { n: d.overdue.count }),
      table('overdue', [t('supervisor.col.id'), t('supervisor.col.category'), t('supervisor.col.area'), t('supervisor.col.stage'),
        t('supervisor.col.overdueBy'), t('supervisor.col.due')], overdue.length ? overdue : emptyRow(6, t('supervisor.none')))));
}
