// Points: balance, provisional points (grey: not earned yet), this month and rank, the history with its
// reasons, the rewards catalogue with a redemption request, and the rider's redemptions.
import { h, fill } from '../../dom.js';
import { t, formatTime, getLang } from '../../i18n.js';
import { get, post } from '../../api.js';
import { chip, errorBlock, errorText, loading, section } from '../../ui.js';

const rewardName = (r) => (getLang() === 'en' && r.reward_name_en) || r.reward_name_zh;

export async function pointsView(ctx) {
  const summary = h('div', { id: 'points-summary' }, loading());
  const history = h('ul.ledger', { id: 'ledger' });
  const rewards = h('div', { id: 'rewards' }, loading());
  const mine = h('div', { id: 'redemptions' });
  const earlier = h('div', { id: 'ledger-more' });
  let balance = 0;
  let drawn = 0; // which drawing of the history a page belongs to: a redraw (after a redemption) starts over

  const ledgerRow = (row) => h('li', null,
    h('span.grow', null, t(`reason.${row.reason}`), h('span.muted', null, formatTime(row.created_at))),
    h(row.amount >= 0 ? 'strong.plus' : 'strong.minus', null, row.amount > 0 ? `+${row.amount}` : String(row.amount)));

  // The summary brings the newest 50 rows; older ones come a page at a time, appended below.
  function earlierButton(before) {
    return h('button', {
      type: 'button', id: 'ledger-earlier',
      onclick: async (event) => {
        event.currentTarget.disabled = true;
        const generation = drawn;
        try {
          const page = await get(`/api/v1/me/points/ledger?before=${encodeURIComponent(before)}`);
          if (generation !== drawn) return; // the history was drawn afresh meanwhile: this page belongs to the old one
          history.append(...page.items.map(ledgerRow));
          fill(earlier, page.next ? earlierButton(page.next) : null);
        } catch (err) {
          if (generation === drawn) fill(earlier, errorBlock(err), earlierButton(before));
        }
      },
    }, t('points.earlier'));
  }

  async function drawSummary() {
    try {
      const p = await get('/api/v1/me/points');
      balance = p.balance;
      fill(summary, h('div.figures', null,
        h('div', null, h('strong', { id: 'balance' }, String(p.balance)), h('span', null, t('points.balance'))),
        h('div.muted', null, h('strong', null, String(p.provisional)), h('span', null, t('points.provisional'))),
        h('div', null, h('strong', null, String(p.month_points)), h('span', null, t('points.month'))),
        h('div', null, h('strong', null, p.rank ? `#${p.rank}` : '—'), h('span', null, t('points.rank')))));
      drawn += 1;
      fill(history, p.ledger.length ? p.ledger.map(ledgerRow) : h('li.muted', null, t('points.noHistory')));
      fill(earlier, p.ledger_next ? earlierButton(p.ledger_next) : null);
    } catch (err) {
      fill(summary, h('p.warn', null, errorText(err)));
    }
  }

  async function drawRewards() {
    try {
      const list = await get('/api/v1/rewards');
      fill(rewards, list.length ? list.map((r) => {
        const status = h('div', { 'aria-live': 'polite' });
        const out = r.stock === 0;
        return h('article.card', { dataset: { reward: r.id } },
          h('div.card-head', null,
            h('strong.grow', null, (getLang() === 'en' && r.name_en) || r.name_zh),
            h('span', null, t('rewards.cost', { n: r.cost }))),
          r.stock != null ? h('p.muted', null, t('rewards.stock', { n: r.stock })) : null,
          h('button.primary', {
            type: 'button', disabled: out || balance < r.cost,
            onclick: async (event) => {
              if (!confirm(t('rewards.confirm', { n: r.cost }))) return;
              event.currentTarget.disabled = true;
              try {
                await post('/api/v1/redemptions', { reward_id: r.id });
                fill(status, h('p.ok', null, t('rewards.requested')));
                drawSummary();
                drawMine();
              } catch (err) {
                fill(status, errorBlock(err));
              }
            },
          }, out ? t('rewards.out') : t('rewards.redeem')),
          status);
      }) : h('p.muted', null, t('rewards.none')));
    } catch (err) {
      fill(rewards, h('p.warn', null, errorText(err)));
    }
  }

  async function drawMine() {
    try {
      const list = await get('/api/v1/me/redemptions');
      fill(mine, list.map((r) => h('div.card.row', null,
        h('span.grow', null, h('strong', null, rewardName(r)), h('span.muted', null, formatTime(r.created_at))),
        chip(`redemption_${r.state}`),
        r.reason ? h('p.muted', null, r.reason) : null)));
    } catch {
      fill(mine);
    }
  }

  await drawSummary();
  drawRewards();
  drawMine();
  return h('div', null,
    h('h1', null, t('points.title')),
    summary,
    section(t('rewards.title'), rewards),
    section(t('rewards.mine'), mine),
    section(t('points.history'), history, earlier));
}
