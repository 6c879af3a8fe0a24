// The service worker (a module worker, registered by js/app.js with scope "/"). Boring on purpose:
// - install: precache the shell under a versioned cache name; a new version then WAITS until the rider
//   taps "update" in the banner (app.js posts SKIP_WAITING) — never mid-report;
// - activate: delete every older shell cache, take control of open pages;
// - fetch: shell files from the cache (the version moves with their bytes, see below); never anything
//   under /api/ and never a non-GET request — personal data is not cached here, ever;
// - sync "outbox": send the outbox with the same code the page runs (js/outbox.js);
// - push / notificationclick: js/sw/notifications.js.
import { configureApi } from './js/api.js';
import { kvGet } from './js/idb.js';
import { flush } from './js/outbox.js';
import { notificationFrom, routeNotificationClick } from './js/sw/notifications.js';

// <shell> written by `python -m gridrider.pwa_assets` from the files in pwa/; never by hand
const VERSION = '05dd7450e08bff73';
const SHELL = [
  '/',
  '/app.css',
  '/icons/badge-72.png',
  '/icons/icon-192.png',
  '/index.html',
  '/js/api.js',
  '/js/app.js',
  '/js/categories.js',
  '/js/dom.js',
  '/js/geo.js',
  '/js/i18n.js',
  '/js/idb.js',
  '/js/outbox.js',
  '/js/photos.js',
  '/js/session.js',
  '/js/strings/en.js',
  '/js/strings/zh-CN.js',
  '/js/sw/notifications.js',
  '/js/sync.js',
  '/js/ui.js',
  '/js/views/account.js',
  '/js/views/courier/drafts.js',
  '/js/views/courier/finish.js',
  '/js/views/courier/home.js',
  '/js/views/courier/incident.js',
  '/js/views/courier/index.js',
  '/js/views/courier/nearby.js',
  '/js/views/courier/points.js',
  '/js/views/courier/reports.js',
  '/js/views/grid/actions.js',
  '/js/views/grid/alerts.js',
  '/js/views/grid/common.js',
  '/js/views/grid/inbox.js',
  '/js/views/grid/incident.js',
  '/js/views/grid/index.js',
  '/js/views/grid/live.js',
  '/js/views/grid/push.js',
  '/js/views/signin.js',
  '/js/views/supervisor/common.js',
  '/js/views/supervisor/dashboard.js',
  '/js/views/supervisor/exports.js',
  '/js/views/supervisor/incidents.js',
  '/js/views/supervisor/index.js',
  '/js/views/supervisor/members.js',
  '/js/views/supervisor/rankings.js',
  '/js/views/supervisor/redemptions.js',
  '/js/views/supervisor/review.js',
  '/manifest.webmanifest',
];
// </shell>
const PREFIX = 'gridrider-shell-';
const CACHE = `${PREFIX}${VERSION}`;

configureApi({
  token: async () => (await kvGet('session'))?.token ?? null,
  lang: async () => (await kvGet('lang')) || 'zh-CN',
});

self.addEventListener('install', (event) => {
  // cache: 'reload' skips the HTTP cache, so the new cache holds this version's bytes, not yesterday's.
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL.map((url) => new Request(url, { cache: 'reload' })))));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith(PREFIX) && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

self.addEventListener('message', (event) => {
  if (event.data?.type === 'SKIP_WAITING') self.skipWaiting();
});

self.addEventListener('fetch', (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin || url.pathname.startsWith('/api/')) return;
  // The app is one page (its routes live in the hash): "/" with any query (?source=pwa) is the shell.
  // Anything else that is not a shell file (the schema viewer, health checks) is left to the network.
  const page = request.mode === 'navigate' && (url.pathname === '/' || url.pathname === '/index.html');
  if (!page && !SHELL.includes(url.pathname)) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    const hit = await cache.match(page ? '/' : url.pathname);
    return hit || fetch(request);
  })());
});

self.addEventListener('sync', (event) => {
  if (event.tag !== 'outbox') return;
  event.waitUntil((async () => {
    const session = await kvGet('session');
    if (!session?.token) return;
    const result = await flush(session.member.id);
    // Rejecting tells the browser the network is still not there: it tries this sync again later.
    if (result.wait === 'network') throw new Error('outbox: network unavailable');
  })());
});

self.addEventListener('push', (event) => {
  event.waitUntil((async () => {
    let payload = null;
    try {
      payload = event.data?.json() ?? null;
    } catch {
      payload = null; // not JSON: still tell the member something happened
    }
    const lang = (await kvGet('lang')) || 'zh-CN';
    const { title, options } = notificationFrom(payload, lang, self.location.origin);
    await self.registration.showNotification(title, options);
  })());
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil(routeNotificationClick(self.clients, event.notification.data?.url, self.location.origin));
});

// For tests (and a curious developer in DevTools): the worker's pure pieces and its version.
self.gridrider = { VERSION, notificationFrom, routeNotificationClick };
