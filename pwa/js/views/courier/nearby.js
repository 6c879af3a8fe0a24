// Nearby: open incidents within ~300 m to confirm with one tap (还在 / 已消失), and recently resolved ones
// (已修好 / 没修好). Each answer is sent with the rider's current position; the server checks the distance.
import { h, fill } from '../../dom.js';
import { t, pick, formatDistance } from '../../i18n.js';
import { get, post } from '../../api.js';
import { getFix } from '../../geo.js';
import { chip, errorBlock, errorText, loading } from '../../ui.js';
import { reportState } from './reports.js';

function card(item, here) {
  const answers = h('div.actions.answers');
  const draw = (done) => fill(answers, done === 'given' ? h('p.muted', null, t('nearby.already'))
    : done ? h('p.ok', null, t('nearby.thanks', { answer: t(`answer.${done}`) }))
    : item.answers.map((answer) => h('button.big', {
      type: 'button', dataset: { answer },
      onclick: async (event) => {
        event.currentTarget.disabled = true;
        try {
          await post(`/api/v1/incidents/${item.id}/verifications`, { answer, lat: here.lat, lon: here.lon });
          draw(answer);
        } catch (err) {
          fill(answers, errorBlock(err));
        }
      },
    }, t(`answer.${answer}`))));
  draw(item.answers.length ? null : 'given');
  return h('article.card', { dataset: { incident: item.id } },
    h('div.card-head', null,
      item.thumb_url ? h('img.thumb-sm', { src: item.thumb_url, alt: '', loading: 'lazy' }) : null,
      h('span.grow', null, h(item.life_safety ? 'strong.life-text' : 'strong', null, pick(item, 'category')),
        h('span.muted', null, formatDistance(item.distance_m))),
      chip(reportState({ incident_state: item.state }))),
    answers);
}

export async function nearbyView(ctx) {
  const list = h('div', { id: 'nearby-list', 'aria-live': 'polite' }, loading());
  async function refresh() {
    fill(list, h('p.loading', null, t('nearby.locating')));
    let here;
    try {
      here = await getFix({ maximumAge: 30000 });
    } catch (err) {
      fill(list, h('p.warn', null, t(err.code === 'denied' ? 'locate.deniedLong' : 'locate.noneLong')));
      return;
    }
    try {
      const found = await get(`/api/v1/incidents/nearby?lat=${here.lat}&lon=${here.lon}`);
      if (!ctx.isCurrent()) return;
      fill(list, found.length ? found.map((item) => card(item, here)) : h('p.muted', null, t('nearby.none')));
    } catch (err) {
      fill(list, h('p.warn', null, errorText(err)));
    }
  }
  refresh();
  return h('div', null,
    h('h1', null, t('nearby.title')),
    h('p.muted', null, t('nearby.hint')),
    list,
    h('button', { type: 'button', id: 'nearby-refresh', onclick: refresh }, t('nearby.refresh')));
}
