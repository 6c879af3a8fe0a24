// The outbox: every report is stored here first, under a client_id made on the phone, and leaves only
// when the server has answered. Pages and the service worker (Background Sync) both run `flush`; the
// server's idempotency on client_id makes a double send harmless, and a Web Lock keeps it rare.
//
// An item: {client_id, member_id, meta, photos: [Blob], saved: [{before, after}], state, queued_ms,
//           attempts, next_ms, wait, error, report_id, sent_ms}
//   state: queued → sending → sent, or failed (the server refused it; the rider may edit and resend)
//   wait:  why a queued item is waiting: 'network' · 'server' (5xx) · 'busy' (429/408/503) · 'auth' (401)
import { all, del, put, update } from './idb.js';
import { request } from './api.js';

const STORE = 'outbox';
const RETRY_LATER = new Set([408, 429, 503]);
const FIRST_BACKOFF_MS = 2000;
const MAX_BACKOFF_MS = 10 * 60 * 1000;
const KEEP_SENT_MS = 24 * 3600 * 1000; // long enough to see "已送达" before My reports shows it
// Without Web Locks, a 'sending' item older than this is taken to be one a closed app left behind.
const STALE_SENDING_MS = 2 * 60 * 1000;

let channel = null;
function announce() {
  // Every open page (and the worker's sends) hear about changes; each page re-reads from IndexedDB.
  channel ??= typeof BroadcastChannel === 'function' ? new BroadcastChannel('gridrider-outbox') : null;
  channel?.postMessage('changed');
  listeners.forEach((fn) => fn());
}
const listeners = new Set();
export function onOutboxChange(fn) {
  listeners.add(fn);
  channel ??= typeof BroadcastChannel === 'function' ? new BroadcastChannel('gridrider-outbox') : null;
  const heard = () => fn();
  channel?.addEventListener('message', heard);
  return () => { listeners.delete(fn); channel?.removeEventListener('message', heard); };
}

export async function items(memberId) {
  const mine = (await all(STORE)).filter((i) => i.member_id === memberId);
  return mine.sort((a, b) => b.queued_ms - a.queued_ms);
}

// Store a report for sending. `queuedMs` is kept when an edited report replaces a refused one: the
// report has been waiting on the phone since the rider first pressed send, and queued_for_s says so.
export async function enqueue({ memberId, meta, photos, saved = [], queuedMs = Date.now() }) {
  const item = {
    client_id: crypto.randomUUID(), member_id: memberId, meta, photos, saved, state: 'queued',
    queued_ms: queuedMs, attempts: 0, next_ms: 0, wait: null, error: null,
  };
  await put(STORE, item);
  announce();
  return item;
}

// An edited refused report goes again under a NEW client_id (the old id is bound to the old body).
export async function replace(oldClientId, fields) {
  const item = await enqueue(fields);
  await del(STORE, oldClientId);
  announce();
  return item;
}

export async function remove(clientId) {
  await del(STORE, clientId);
  announce();
}

function patch(clientId, fields) {
  return update(STORE, clientId, (item) => (item ? { ...item, ...fields } : undefined));
}

function backoffMs(attempts) {
  const ceiling = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** attempts);
  return ceiling / 2 + Math.random() * (ceiling / 2); // jitter: a depot of phones coming back online spreads out
}

async function send(item) {
  const form = new FormData();
  const queuedFor = Math.max(0, Math.round((Date.now() - item.queued_ms) / 1000));
  form.append('meta', JSON.stringify({ ...item.meta, client_id: item.client_id, queued_for_s: queuedFor }));
  item.photos.forEach((blob, i) => form.append('photo', blob, `photo-${i + 1}.jpg`));
  return request('/api/v1/reports', { method: 'POST', body: form });
}

// What one answer means for the item (CONVENTIONS §11); `stop` ends this flush for every item.
export function decide(error, attempts, now = Date.now()) {
  if (!error) return { state: 'sent' };
  const { status } = error;
  if (status === 401) return { state: 'queued', wait: 'auth', stop: true };
  if (RETRY_LATER.has(status)) {
    const seconds = error.retryAfter ?? backoffMs(attempts) / 1000;
    return { state: 'queued', wait: 'busy', next_ms: now + seconds * 1000, stop: true };
  }
  if (status === 0 || status >= 500) {
    return { state: 'queued', wait: status ? 'server' : 'network', next_ms: now + backoffMs(attempts), stop: true };
  }
  return { state: 'failed', error: { status, code: error.code, message: error.message, errors: error.errors } };
}

async function flushHeld(memberId, { force, locked }) {
  const now = Date.now();
  const result = { sent: 0, failed: 0, wait: null, nextMs: null };
  const leftOver = (i) => i.state === 'sending' && (locked || now - i.sending_ms > STALE_SENDING_MS);
  const due = (await items(memberId))
    .filter((i) => i.state === 'queued' || leftOver(i))
    .sort((a, b) => a.queued_ms - b.queued_ms);
  for (const item of due) {
    // `force` (the network just came back) skips a network backoff, never a server's Retry-After.
    if (item.next_ms > Date.now() && !(force && item.wait === 'network')) {
      result.nextMs = Math.min(result.nextMs ?? Infinity, item.next_ms);
      continue;
    }
    await patch(item.client_id, { state: 'sending', sending_ms: Date.now() });
    announce();
    let outcome;
    try {
      const report = await send(item);
      // Only now, after the 2xx, is it sent; the photos go (the server has them) to free the phone's storage.
      outcome = { state: 'sent', report_id: report?.id ?? null, sent_ms: Date.now(), photos: [], error: null, wait: null };
      result.sent += 1;
    } catch (error) {
      if (error.name === 'AbortError') throw error;
      const d = decide(error, item.attempts);
      outcome = { state: d.state, wait: d.wait ?? null, next_ms: d.next_ms ?? 0, attempts: item.attempts + 1,
        error: d.error ?? null };
      if (d.state === 'failed') result.failed += 1;
      if (d.stop) {
        await patch(item.client_id, outcome);
        result.wait = d.wait;
        if (d.next_ms) result.nextMs = Math.min(result.nextMs ?? Infinity, d.next_ms);
        break;
      }
    }
    await patch(item.client_id, outcome);
  }
  announce();
  return result;
}

// Send what is due. Runs under a Web Lock where there is one (pages and the worker share it), so only
// one sender works at a time; holding it, any 'sending' item is a leftover of a closed app and goes again.
export async function flush(memberId, { force = false } = {}) {
  if (memberId == null) return { sent: 0, failed: 0, wait: null, nextMs: null };
  const locks = globalThis.navigator?.locks;
  if (!locks) return flushHeld(memberId, { force, locked: false });
  return locks.request('gridrider-outbox', { ifAvailable: true },
    (lock) => (lock ? flushHeld(memberId, { force, locked: true }) : { busy: true, sent: 0, failed: 0, wait: null, nextMs: null }));
}

// Sent items are shown for a day, then forgotten (My reports has them from the server).
export async function prune(now = Date.now()) {
  for (const item of await all(STORE)) {
    if (item.state === 'sent' && now - item.sent_ms > KEEP_SENT_MS) await del(STORE, item.client_id);
  }
}
