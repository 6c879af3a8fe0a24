// 兑换: riders' reward requests in reach — pending ones first (approve, or decline with a reason the
// rider reads), the decided ones by state.
import { h } from '../../dom.js';
import { t, formatTime, getLang } from '../../i18n.js';
import { get } from '../../api.js';
import { chip, errorBlock } from '../../ui.js';
import { decide, field, filterForm, page, post, select, who } from './common.js';

const STATES = ['pending', 'approved', 'rejected', 'fulfilled'];

function card(r) {
  return h('article.card', { dataset: { redemption: r.id } },
    h('div.card-head', null,
      h('strong.grow', null, (getLang() === 'en' && r.reward_name_en) || r.reward_name_zh),
      h('span', null, t('rewards.cost', { n: r.cost })),
      chip(`redemption_${r.state}`)),
    h('p.muted', null, `${who({ display_name: r.member_display_name, pseudonym: r.member_pseudonym })} · ${r.member_pseudonym} · ${formatTime(r.created_at)}`),
    r.reason ? h('p', null, r.reason) : null,
    r.state === 'pending' ? h('div.actions', null,
      decide(t('supervisor.approve'), () => post(`/api/v1/redemptions/${r.id}/approve`, {}), { name: 'approve' }),
      decide(t('supervisor.decline'), (reason) => post(`/api/v1/redemptions/${r.id}/decline`, { reason }),
        { name: 'decline', reason: 'required', danger: true })) : null);
}

export async function redemptionsView(ctx) {
  const state = ctx.query.get('state') ?? 'pending';
  const form = filterForm(ctx, field(t('supervisor.state'), select(ctx, 'state',
    [...STATES.map((s) => [s, t(`state.redemption_${s}`)]), ['all', t('supervisor.all')]], { value: 'pending' })));
  try {
    const list = await get(`/api/v1/redemptions${state === 'all' ? '' : `?state=${encodeURIComponent(state)}`}`);
    return page(t('supervisor.nav.redemptions'), form,
      h('div', { id: 'redemptions' }, list.length ? list.map(card) : h('p.muted', null, t('supervisor.none'))));
  } catch (err) {
    return page(t('supervisor.nav.redemptions'), form, errorBlock(err));
  }
}
