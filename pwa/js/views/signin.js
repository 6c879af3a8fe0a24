// Sign-in: an enrolment link (#/enrol/CODE, as the enrolment API and `gridrider enrol` make them; also
// #/enrol?code=CODE) or a typed code, then the phone's last four digits and the privacy notice.
import { h, fill } from '../dom.js';
import { t, getLang } from '../i18n.js';
import { get, post } from '../api.js';
import { saveSession, member } from '../session.js';
import { items } from '../outbox.js';
import { errorBlock } from '../ui.js';

export async function signInView(ctx) {
  const code = ctx.params.code || ctx.query.get('code') || '';
  const notice = h('div.notice', { id: 'privacy-text' }, t('common.loading'));
  const status = h('div', { 'aria-live': 'polite' });
  const codeInput = h('input', {
    id: 'code', name: 'code', required: true, autocomplete: 'one-time-code', autocapitalize: 'characters',
    spellcheck: 'false', value: code, maxlength: 40,
  });
  const digits = h('input', {
    id: 'phone4', name: 'phone4', required: true, inputmode: 'numeric', pattern: '[0-9]{4}', maxlength: 4,
    autocomplete: 'off',
  });
  const accept = h('input', { id: 'accept', type: 'checkbox', required: true });
  const submit = h('button.primary.big', { type: 'submit', id: 'sign-in' }, t('signin.submit'));

  get('/api/v1/privacy-notice', { auth: false })
    .then((text) => fill(notice, getLang() === 'en' ? text.text_en : text.text_zh))
    .catch(() => fill(notice, t('signin.noticeOffline')));

  async function onSubmit(event) {
    event.preventDefault();
    submit.disabled = true;
    fill(status, t('signin.working'));
    try {
      const reply = await post('/api/v1/sessions', {
        code: codeInput.value.trim(), phone_last4: digits.value.trim(), accept_privacy: accept.checked,
        device: navigator.userAgent.slice(0, 120),
      }, { auth: false });
      await saveSession(reply.token, reply.member);
      fill(status);
      dispatchEvent(new CustomEvent('gridrider:signed-in'));
    } catch (err) {
      fill(status, errorBlock(err));
      submit.disabled = false;
    }
  }

  // Signed out by a 401: reassure the rider that nothing on the phone was lost.
  let expired = null;
  if (ctx.query.get('expired') && member()) {
    const waiting = (await items(member().id)).filter((i) => i.state !== 'sent').length;
    expired = h('div.banner.warn', { role: 'status' }, h('p', null, t('signin.expired')),
      waiting ? h('p', null, t('signin.kept', { n: waiting })) : null);
  }

  return h('form.signin', { onsubmit: onSubmit, novalidate: false },
    h('h1', null, t('signin.title')),
    expired,
    h('label', { for: 'code' }, t('signin.code')), codeInput,
    h('p.muted', null, t('signin.codeHint')),
    h('label', { for: 'phone4' }, t('signin.phone4')), digits,
    h('h2', null, t('signin.privacy')), notice,
    h('label.check', { for: 'accept' }, accept, h('span', null, t('signin.accept'))),
    status,
    h('div.actions', null, submit));
}
