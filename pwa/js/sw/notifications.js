// What the service worker does with a push and with a tap on a notification. Plain functions with their
// inputs passed in, so a test can call them inside the worker (self.gridrider, see sw.js) — a headless
// browser cannot tap a system notification.
import zh from '../strings/zh-CN.js';
import en from '../strings/en.js';

// Only our own origin: a payload is ours (encrypted to our keys), but a notification must never become a
// way to open or load somewhere else. A path or a same-origin URL → its path; anything else → null.
export function localPath(url, origin) {
  if (typeof url !== 'string' || !url) return null;
  try {
    const parsed = new URL(url, origin); // the URL parser, not string tests: "//x", "/\\x" and "https:x" all resolve
    return parsed.origin === origin ? parsed.pathname + parsed.search + parsed.hash : null;
  } catch {
    return null;
  }
}

// The server's payload (domain/notifications.py message): {title, body, en: {title, body}, tag, url,
// urgent, image, incident_id, …}; a minimal one (after a 413) has no texts. data.url is accepted too.
export function notificationFrom(payload, lang, origin) {
  const p = payload && typeof payload === 'object' ? payload : {};
  const words = lang === 'en' ? en : zh;
  const local = lang === 'en' && p.en && typeof p.en === 'object' ? p.en : p;
  const title = String(local.title || p.title || words['push.defaultTitle']);
  const options = {
    body: String(local.body || p.body || words['push.defaultBody']),
    icon: localPath(p.icon, origin) || '/icons/icon-192.png',
    badge: '/icons/badge-72.png',
    tag: typeof p.tag === 'string' ? p.tag : undefined,
    renotify: typeof p.tag === 'string', // a newer message about the same incident replaces the older one, and rings
    requireInteraction: Boolean(p.urgent),
    data: { url: localPath(p.data?.url ?? p.url, origin) || '/', incident_id: p.incident_id ?? null },
    lang,
  };
  const image = localPath(p.image, origin);
  if (image) options.image = image;
  return { title, options };
}

// A tap: show the place in a window of ours if there is one (the focused one first), else open one.
// The window is asked by message to change its hash, so the page is not reloaded (drafts, live stream).
export async function routeNotificationClick(clients, url, origin) {
  const target = new URL(localPath(url, origin) || '/', origin).href;
  const windows = (await clients.matchAll({ type: 'window', includeUncontrolled: true }))
    .filter((c) => new URL(c.url).origin === origin);
  const chosen = windows.find((c) => c.focused) || windows.find((c) => c.visibilityState === 'visible') || windows[0];
  if (chosen) {
    chosen.postMessage({ type: 'navigate', url: target });
    try {
      await chosen.focus();
    } catch {
      // Focusing needs the tap's user activation; outside one (a test) the message alone must do.
    }
    return { action: 'focused', id: chosen.id, url: target };
  }
  await clients.openWindow(target);
  return { action: 'opened', url: target };
}
