// When the page sends the outbox: at start-up, when a report is stored, when the network comes back,
// when the app comes to the front, and at the time a backoff or Retry-After names. Where Background
// Sync exists the service worker is also asked to send, so a report goes even if the app is closed.
import { flush, prune } from './outbox.js';

let timer = null;
let memberOf = () => null;

// A 401 while sending needs nothing here: api.js's onUnauthorized hook (app.js) already asks to sign in.
export function startSync({ memberId }) {
  memberOf = memberId;
  addEventListener('online', () => sendNow({ force: true }));
  document.addEventListener('visibilitychange', () => { if (!document.hidden) sendNow(); });
  prune().catch(() => {});
  sendNow();
}

async function askWorker() {
  try {
    const reg = await navigator.serviceWorker?.ready;
    await reg?.sync?.register('outbox');
  } catch {
    // No Background Sync (Firefox, Safari) or not allowed: the page's own triggers remain.
  }
}

export async function sendNow({ force = false } = {}) {
  const id = memberOf();
  if (id == null) return null;
  clearTimeout(timer);
  // Certainly offline: do not even try (the items would flicker through "发送中"); `online` brings us back.
  if (navigator.onLine === false) {
    askWorker();
    return null;
  }
  let result;
  try {
    result = await flush(id, { force });
  } catch {
    result = { wait: 'network', nextMs: Date.now() + 30000 };
  }
  if (result.busy) result.nextMs = Date.now() + 1500; // another sender holds the lock; look again soon
  if (result.wait === 'network') askWorker();
  if (result.nextMs) timer = setTimeout(() => sendNow(), Math.max(500, result.nextMs - Date.now()));
  return result;
}

