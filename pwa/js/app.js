// Start-up and the router. Routes are hash paths (#/reports, #/incidents/42, #/enrol/CODE): the server
// only ever serves "/", and the service worker can answer it offline.
//
// The shell knows a few routes of its own (sign-in, account); everything else belongs to the signed-in
// member's role, whose folder under views/ exports {routes, nav} from its index.js (see README.md).
import { h, fill } from './dom.js';
import { t, getLang, setLang, onLangChange } from './i18n.js';
import { configureApi } from './api.js';
import { loadSession, member, token, expireSession } from './session.js';
import { kvSet } from './idb.js';
import { items, onOutboxChange } from './outbox.js';
import { startSync, sendNow } from './sync.js';
import { errorBlock } from './ui.js';
import { signInView } from './views/signin.js';
import { accountView } from './views/account.js';

const ROLE_VIEWS = {
  courier: () => import('./views/courier/index.js'),
  grid_member: () => import('./views/grid/index.js'),
  supervisor: () => import('./views/supervisor/index.js'),
  admin: () => import('./views/supervisor/index.js'),
};
const SHELL_ROUTES = {
  enrol: signInView,
  'enrol/:code': signInView,
  signin: signInView,
  account: accountView,
};
const PUBLIC = new Set([signInView]);

const main = document.getElementById('view');
const nav = document.getElementById('nav');
let cleanups = [];
let renderCount = 0;

function parseHash(hash = location.hash) {
  const raw = hash.replace(/^#\/?/, '');
  const [path, query = ''] = raw.split('?');
  return { path: path.replace(/\/+$/, ''), query: new URLSearchParams(query) };
}

function matchRoute(routes, path) {
  const parts = path.split('/');
  for (const [pattern, view] of Object.entries(routes)) {
    const want = pattern.split('/');
    if (want.length !== parts.length) continue;
    const params = {};
    const ok = want.every((seg, i) => {
      if (seg.startsWith(':')) {
        try {
          params[seg.slice(1)] = decodeURIComponent(parts[i]);
        } catch {
          return false; // a mangled link ("%E9%9") is no route, not a crash
        }
        return parts[i] !== '';
      }
      return seg === parts[i];
    });
    if (ok) return { view, params };
  }
  return null;
}

const navigate = (path) => { location.hash = `#/${path}`; };

async function roleModule() {
  const load = ROLE_VIEWS[member()?.role];
  return load ? load() : null;
}

// Render the current route into <main>. A view is `(ctx) => Node | Promise<Node>`; ctx.onCleanup(fn)
// runs fn when the view is left (timers, listeners, object URLs); ctx.rerender() draws it again.
async function render() {
  const mine = ++renderCount;
  cleanups.forEach((fn) => fn());
  cleanups = [];
  const { path, query } = parseHash();
  const signedIn = Boolean(token());
  const mod = signedIn ? await roleModule() : null;
  let found = matchRoute(SHELL_ROUTES, path);
  if (!found && mod) found = matchRoute(mod.routes, path) || { view: notFoundView, params: {} };
  if (!found || (!signedIn && !PUBLIC.has(found.view))) found = { view: signInView, params: {} };
  const ctx = {
    params: found.params, query, path, member: member(), navigate,
    onCleanup: (fn) => cleanups.push(fn),
    rerender: () => { if (mine === renderCount) render(); },
    isCurrent: () => mine === renderCount,
  };
  let node;
  try {
    node = await found.view(ctx);
  } catch (err) {
    node = h('div', null, h('h1', null, t('error.view')), errorBlock(err));
  }
  if (mine !== renderCount) return; // a newer navigation won
  fill(main, node);
  document.body.dataset.role = signedIn ? member()?.role || '' : ''; // role layouts hang off this in app.css
  drawNav(signedIn ? mod?.nav : null, path);
  main.focus({ preventScroll: true });
  scrollTo(0, 0);
}

function notFoundView() {
  return h('div.empty', null, h('p', null, t('error.notFound')), h('a.button', { href: '#/' }, t('nav.home')));
}

function drawNav(items, path) {
  nav.hidden = !items?.length;
  const top = path.split('/')[0];
  fill(nav, (items || []).map((item) => h('a', {
    href: `#/${item.path}`, 'aria-current': item.path === top ? 'page' : null,
  }, h('span.icon', { 'aria-hidden': 'true' }, item.icon), h('span', null, t(item.label)))));
}

// ── the chrome around every view: header, offline bar, banners ────────────────────────────────────

function drawHeader() {
  document.title = t('app.title');
  fill(document.getElementById('header'),
    h('a.brand', { href: '#/' }, t('app.short')),
    h('button.lang', { type: 'button', id: 'lang-switch', onclick: () => setLang(getLang() === 'en' ? 'zh-CN' : 'en') },
      t('app.otherLang')),
    token() ? h('a.account', { href: '#/account' }, t('nav.account')) : null);
}

async function drawStatus() {
  const bar = document.getElementById('status');
  const id = member()?.id;
  const waiting = id == null ? 0 : (await items(id)).filter((i) => i.state === 'queued' || i.state === 'sending').length;
  bar.hidden = navigator.onLine;
  bar.textContent = waiting ? t('status.offlineWaiting', { n: waiting }) : t('status.offline');
}

// WeChat's in-app browser can neither install the app nor show notifications: say how to leave it.
function drawWeChatBanner() {
  const box = document.getElementById('wechat');
  const inWeChat = /MicroMessenger/i.test(navigator.userAgent);
  box.hidden = !inWeChat;
  if (!inWeChat) return;
  fill(box,
    h('div.wechat-picture', { 'aria-hidden': 'true' }, h('span', null, '···'), h('span.arrow', null, '↗')),
    h('div', null,
      h('strong', null, t('wechat.title')),
      h('p', null, t('wechat.body')),
      h('ol', null, h('li', null, t('wechat.step1')), h('li', null, t('wechat.step2')))));
}

// ── service worker: register, and offer an update when a new version waits ─────────────────────────

let updateRequested = false;

function offerUpdate(worker) {
  const box = document.getElementById('update');
  box.hidden = false;
  fill(box, h('span', null, t('update.ready')), h('button.primary', {
    type: 'button', id: 'update-now',
    onclick: () => { updateRequested = true; worker.postMessage({ type: 'SKIP_WAITING' }); },
  }, t('update.now')));
}

async function registerWorker() {
  if (!('serviceWorker' in navigator)) return;
  navigator.serviceWorker.addEventListener('controllerchange', () => {
    if (updateRequested) location.reload();
  });
  // A tapped notification, or another tab, asks this window to show a place in the app.
  navigator.serviceWorker.addEventListener('message', (event) => {
    if (event.data?.type === 'navigate' && typeof event.data.url === 'string') {
      const url = new URL(event.data.url, location.href);
      if (url.origin === location.origin) location.hash = url.hash;
    }
  });
  try {
    // Under the CSP's Trusted Types a script URL must be vouched for: this policy vouches for one.
    const policy = globalThis.trustedTypes?.createPolicy('gridrider-sw', {
      createScriptURL: (url) => { if (url === '/sw.js') return url; throw new TypeError(`not our worker: ${url}`); },
    });
    // A module worker: it imports the same outbox code the page runs (js/outbox.js).
    const reg = await navigator.serviceWorker.register(policy ? policy.createScriptURL('/sw.js') : '/sw.js',
      { type: 'module', scope: '/' });
    if (reg.waiting && navigator.serviceWorker.controller) offerUpdate(reg.waiting);
    reg.addEventListener('updatefound', () => {
      const incoming = reg.installing;
      incoming?.addEventListener('statechange', () => {
        // "installed" with a controller in place = a new version waiting; the very first install is not an update.
        if (incoming.state === 'installed' && navigator.serviceWorker.controller) offerUpdate(incoming);
      });
    });
  } catch (err) {
    // Browsers without module service workers still run the app online, and the outbox still sends from the page.
    console.warn('service worker not registered:', err);
  }
}

// ── start ─────────────────────────────────────────────────────────────────────────────────────────

async function start() {
  document.documentElement.lang = getLang();
  kvSet('lang', getLang()).catch(() => {});
  // Any 401 (a revoked or expired session): forget the token, keep the member's drafts and outbox, and
  // ask to sign in — unless the rider is already signing in (an enrolment link open must stay open).
  const signedOut = async (_problem, refused) => {
    if (refused && refused !== token()) return; // an answer for a session already replaced
    await expireSession();
    drawHeader();
    const { view } = matchRoute(SHELL_ROUTES, parseHash().path) || {};
    if (view !== signInView) navigate('signin?expired=1');
  };
  configureApi({ token: async () => token(), lang: async () => getLang(), onUnauthorized: signedOut });
  await loadSession();
  drawHeader();
  drawWeChatBanner();
  drawStatus();
  addEventListener('online', drawStatus);
  addEventListener('offline', drawStatus);
  onOutboxChange(drawStatus);
  onLangChange(() => { drawHeader(); drawWeChatBanner(); drawStatus(); render(); });
  addEventListener('hashchange', render);
  // The sign-in view announces a new session: redraw for that member (their role's views and nav), and
  // send whatever waited in the outbox while they were signed out.
  addEventListener('gridrider:signed-in', async () => {
    await loadSession();
    drawHeader();
    sendNow();
    if (parseHash().path === '') render(); else navigate('');
  });
  addEventListener('gridrider:signed-out', () => { drawHeader(); navigate('signin'); });
  registerWorker();
  startSync({ memberId: () => (token() ? member()?.id : null) });
  await render();
  document.body.dataset.ready = 'true'; // tests wait for this
}

start();
