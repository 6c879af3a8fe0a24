// Web Push for the grid member: a hazard that reaches their grid alerts the phone even with the app closed.
// The browser subscribes with the server's VAPID key; the key's id is kept on the phone so that a rotated
// key (GET /api/v1/push/key answers another id) means a fresh subscription — the old one would be refused.
import { get, post, request } from '../../api.js';
import { kvGet, kvSet } from '../../idb.js';

const KEY_ID = 'pushKeyId';

async function registration() {
  // `ready` never settles where the worker failed to register: give up after a while instead of hanging.
  const late = new Promise((resolve) => setTimeout(() => resolve(null), 8000));
  return Promise.race([navigator.serviceWorker.ready, late]);
}

// base64url (the server's application_server_key) → the bytes PushManager.subscribe wants.
function bytes(b64url) {
  const b64 = b64url.replace(/-/g, '+').replace(/_/g, '/');
  return Uint8Array.from(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
}

// What this phone can do: wechat · ios (Safari notifies only from an app added to the home screen) ·
// unsupported · blocked (the member or the browser said no) · off · on.
export async function pushState() {
  const ua = navigator.userAgent;
  if (/MicroMessenger/i.test(ua)) return 'wechat';
  const apple = /iPhone|iPad|iPod/.test(ua) || (/Macintosh/.test(ua) && navigator.maxTouchPoints > 1);
  const installed = matchMedia('(display-mode: standalone)').matches || navigator.standalone === true;
  if (apple && !installed) return 'ios';
  if (!('serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window)) return 'unsupported';
  if (Notification.permission === 'denied') return 'blocked';
  const reg = await registration();
  if (!reg) return 'unsupported';
  const sub = await reg.pushManager.getSubscription();
  return Notification.permission === 'granted' && sub ? 'on' : 'off';
}

// The server first: an endpoint it still holds would be sent to until the push service answers "gone".
async function forget(sub) {
  try {
    await request(`/api/v1/push/subscriptions?endpoint=${encodeURIComponent(sub.endpoint)}`, { method: 'DELETE' });
  } catch (err) {
    if (err.status !== 404) throw err;
  }
  await sub.unsubscribe();
}

async function subscribeFresh(reg, key) {
  const old = await reg.pushManager.getSubscription();
  // A browser refuses a second subscription under another key while the first exists.
  if (old) await forget(old);
  const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: bytes(key.application_server_key) });
  await post('/api/v1/push/subscriptions', sub.toJSON());
  await kvSet(KEY_ID, key.key_id);
}

export async function enablePush() {
  if ((await Notification.requestPermission()) !== 'granted') return pushState();
  const reg = await registration();
  if (!reg) return 'unsupported';
  await subscribeFresh(reg, await get('/api/v1/push/key'));
  return 'on';
}

export async function disablePush() {
  const sub = await (await registration())?.pushManager.getSubscription();
  if (sub) await forget(sub);
  await kvSet(KEY_ID, null);
  return pushState();
}

// Once per app start: subscribe again if the server's key changed, or the server says this subscription
// needs it (refused by the push service, or an old key); tell the server again if it forgot us.
let checked = false;
export async function keepPushCurrent() {
  if (checked || (await pushState()) !== 'on') return;
  checked = true;
  try {
    const reg = await registration();
    const sub = await reg.pushManager.getSubscription();
    const [key, mine, keptId] = await Promise.all([get('/api/v1/push/key'), get('/api/v1/push/subscriptions'), kvGet(KEY_ID)]);
    const row = mine.find((s) => s.endpoint === sub.endpoint);
    if (keptId !== key.key_id || row?.needs_resubscribe || row?.key_is_current === false) await subscribeFresh(reg, key);
    else if (!row) await post('/api/v1/push/subscriptions', sub.toJSON());
  } catch (err) {
    checked = false; // offline now: the next view tries again
    console.warn('push check:', err);
  }
}
