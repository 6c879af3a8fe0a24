// Finish a mark: photos (up to 3, shrunk on the phone), a category tile, an optional note, then send —
// or "稍后完成" to keep it as a draft with its frozen position and time.
import { h, fill } from '../../dom.js';
import { t, pick, formatTime, formatDistance, formatBytes } from '../../i18n.js';
import { COARSE_M, FIX_TIMEOUT_MS } from '../../geo.js';
import { shrink } from '../../photos.js';
import { loadCategories, iconOf } from '../../categories.js';
import { enqueue, items, remove } from '../../outbox.js';
import { sendNow } from '../../sync.js';
import { errorBlock, mapButtons, toast } from '../../ui.js';
import { createDraft, getDraft, isLocating, locate, onDraftChange, patchDraft, removeDraft } from './drafts.js';

const MAX_PHOTOS = 3;
const MAX_NOTE = 500;

// A report the server refused goes back to the drafts to be edited; it will leave under a new client_id.
export async function editView(ctx) {
  const item = (await items(ctx.member.id)).find((i) => i.client_id === ctx.params.clientId);
  if (!item) return h('p.empty', null, t('error.notFound'));
  const m = item.meta;
  const draft = await createDraft(ctx.member.id);
  await patchDraft(draft.id, {
    captured_at: m.captured_at, locating: 'done', category: m.category, note: m.note || '',
    position: { lat: m.lat, lon: m.lon, accuracy_m: m.accuracy_m, source: m.position_source },
    photos: item.photos, saved: item.saved || [], error: item.error, queued_ms: item.queued_ms,
  });
  await remove(item.client_id);
  ctx.navigate(`mark/${draft.id}`);
  return h('p.loading', null, t('common.loading'));
}

function positionBlock(draft) {
  const p = draft.position;
  if (draft.locating === 'pending' && !p) {
    const waited = Math.floor((Date.now() - (draft.locate_started_ms || draft.created_ms)) / 1000);
    return h('p.pos.pending', { dataset: { locating: 'pending' } },
      t('locate.waiting', { s: Math.max(0, Math.ceil(FIX_TIMEOUT_MS / 1000) - waited) }));
  }
  if (!p) {
    return h('div.pos.warn', { dataset: { locating: draft.locating } },
      h('p', null, t(draft.locating === 'denied' ? 'locate.deniedLong' : 'locate.noneLong')),
      h('div.actions', null,
        h('button', { type: 'button', onclick: () => locate(draft.id) }, t('locate.retry')),
        h('button', { type: 'button', id: 'rough', onclick: () => locate(draft.id, { rough: true }) }, t('locate.rough'))),
      h('p.muted', null, t('locate.retryNote')));
  }
  const coarse = p.accuracy_m > COARSE_M;
  return h(coarse ? 'div.pos.warn' : 'div.pos', { dataset: { locating: 'done', accuracy: p.accuracy_m } },
    h('p', null, t(coarse ? 'locate.coarse' : 'locate.fix', { acc: formatDistance(p.accuracy_m) }),
      ' · ', t(`source.${p.source}`)),
    coarse && !isLocating(draft.id)
      ? h('div.actions', null,
        h('button', { type: 'button', onclick: () => locate(draft.id, { better: true }) }, t('locate.better')),
        h('span.muted', null, t('locate.sendCoarse')))
      : null,
    isLocating(draft.id) ? h('p.muted', null, t('locate.improving')) : null,
    mapButtons(p.lat, p.lon, t('map.label')));
}

export async function finishView(ctx) {
  const id = ctx.params.id;
  let draft = await getDraft(id);
  if (!draft) return h('div.empty', null, h('p', null, t('draft.gone')), h('a.button', { href: '#/' }, t('nav.home')));
  const categories = await loadCategories().catch(() => []);

  const pos = h('div', { id: 'position', 'aria-live': 'polite' });
  const photos = h('div.photos', { id: 'photos' });
  const photoStatus = h('p.muted', { id: 'photo-status', 'aria-live': 'polite' });
  const tiles = h('div.tiles', { id: 'categories', role: 'group', 'aria-label': t('finish.category') });
  const sendButton = h('button.primary.big', { type: 'button', id: 'send', onclick: send }, t('finish.send'));
  const sendHint = h('p.muted.hint', { id: 'send-hint' });
  const urls = [];
  ctx.onCleanup(() => urls.forEach((u) => URL.revokeObjectURL(u)));

  let noteTimer = null; // the note is saved as typed (debounced), so closing the app keeps it
  const note = h('textarea', {
    id: 'note', rows: 2, maxlength: MAX_NOTE, placeholder: t('finish.notePlaceholder'), value: draft.note || '',
    oninput: () => { clearTimeout(noteTimer); noteTimer = setTimeout(() => patchDraft(id, { note: note.value }), 300); },
  });
  const camera = h('input', {
    type: 'file', accept: 'image/*', capture: 'environment', multiple: true, id: 'camera', class: 'visually-hidden',
    onchange: () => addPhotos([...camera.files]),
  });

  function drawPhotos() {
    urls.splice(0).forEach((u) => URL.revokeObjectURL(u));
    const thumbs = draft.photos.map((blob, i) => {
      const url = URL.createObjectURL(blob);
      urls.push(url);
      const saved = draft.saved?.[i];
      return h('figure', null,
        h('img', { src: url, alt: t('finish.photoN', { n: i + 1 }) }),
        saved ? h('figcaption', null, t('finish.saved', { before: formatBytes(saved.before), after: formatBytes(saved.after) })) : null,
        h('button.remove', { type: 'button', 'aria-label': t('finish.removePhoto'), onclick: () => removePhoto(i) }, '×'));
    });
    const room = draft.photos.length < MAX_PHOTOS;
    fill(photos, thumbs, room ? h('label.button.camera', { for: 'camera' }, '📷 ', t(draft.photos.length ? 'finish.morePhoto' : 'finish.photo')) : null, camera);
  }

  function drawTiles() {
    fill(tiles, categories.map((c) => h(c.life_safety ? 'button.tile.life' : 'button.tile', {
      type: 'button', 'aria-pressed': String(draft.category === c.code), dataset: { code: c.code },
      onclick: async () => { draft = await patchDraft(id, { category: c.code }); drawTiles(); drawSend(); },
    }, h('span.icon', { 'aria-hidden': 'true' }, iconOf(c)), h('span', null, pick(c, 'name')))));
  }

  function drawSend() {
    const why = !draft.position ? 'finish.needPosition' : !draft.category ? 'finish.needCategory' : null;
    sendButton.disabled = Boolean(why);
    fill(sendHint, why ? t(why) : '');
  }

  async function addPhotos(files) {
    const room = MAX_PHOTOS - draft.photos.length;
    for (const file of files.slice(0, room)) {
      fill(photoStatus, t('finish.shrinking'));
      try {
        const small = await shrink(file);
        draft = await getDraft(id);
        draft = await patchDraft(id, { photos: [...draft.photos, small.blob], saved: [...(draft.saved || []), { before: small.before, after: small.after }] });
        fill(photoStatus);
      } catch {
        fill(photoStatus, t('finish.photoFailed'));
      }
    }
    if (files.length > room) toast(t('finish.maxPhotos'));
    camera.value = '';
    drawPhotos();
  }

  async function removePhoto(i) {
    draft = await patchDraft(id, {
      photos: draft.photos.filter((_, j) => j !== i), saved: (draft.saved || []).filter((_, j) => j !== i),
    });
    drawPhotos();
  }

  async function send() {
    clearTimeout(noteTimer);
    draft = await getDraft(id);
    if (!draft.position || !draft.category) return;
    sendButton.disabled = true;
    const p = draft.position;
    const meta = {
      category: draft.category, lat: p.lat, lon: p.lon, accuracy_m: p.accuracy_m, position_source: p.source,
      captured_at: draft.captured_at,
    };
    const text = note.value.trim();
    if (text) meta.note = text;
    await enqueue({ memberId: ctx.member.id, meta, photos: draft.photos, saved: draft.saved || [], queuedMs: draft.queued_ms });
    await removeDraft(id);
    toast(t('finish.queued'));
    sendNow();
    ctx.navigate('');
  }

  async function later() {
    clearTimeout(noteTimer);
    await patchDraft(id, { note: note.value });
    ctx.navigate('');
  }

  async function discard() {
    if (!confirm(t('finish.discardConfirm'))) return;
    await removeDraft(id);
    ctx.navigate('');
  }

  const redrawPosition = async () => {
    if (!ctx.isCurrent()) return;
    draft = (await getDraft(id)) || draft;
    fill(pos, positionBlock(draft));
    drawSend();
  };
  ctx.onCleanup(onDraftChange(redrawPosition));
  const tick = setInterval(() => { if (draft.locating === 'pending') redrawPosition(); }, 1000);
  ctx.onCleanup(() => clearInterval(tick));

  fill(pos, positionBlock(draft));
  drawPhotos();
  drawTiles();
  drawSend();
  return h('div.finish', null,
    h('h1', null, t('finish.title')),
    h('p.muted', null, t('finish.capturedAt', { time: formatTime(draft.captured_at) })),
    draft.error ? h('div', { id: 'refusal' }, h('p', null, t('finish.refused')), errorBlock(draft.error)) : null,
    pos,
    h('h2', null, t('finish.photos')), photos, photoStatus,
    h('h2', null, t('finish.category')), categories.length ? tiles : h('p.warn', null, t('finish.noCategories')),
    h('label', { for: 'note' }, t('finish.note')), note,
    h('button.link', { type: 'button', onclick: discard }, t('finish.discard')),
    h('div.bottom-bar', null,
      sendHint,
      h('div.actions', null, h('button.big', { type: 'button', id: 'later', onclick: later }, t('finish.later')), sendButton)));
}
