// Drafts: marks the rider made and has not sent yet. A mark freezes the time at once and the position as
// soon as the first fix comes; photos, category and note can follow at the next stop.
//
// A draft: {id, member_id, captured_at, position: {lat, lon, accuracy_m, source} | null,
//           locating: 'pending' | 'done' | 'none' | 'denied', photos: [Blob], saved: [{before, after}],
//           category, note, created_ms}
import { all, del, get, put, update } from '../../idb.js';
import { getFix, FIX_TIMEOUT_MS } from '../../geo.js';

const STORE = 'drafts';
const listeners = new Set();
const announce = () => listeners.forEach((fn) => fn());
export function onDraftChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export async function createDraft(memberId) {
  const draft = {
    id: crypto.randomUUID(), member_id: memberId, captured_at: new Date().toISOString(), position: null,
    locating: 'pending', photos: [], saved: [], category: null, note: '', created_ms: Date.now(),
  };
  await put(STORE, draft);
  announce();
  return draft;
}

export const getDraft = (id) => get(STORE, id);

export async function listDrafts(memberId) {
  return (await all(STORE)).filter((d) => d.member_id === memberId).sort((a, b) => b.created_ms - a.created_ms);
}

export async function patchDraft(id, fields) {
  const draft = await update(STORE, id, (d) => (d ? { ...d, ...fields } : undefined));
  announce();
  return draft;
}

export async function removeDraft(id) {
  await del(STORE, id);
  announce();
}

// Fixes being waited for, by draft id: the wait goes on while the rider rides on or opens other screens.
const waiting = new Map();
export const isLocating = (id) => waiting.has(id);

// Get a position for a draft. `better` replaces the frozen one only by a more accurate fix (the rider
// asked to wait for better GPS); `rough` accepts a cached or network position (nothing else came).
export function locate(id, { better = false, rough = false } = {}) {
  if (waiting.has(id)) return waiting.get(id);
  const job = (async () => {
    if (!better) await patchDraft(id, { locating: 'pending', locate_started_ms: Date.now() });
    try {
      const fix = await getFix(rough ? { precise: false, maximumAge: 10 * 60 * 1000, timeoutMs: 10000 }
        : { timeoutMs: FIX_TIMEOUT_MS });
      // The server refuses accuracy over 2 km; such a "fix" is no position at all.
      if (fix.accuracy_m > 2000) throw { code: 'unavailable' };
      const draft = await getDraft(id);
      if (!draft) return;
      if (!better || !draft.position || fix.accuracy_m < draft.position.accuracy_m) {
        const { lat, lon, accuracy_m, source } = fix;
        await patchDraft(id, { position: { lat, lon, accuracy_m, source }, locating: 'done' });
      } else {
        await patchDraft(id, { locating: 'done' });
      }
    } catch (err) {
      const draft = await getDraft(id);
      if (draft) await patchDraft(id, { locating: draft.position ? 'done' : err.code === 'denied' ? 'denied' : 'none' });
    } finally {
      waiting.delete(id);
      announce();
    }
  })();
  waiting.set(id, job);
  return job;
}

// A draft left 'pending' by a closed app has no fix coming any more.
export async function settleOrphans(memberId) {
  for (const d of await listDrafts(memberId)) {
    if (d.locating === 'pending' && !waiting.has(d.id)) await patchDraft(d.id, { locating: d.position ? 'done' : 'none' });
  }
}
