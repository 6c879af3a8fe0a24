// The live stream while the grid app is open (GET /api/v1/events). Read with fetch, because EventSource
// cannot send the Bearer header and a token in a URL would end up in server and proxy logs. A dropped
// connection comes back with backoff and Last-Event-ID, so the server replays what the phone missed;
// a hidden app closes it (battery, data) and reopens it, with the same replay, when it is shown again.
import { token, member } from '../../session.js';
import { getLang } from '../../i18n.js';
import { get } from '../../api.js';

const MAX_WAIT_MS = 60000;
const listeners = new Set();
const watchers = new Set();
let state = 'off'; // off · connecting · open · waiting (to retry) · paused (app hidden)
let lastId = null;
let retryMs = 3000; // the server's `retry:` field replaces it
let failures = 0;
let running = null; // the AbortController of the connection in use
let timer = null;
let wired = false;

export const liveState = () => state;

export function onLiveState(fn) {
  watchers.add(fn);
  return () => watchers.delete(fn);
}

function setState(next) {
  if (next === state) return;
  state = next;
  watchers.forEach((fn) => fn(state));
}

// An SSE parser to feed chunks of text as they arrive; each call returns the messages completed by that
// chunk (HTML's event-stream rules: lines end in \n, \r\n or \r; a blank line ends a message; a line
// starting with ":" is a comment).
export function sseParser() {
  let buffer = ''; // the unfinished message, line ends already made \n
  let cr = false; // the last chunk ended in \r: a \n opening the next one belongs to that same line end
  return (chunk) => {
    if (!chunk) return [];
    const text = cr && chunk[0] === '\n' ? chunk.slice(1) : chunk;
    cr = chunk.endsWith('\r');
    const blocks = (buffer + text).replace(/\r\n?/g, '\n').split('\n\n');
    buffer = blocks.pop();
    return blocks.map((block) => {
      const m = { event: 'message', data: [], id: null, retry: null };
      for (const line of block.split('\n')) {
        if (!line || line[0] === ':') continue;
        const at = line.indexOf(':');
        const field = at < 0 ? line : line.slice(0, at);
        const value = at < 0 ? '' : line.slice(at + 1).replace(/^ /, '');
        if (field === 'data') m.data.push(value);
        else if (field === 'event') m.event = value;
        else if (field === 'id' && !value.includes('\0')) m.id = value;
        else if (field === 'retry' && /^\d+$/.test(value)) m.retry = Number(value);
      }
      return { ...m, data: m.data.length ? m.data.join('\n') : null };
    });
  };
}

function deliver(m) {
  if (m.retry != null) retryMs = Math.min(MAX_WAIT_MS, Math.max(1000, m.retry));
  if (m.id != null) lastId = m.id;
  if (m.data == null) return;
  let data;
  try {
    data = JSON.parse(m.data);
  } catch {
    data = m.data;
  }
  listeners.forEach((fn) => fn({ event: m.event, id: m.id, data }));
}

const wanted = () => Boolean(token()) && member()?.role === 'grid_member' && document.visibilityState !== 'hidden';

async function connect() {
  clearTimeout(timer);
  if (running || !wanted()) return;
  const ctl = new AbortController();
  running = ctl;
  setState('connecting');
  try {
    const headers = { Accept: 'text/event-stream', 'Accept-Language': getLang(), Authorization: `Bearer ${token()}` };
    if (lastId) headers['Last-Event-ID'] = lastId;
    const res = await fetch('/api/v1/events', { headers, signal: ctl.signal, cache: 'no-store', credentials: 'omit' });
    if (res.status === 401) {
      // The shell owns what a 401 means (forget the token, ask to sign in): let api.js meet it too.
      get('/api/v1/me').catch(() => {});
      stop();
      return;
    }
    if (!res.ok || !res.body) throw new Error(`events: HTTP ${res.status}`);
    setState('open');
    failures = 0;
    const reader = res.body.getReader();
    const decoder = new TextDecoder(); // {stream: true}: a character cut between two chunks waits for its end
    const parse = sseParser();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parse(decoder.decode(value, { stream: true })).forEach(deliver);
    }
  } catch {
    if (ctl.signal.aborted) return; // closed on purpose (hidden, signed out): no retry from here
    failures += 1;
  } finally {
    if (running === ctl) running = null;
  }
  // The server ended the stream (a deploy, a proxy's timeout) or it failed: try again, later each time.
  if (!wanted()) { setState('off'); return; }
  setState('waiting');
  const wait = Math.min(MAX_WAIT_MS, retryMs * 2 ** failures);
  timer = setTimeout(connect, wait * (0.5 + Math.random() / 2)); // jitter: phones of one grid do not reconnect in step
}

function stop(next = 'off') {
  clearTimeout(timer);
  const ctl = running;
  running = null;
  ctl?.abort();
  setState(next);
}

function wire() {
  if (wired) return;
  wired = true;
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden') stop('paused');
    else connect();
  });
  addEventListener('online', () => { if (state === 'waiting') connect(); });
  // Another member on this phone must not get this one's replay.
  const reset = () => { stop(); lastId = null; failures = 0; };
  addEventListener('gridrider:signed-out', reset);
  addEventListener('gridrider:signed-in', reset);
}

// fn({event, id, data}) for every message while the app is open; returns the way to stop listening.
// The first listener starts the stream; it then stays up across views for as long as the app is open
// (a view change never cuts a backoff short: only a stream that is off is started here).
export function onLive(fn) {
  listeners.add(fn);
  wire();
  if (state === 'off') connect();
  return () => listeners.delete(fn);
}
