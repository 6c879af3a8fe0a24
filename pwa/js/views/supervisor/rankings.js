// 排行: riders by points (50 a page, open flags beside each — a high rank with flags wants a look) and
// grid teams by how they handle their incidents; period, moment, area and platform in the hash.
import { h } from '../../dom.js';
import { t, pick } from '../../i18n.js';
import { get } from '../../api.js';
import { errorBlock } from '../../ui.js';
import { emptyRow, field, filterForm, input, moreButton, page, pct, scopeSelect, select, table, who } from './common.js';

export const PLATFORMS = ['meituan', 'eleme', 'sf', 'jd', 'other'];
export const periodSelect = (ctx) => select(ctx, 'period', ['month', 'quarter', 'year'].map((p) => [p, t(`supervisor.period.${p}`)]));
export const atInput = (ctx) => input(ctx, 'at', { placeholder: '2026-11 · 2026-Q4 · 2026', pattern: '\\d{4}(-\\d{2}|-Q[1-4])?', size: 10 });
export const platformSelect = (ctx) => select(ctx, 'platform', [['', t('supervisor.platformAll')], ...PLATFORMS.map((p) => [p, t(`supervisor.platform.${p}`)])]);

const riderRow = (r) => h('tr', { dataset: { member: r.member_id } },
  h('td', null, String(r.rank)), h('td', null, r.pseudonym), h('td', null, who(r)),
  h('td', null, r.platform ? t(`supervisor.platform.${r.platform}`) : '—'), h('td.num', null, String(r.points)),
  h('td.num', null, String(r.reports)), h('td.num', null, String(r.accepted_reports)), h('td.num', null, String(r.first_discoveries)),
  h('td.num', null, pct(r.acceptance_rate)),
  h('td.num', { dataset: { flags: r.open_flags } }, r.open_flags ? h('a.warn', { href: '#/review' }, `⚑ ${r.open_flags}`) : '0'));

const teamRow = (r) => h('tr', { dataset: { area: r.area_code } },
  h('td', null, String(r.rank)), h('td', null, pick(r, 'name')), h('td.num', null, String(r.incidents)),
  h('td.num', null, pct(r.accept_on_time_rate)), h('td.num', null, pct(r.resolve_on_time_rate)), h('td.num', null, pct(r.completion_rate)),
  h('td.num', null, pct(r.rejection_rate)), h('td.num', null, String(r.transfers)), h('td.num', null, String(r.reused_proof_photos)));

export async function rankingsView(ctx) {
  const teams = ctx.query.get('tab') === 'teams';
  const q = new URLSearchParams([...ctx.query].filter(([k, v]) => v && ['period', 'at', 'scope', 'platform'].includes(k) && !(teams && k === 'platform')));
  const tab = (name) => h('a.tab', { href: `#/rankings?tab=${name}`, 'aria-current': (name === 'teams') === teams ? 'page' : null }, t(`supervisor.tab.${name}`));
  const head = [h('nav.tabs', null, tab('riders'), tab('teams')),
    filterForm(ctx, h('input', { type: 'hidden', name: 'tab', value: teams ? 'teams' : 'riders' }),
      field(t('supervisor.period'), periodSelect(ctx)), field(t('supervisor.at'), atInput(ctx)),
      field(t('supervisor.scope'), await scopeSelect(ctx)), teams ? null : field(t('supervisor.platform'), platformSelect(ctx)))];
  try {
    if (teams) {
      const r = await get(`/api/v1/rankings/teams?${q}`);
      return page(t('supervisor.nav.rankings'), head, h('p.muted', null, `${r.start} – ${r.end}`),
        table('teams', ['#', t('supervisor.col.grid'), t('supervisor.col.incidents'), t('supervisor.col.acceptOnTime'), t('supervisor.col.resolveOnTime'),
          t('supervisor.col.completion'), t('supervisor.col.rejection'), t('supervisor.col.transfers'), t('supervisor.col.reusedPhotos')],
        r.items.length ? r.items.map(teamRow) : emptyRow(9, t('supervisor.none'))));
    }
    const load = async (cursor) => {
      const r = await get(`/api/v1/rankings/riders?${q}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      return { r, rows: r.items.map(riderRow), next: r.next_cursor };
    };
    const first = await load();
    const tbl = table('riders', ['#', t('supervisor.col.pseudonym'), t('supervisor.col.name'), t('supervisor.col.platform'), t('supervisor.col.points'),
      t('supervisor.col.reports'), t('supervisor.col.accepted'), t('supervisor.col.first'), t('supervisor.col.acceptance'), t('supervisor.col.flags')],
    first.rows.length ? first.rows : emptyRow(10, t('supervisor.none')));
    return page(t('supervisor.nav.rankings'), head,
      h('p.muted', null, `${first.r.start} – ${first.r.end} · ${t('supervisor.ranked', { n: first.r.ranked })}`),
      tbl, moreButton(tbl.querySelector('tbody'), load, first.next));
  } catch (err) {
    return page(t('supervisor.nav.rankings'), head, errorBlock(err));
  }
}
