// The grid member (网格员) app — a placeholder home until its issue lands. Add views as files in this
// folder and list them in `routes` (and `nav`); the shell reaches them for members with role "grid_member".
// Notifications open '#/incidents/ID': give that route an incident view here.
import { h } from '../../dom.js';
import { t } from '../../i18n.js';

function homeView(ctx) {
  return h('div.empty', null,
    h('h1', null, t('grid.title')),
    h('p', null, t('placeholder.soon', { name: ctx.member.display_name || ctx.member.pseudonym })));
}

export const routes = { '': homeView };
export const nav = [];
