// Notifications: the opt-in with its one-sentence reason, and what to do when the phone cannot or will not.
// The inbox shows the card until alerts are on; the 通知 page shows it always (with "turn off").
import { h, fill } from '../../dom.js';
import { t } from '../../i18n.js';
import { errorBlock } from '../../ui.js';
import { pushState, enablePush, disablePush, keepPushCurrent } from './push.js';

export function pushCard({ always = false } = {}) {
  // Hidden until the phone's state is known: the inbox must not flash a card for alerts already on.
  const box = h('section.block.push-card', { id: 'push', hidden: true });

  function draw(state, err) {
    box.dataset.state = state;
    box.hidden = state === 'on' && !always;
    const button = (id, label, act, cls = 'primary') => h(`button.${cls}`, {
      type: 'button', id,
      onclick: async () => {
        fill(box, h('p', { role: 'status' }, t('grid.push.working')));
        try {
          draw(await act());
        } catch (e) {
          draw(await pushState(), e);
        }
      },
    }, label);
    // Nothing to ask on the inbox (blocked, or a browser that cannot): one line to the page that says why.
    const hint = !always && state !== 'off';
    box.classList.toggle('push-hint', hint);
    if (hint) {
      fill(box, h('a', { href: '#/alerts' }, t('grid.push.hint')));
      return;
    }
    fill(box,
      h('h2', null, '🔔 ', t('grid.push.title')),
      h('p', null, t(`grid.push.${state}`)),
      state === 'off' ? button('push-on', t('grid.push.enable'), enablePush) : null,
      state === 'on' && always ? button('push-off', t('grid.push.disable'), disablePush, 'link') : null,
      err ? errorBlock(err) : null);
  }

  pushState().then((state) => {
    draw(state);
    if (state === 'on') keepPushCurrent();
  });
  return box;
}

export function alertsView() {
  return h('div', null, h('h1', null, t('grid.nav.alerts')), pushCard({ always: true }));
}
