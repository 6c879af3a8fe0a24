// The supervisor (管理员) app, also used by admins — a placeholder home until its issue lands. Add views
// as files in this folder and list them in `routes` (and `nav`); a desktop layout can hang off
// document.body.dataset.role, which the shell sets to the member's role.
import { h } from '../../dom.js';
import { t } from '../../i18n.js';

function homeView(ctx) {
  return h('div.empty', null,
    h('h1', null, t('supervisor.title')),
    h('p', null, t('placeholder.soon', { name: ctx.member.display_name || ctx.member.pseudonym })));
}

export const routes = { '': homeView };
export const nav = [];
