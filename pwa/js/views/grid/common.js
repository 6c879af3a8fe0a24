// What the inbox and the incident page share: the state chip, time left in plain words, distances.
import { h } from '../../dom.js';
import { t } from '../../i18n.js';
import { getFix } from '../../geo.js';

export const stateChip = (state) => h('span.chip', { dataset: { state } }, t(`grid.state.${state}`));

// The stage an incident is in, whose deadline counts now (the API's stage_due_at is that stage's).
export const STAGE_OF = { unrouted: 'dispatch', dispatched: 'accept', accepted: 'resolve' };

// 还剩 3 小时 / 已超时 2 小时: minutes under an hour, hours under two days, then days.
export function leftText(seconds) {
  const s = Math.abs(seconds);
  const span = s < 3600 ? t('grid.span.min', { n: Math.max(1, Math.floor(s / 60)) })
    : s < 172800 ? t('grid.span.h', { n: Math.floor(s / 3600) }) : t('grid.span.d', { n: Math.floor(s / 86400) });
  return t(seconds < 0 ? 'grid.overdueBy' : 'grid.left', { t: span });
}

// The colour of a deadline as it runs out; a life-safety one (1 h to accept) turns sooner.
export const urgency = (seconds, life) => (seconds < 0 ? 'over' : seconds < (life ? 1800 : 4 * 3600) ? 'soon' : 'ok');

// The server's seconds_left was true when it answered: count down from then, whatever the phone's clock says.
export function countdown(seconds) {
  const at = performance.now();
  return () => seconds - Math.floor((performance.now() - at) / 1000);
}

export function metres(a, b) {
  const rad = Math.PI / 180;
  const x = Math.sin(((b.lat - a.lat) * rad) / 2) ** 2
    + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(((b.lon - a.lon) * rad) / 2) ** 2;
  return 12742000 * Math.asin(Math.sqrt(x));
}

// Where the member is, for distances — only if location is already allowed: the inbox never asks for it.
let fix = null;
export async function whereAmI() {
  try {
    if ((await navigator.permissions.query({ name: 'geolocation' })).state !== 'granted') return null;
    if (!fix || Date.now() - fix.at > 120000) fix = await getFix({ timeoutMs: 10000, precise: false, maximumAge: 120000 });
    return fix;
  } catch {
    return null;
  }
}
