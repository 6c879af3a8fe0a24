// The bottom bar of an incident: what a grid member may do in its state (DESIGN.md §2b). Accept is one
// tap; every other action opens a sheet that says what will happen and asks for what the server needs
// (a grid, a reason, a proof photo) before its own confirm button — the confirmation for the ones that
// hand the incident away or end it. The server's refusals (problem+json title and field errors) are shown.
import { h, fill } from '../../dom.js';
import { t, getLang, pick, formatBytes, formatDistance } from '../../i18n.js';
import { get, post, ApiError, retryAfterSeconds } from '../../api.js';
import { token } from '../../session.js';
import { shrink } from '../../photos.js';
import { errorBlock } from '../../ui.js';
import { stateChip, metres } from './common.js';

// The grid capacity of domain/workflow.py's TRANSITIONS, per state. The server still decides (scope, the
// transfer limit, a colleague who accepted first) and says why when it refuses.
const OFFERED = {
  dispatched: ['accept', 'transfer', 'reject', 'merge'],
  accepted: ['resolve', 'request_complex', 'reject', 'merge'],
};
const PRIMARY = new Set(['accept', 'resolve']);
const DANGER = new Set(['reject', 'merge']);
// After these the incident is no longer mine to work (another grid's, or ended): back to the inbox.
const LEAVE = new Set(['transfer', 'reject', 'merge']);
const REJECT_REASONS = ['not_a_hazard', 'cannot_locate', 'out_of_scope'];
const MAX_PROOF = 3;

// The proof goes by XMLHttpRequest: fetch cannot report upload progress, and a photo over weak 4G takes a while.
function upload(path, form, progress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    xhr.setRequestHeader('Authorization', `Bearer ${token()}`);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.setRequestHeader('Accept-Language', getLang());
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) progress(e.loaded / e.total); };
    xhr.onerror = () => reject(new ApiError({ status: 0, code: 'network' }));
    xhr.onload = () => {
      let body = {};
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // a proxy's HTML page: the status alone must do
      }
      if (xhr.status < 300) { resolve(body); return; }
      // The shell owns what a 401 means (forget the token, ask to sign in): let api.js meet it too.
      if (xhr.status === 401) get('/api/v1/me').catch(() => {});
      reject(new ApiError({
        status: xhr.status, code: body.code || `http_${xhr.status}`, message: body.title || '',
        errors: Array.isArray(body.errors) ? body.errors : [], retryAfter: retryAfterSeconds(xhr.getResponseHeader('Retry-After')),
      }));
    };
    xhr.send(form);
  });
}

const field = (label, control) => [h('label', { for: control.id }, label), control];
const note = () => h('textarea', { id: 'act-note', rows: 2, maxlength: 500 });
const radios = (name, options) => h('div.choices', { role: 'radiogroup' }, options.map(([value, label]) =>
  h('label.check', null, h('input', { type: 'radio', name, value }), label)));
const checked = (root, name) => root.querySelector(`input[name="${name}"]:checked`)?.value;

// Each sheet: its fields, a check before sending (what is missing, in words) and the request itself.
const SHEETS = {
  transfer(inc, me, path) {
    const code = h('input', { id: 'grid-code', autocomplete: 'off', autocapitalize: 'characters', maxlength: 64, placeholder: 'ZW-ZWZ-C02-G03' });
    const text = note();
    // One tap fills the code in: the member's own other grids, then the grids nearest the hazard (the API's
    // list, nearest first); any other grid is typed.
    const choice = (grid, label) => h('button', { type: 'button', dataset: { grid }, onclick: () => { code.value = grid; code.focus(); } }, label);
    const mine = (me.area_codes || []).filter((c) => c !== inc.area_code);
    const nearest = h('div.choices', { id: 'transfer-targets' }, t('common.loading'));
    get(`/api/v1/incidents/${inc.id}/transfer-targets`).then((grids) => {
      const others = grids.filter((g) => !mine.includes(g.code));
      fill(nearest, others.map((g) => choice(g.code, t('grid.nearGrid', { name: pick(g, 'name'), distance: formatDistance(g.distance_m) }))));
    }, (err) => fill(nearest, errorBlock(err)));
    return {
      fields: [
        mine.length ? h('div.choices', null, mine.map((c) => choice(c, c))) : null,
        nearest,
        field(t('grid.gridCode'), code), field(t('grid.note'), text)],
      check: () => (code.value.trim() ? null : t('grid.needGrid')),
      send: () => post(path, { grid_code: code.value.trim(), note: text.value.trim() || null }),
    };
  },
  reject(inc, me, path, root) {
    const text = note();
    return {
      fields: [radios('reason', REJECT_REASONS.map((r) => [r, t(`reject.${r}`)])), field(t('grid.note'), text)],
      check: () => (checked(root, 'reason') ? null : t('grid.needReason')),
      send: () => post(path, { reason: checked(root, 'reason'), note: text.value.trim() || null }),
    };
  },
  request_complex(inc, me, path) {
    const reason = h('textarea', { id: 'complex-reason', rows: 3, maxlength: 500 });
    return {
      fields: field(t('grid.complexReason'), reason),
      check: () => (reason.value.trim() ? null : t('grid.needReason')),
      send: () => post(path, { reason: reason.value.trim() }),
    };
  },
  merge(inc, me, path, root) {
    // Candidates: the open incidents of the same category I can see, nearest first.
    const list = h('div.choices', { id: 'merge-targets' }, t('common.loading'));
    const q = new URLSearchParams({ category: inc.category, limit: '50' });
    ['dispatched', 'accepted'].forEach((s) => q.append('state', s));
    get(`/api/v1/incidents?${q}`).then((page) => {
      const others = page.items.filter((i) => i.id !== inc.id).sort((a, b) => metres(inc, a) - metres(inc, b));
      fill(list, others.length ? others.map((i) => h('label.check', null, h('input', { type: 'radio', name: 'target', value: i.id }),
        h('span', null, `#${i.id} · ${formatDistance(metres(inc, i))} · ${t('incident.reports', { n: i.report_count })} `, stateChip(i.state))))
        : h('p.muted', null, t('grid.noTargets')));
    }, (err) => fill(list, errorBlock(err)));
    return {
      fields: list,
      check: () => (checked(root, 'target') ? null : t('grid.needTarget')),
      send: () => post(path, { target_incident_id: Number(checked(root, 'target')) }),
    };
  },
  resolve(inc, me, path) {
    const shots = []; // shrunk on the phone: {blob, url, before, after}
    const list = h('div.photos', { id: 'proof-photos' });
    const status = h('p.muted', { role: 'status' });
    const text = note();
    const camera = h('input', {
      type: 'file', accept: 'image/*', capture: 'environment', multiple: true, id: 'proof-camera', class: 'visually-hidden',
      onchange: async () => {
        const files = [...camera.files].slice(0, MAX_PROOF - shots.length);
        camera.value = '';
        for (const file of files) {
          status.textContent = t('finish.shrinking');
          try {
            const small = await shrink(file);
            shots.push({ ...small, url: URL.createObjectURL(small.blob) });
            status.textContent = '';
          } catch {
            status.textContent = t('finish.photoFailed');
          }
          draw();
        }
      },
    });
    function draw() {
      fill(list, shots.map((s, i) => h('figure', null,
        h('img', { src: s.url, alt: t('incident.proof') }),
        h('figcaption', null, t('finish.saved', { before: formatBytes(s.before), after: formatBytes(s.after) })),
        h('button.remove', {
          type: 'button', 'aria-label': t('finish.removePhoto'),
          onclick: () => { URL.revokeObjectURL(s.url); shots.splice(i, 1); draw(); },
        }, '×'))),
      shots.length < MAX_PROOF ? h('label.button.camera', { for: 'proof-camera' }, '📷 ', t(shots.length ? 'finish.morePhoto' : 'grid.takeProof')) : null,
      camera);
    }
    draw();
    return {
      fields: [list, status, field(t('grid.note'), text)],
      check: () => (shots.length ? null : t('grid.needPhoto')),
      send: (progress) => {
        const form = new FormData();
        form.append('meta', JSON.stringify({ note: text.value.trim() || null }));
        shots.forEach((s, i) => form.append('photo', s.blob, `proof-${i + 1}.jpg`));
        return upload(path, form, progress);
      },
      dispose: () => shots.forEach((s) => URL.revokeObjectURL(s.url)),
    };
  },
};

// The bar for this incident and member, or null when nothing is theirs to do. `done(message, leave)` redraws
// the incident or leaves it; `sheet(open)` tells the page a sheet is open (a live update must not wipe it).
export function actionBar(inc, me, { done, sheet }) {
  const offered = (OFFERED[inc.state] || [])
    .filter((a) => a !== 'request_complex' || inc.complex_state === 'none' || inc.complex_state === 'declined');
  if (me?.role !== 'grid_member' || !offered.length) return null;
  const box = h('div.grid-actions');
  const path = (action) => `/api/v1/incidents/${inc.id}/${action}`;

  async function act(action, send, { err, status, controls, dispose }) {
    controls.forEach((c) => { c.disabled = true; });
    fill(err);
    status.textContent = t('grid.sending');
    try {
      await send((p) => { status.textContent = t('grid.uploading', { p: Math.round(p * 100) }); });
      dispose?.();
      done(t(`grid.done.${action}`), LEAVE.has(action));
    } catch (e) {
      fill(err, errorBlock(e));
      status.textContent = '';
      controls.forEach((c) => { c.disabled = false; });
    }
  }

  function buttons() {
    sheet(false);
    const err = h('div');
    const status = h('p.muted', { role: 'status' });
    const controls = offered.map((a) => h(`button${PRIMARY.has(a) ? '.primary' : ''}`, {
      type: 'button', id: `act-${a}`,
      onclick: () => (a === 'accept' ? act(a, () => post(path(a), {}), { err, status, controls }) : open(a)),
    }, t(`grid.act.${a}`)));
    fill(box, err, status, h('div.actions', null, controls));
  }

  function open(action) {
    sheet(true);
    const err = h('div');
    const status = h('p.muted', { role: 'status' });
    // Any change in the sheet (a photo taken, a reason picked) answers the last "missing …" message.
    const root = h('div.sheet', { dataset: { sheet: action }, onchange: () => fill(err), oninput: () => fill(err) });
    const form = SHEETS[action](inc, me, path(action), root);
    const controls = [
      h(`button.${DANGER.has(action) ? 'danger' : 'primary'}`, {
        type: 'button', id: 'confirm',
        onclick: () => {
          const missing = form.check();
          if (missing) fill(err, h('div.error', { role: 'alert' }, missing));
          else act(action, form.send, { err, status, controls, dispose: form.dispose });
        },
      }, t(`grid.confirm.${action}`)),
      h('button', { type: 'button', id: 'cancel', onclick: () => { form.dispose?.(); buttons(); } }, t('grid.cancel')),
    ];
    fill(box, fill(root, h('h2', null, t(`grid.act.${action}`)), h('p.muted', null, t(`grid.why.${action}`)),
      form.fields, err, status, h('div.actions', null, controls)));
  }

  buttons();
  return box;
}
