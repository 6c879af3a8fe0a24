// 导出: the two CSV files of api/exports.py — incidents of a date range and the rider ranking of a
// period — in the reader's language, fetched with the Bearer header and saved by the browser.
import { h, fill } from '../../dom.js';
import { t, getLang } from '../../i18n.js';
import { errorBlock, section } from '../../ui.js';
import { download, field, page, scopeSelect } from './common.js';
import { atInput, periodSelect, platformSelect } from './rankings.js';

// A form whose filled fields become the file's query; the file's name says what it holds.
function exportForm(id, file, fields) {
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form.filters', {
    id,
    onsubmit: async (event) => {
      event.preventDefault();
      const q = new URLSearchParams([...new FormData(form)].filter(([, v]) => v));
      q.set('lang', getLang() === 'en' ? 'en' : 'zh');
      const button = event.submitter;
      button.disabled = true;
      fill(out);
      try {
        const tag = [q.get('scope'), q.get('from'), q.get('to'), q.get('at')].filter(Boolean).join('_');
        await download(`/api/v1/exports/${file}.csv?${q}`, `${file}${tag ? `_${tag}` : ''}.csv`);
        fill(out, h('p.ok', { role: 'status' }, t('supervisor.export.done')));
      } catch (err) {
        fill(out, errorBlock(err));
      }
      button.disabled = false;
    },
  }, fields, h('button.primary', { type: 'submit' }, t('supervisor.export.download')));
  return [form, out];
}

export async function exportsView(ctx) {
  const none = { query: new URLSearchParams() }; // the export pickers start blank: the server's defaults apply
  return page(t('supervisor.nav.exports'),
    section(t('supervisor.export.incidents'), h('p.muted', null, t('supervisor.export.incidentsHint')),
      exportForm('export-incidents', 'incidents', [
        field(t('supervisor.from'), h('input', { type: 'date', name: 'from' })),
        field(t('supervisor.to'), h('input', { type: 'date', name: 'to' })),
        field(t('supervisor.scope'), await scopeSelect(none))])),
    section(t('supervisor.export.rankings'), h('p.muted', null, t('supervisor.export.rankingsHint')),
      exportForm('export-rankings', 'rankings', [
        field(t('supervisor.period'), periodSelect(none)), field(t('supervisor.at'), atInput(none)),
        field(t('supervisor.scope'), await scopeSelect(none, 'scope', { id: 'f-rscope' })), field(t('supervisor.platform'), platformSelect(none))])));
}
