// 待办: the incidents of my grids in the API's order (life-safety first, then the nearest deadline), each
// with the time left on its current stage, counting down on the page. The live stream refreshes it; when
// the stream is down it is fetched again every minute instead.
import { h, fill } from '../../dom.js';
import { t, pick, formatDistance } from '../../i18n.js';
import { get } from '../../api.js';
import { categoryByCode, iconOf, loadCategories } from '../../categories.js';
import { errorBlock, loading } from '../../ui.js';
import { stateChip, leftText, urgency, countdown, STAGE_OF, metres, whereAmI } from './common.js';
import { onLive, onLiveState, liveState } from './live.js';
import { pushCard } from './alerts.js';

// The filter buttons → the API's state filter.
const FILTERS = {
  open: ['dispatched', 'accepted'],
  dispatched: ['dispatched'],
  accepted: ['accepted'],
  done: ['resolved', 'closed'],
  rejected: ['rejected', 'merged'],
};

async function card(item, here) {
  const stage = STAGE_OF[item.state];
  const left = item.seconds_left != null && stage ? countdown(item.seconds_left) : null;
  const due = h('p.left');
  const tick = () => {
    if (!left) return;
    const s = left();
    due.dataset.urgency = urgency(s, item.life_safety);
    due.textContent = `${t(`grid.due.${stage}`)} · ${leftText(s)}`;
  };
  tick();
  const far = here ? metres({ lat: here.lat, lon: here.lon }, item) : null;
  return {
    tick,
    node: h('a.card.gcard', { href: `#/incidents/${item.id}`, dataset: { incident: item.id, life: item.life_safety, state: item.state } },
      h('div.card-head', null,
        h('span.icon', { 'aria-hidden': 'true' }, iconOf(await categoryByCode(item.category))),
        h('strong.grow', null, pick(item, 'category')),
        stateChip(item.state)),
      h('p.muted', null,
        item.life_safety ? h('span.life-badge', null, t('grid.lifeSafety')) : null,
        [item.area_zh, t('incident.reports', { n: item.report_count }), far != null ? formatDistance(far) : null]
          .filter(Boolean).join(' · ')),
      left ? due : null),
  };
}

export function inboxView(ctx) {
  const filter = FILTERS[ctx.query.get('f')] ? ctx.query.get('f') : 'open';
  const list = h('div', { id: 'inbox' }, loading());
  const more = h('div');
  const live = h('p.live.muted', { id: 'live' });
  let ticks = [];
  let loadedAt = 0;

  const showLive = (state) => {
    live.dataset.state = state;
    live.textContent = t(`grid.live.${state}`);
  };
  showLive(liveState());

  async function page(cursor) {
    const q = new URLSearchParams({ limit: '20' });
    FILTERS[filter].forEach((s) => q.append('state', s));
    if (cursor) q.set('cursor', cursor);
    return get(`/api/v1/incidents?${q}`);
  }

  async function cards(items, into) {
    const here = await whereAmI();
    const made = await Promise.all(items.map((i) => card(i, here)));
    ticks.push(...made.map((c) => c.tick));
    into.append(...made.map((c) => c.node));
  }

  function moreButton(cursor) {
    fill(more, cursor ? h('button', {
      type: 'button', id: 'more',
      onclick: async (e) => {
        e.target.disabled = true;
        try {
          const next = await page(cursor);
          await cards(next.items, list);
          moreButton(next.next_cursor);
        } catch (err) {
          fill(more, errorBlock(err));
        }
      },
    }, t('reports.more')) : null);
  }

  async function load() {
    loadedAt = Date.now();
    try {
      const [first] = await Promise.all([page(), loadCategories().catch(() => null)]);
      if (!ctx.isCurrent()) return;
      ticks = [];
      const fresh = h('div');
      await cards(first.items, fresh);
      if (!ctx.isCurrent()) return;
      fill(list, first.items.length ? [...fresh.childNodes] : h('p.empty.muted', null, t('grid.inbox.none')));
      list.dataset.count = first.items.length; // tests wait on it
      moreButton(first.next_cursor);
    } catch (err) {
      fill(list, errorBlock(err));
    }
  }

  // A burst of events (a report and its merge, a replay after reconnecting) is one fetch.
  let soon = null;
  ctx.onCleanup(onLive(() => {
    clearTimeout(soon);
    soon = setTimeout(load, 300);
  }));
  ctx.onCleanup(() => clearTimeout(soon));
  ctx.onCleanup(onLiveState(showLive));
  const clock = setInterval(() => {
    ticks.forEach((tick) => tick());
    if (liveState() !== 'open' && Date.now() - loadedAt > 60000) load();
  }, 15000);
  ctx.onCleanup(() => clearInterval(clock));
  load();

  const filters = h('div.gfilters', { role: 'group', 'aria-label': t('grid.filter') },
    Object.keys(FILTERS).map((f) => h('button', {
      type: 'button', 'aria-pressed': String(f === filter), dataset: { filter: f },
      onclick: () => ctx.navigate(f === 'open' ? '' : `?f=${f}`),
    }, t(`grid.filter.${f}`))));

  return h('div.inbox', null,
    h('h1', null, t('grid.title')),
    pushCard(),
    h('div.inbox-head', null, h('h2', null, t('grid.nav.inbox')), live,
      h('button.link', { type: 'button', id: 'refresh', onclick: load }, t('nearby.refresh'))),
    filters, list, more);
}
