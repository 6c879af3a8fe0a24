// The signed-in member, the language, and signing out — the same for every role.
import { h } from '../dom.js';
import { t, getLang, setLang } from '../i18n.js';
import { member, signOut } from '../session.js';
import { items } from '../outbox.js';
import { section } from '../ui.js';

export async function accountView() {
  const me = member();
  const waiting = me ? (await items(me.id)).filter((i) => i.state !== 'sent').length : 0;
  const row = (label, value) => (value ? h('div.row', null, h('span.muted', null, label), h('span', null, value)) : null);
  return h('div', null,
    h('h1', null, t('account.title')),
    me ? section(t('account.me'),
      row(t('account.name'), me.display_name),
      row(t('account.pseudonym'), me.pseudonym),
      row(t('account.role'), t(`role.${me.role}`)),
      row(t('account.phone'), me.phone)) : null,
    section(t('account.language'),
      h('div.actions', null,
        h('button', { type: 'button', 'aria-pressed': String(getLang() === 'zh-CN'), onclick: () => setLang('zh-CN') }, '中文'),
        h('button', { type: 'button', 'aria-pressed': String(getLang() === 'en'), onclick: () => setLang('en') }, 'English'))),
    section(t('account.signOut'),
      waiting ? h('p.warn', null, t('account.signOutWaiting', { n: waiting })) : null,
      h('button.danger', {
        type: 'button', id: 'sign-out',
        onclick: async () => {
          if (waiting && !confirm(t('account.signOutConfirm'))) return;
          await signOut();
          dispatchEvent(new CustomEvent('gridrider:signed-out'));
        },
      }, t('account.signOut'))));
}
