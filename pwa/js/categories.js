// The hazard categories, kept on the phone so marks can be finished offline. They are not personal
// data; the service worker still never caches API answers, so the app keeps its own copy here.
import { get } from './api.js';
import { kvGet, kvSet } from './idb.js';

// Emoji beside the name (the API's `icon` names a drawing we do not ship): cheap, in every font, no download.
const ICONS = {
  manhole: '🕳️', 'road-collapse': '🚧', flood: '🌊', 'live-wire': '⚡', 'charging-cord': '🔌',
  'fire-lane': '🚒', 'falling-object': '🧱', pole: '🪵', 'charging-pile': '🔋', streetlight: '💡',
  garbage: '🗑️', structure: '🏚️', other: '⚠️',
};
export const iconOf = (category) => ICONS[category?.icon] || '⚠️';

let memo = null; // every category this phone has seen; `gone` ones (disabled since) only lend their names

// Life-safety first (shown in red at the top), then the admin's order.
const ordered = (list) => [...list].sort((a, b) => (b.life_safety - a.life_safety) || (a.sort_order - b.sort_order));

// The categories a rider may pick now. A category disabled after the phone last looked is still offered
// until the next fetch; the server then refuses the report (422) and the rider picks another.
export async function loadCategories({ fresh = false } = {}) {
  if (!memo || fresh) {
    const known = memo || (await kvGet('categories')) || [];
    try {
      const now = await get('/api/v1/categories');
      const codes = new Set(now.map((c) => c.code));
      memo = [...ordered(now), ...known.filter((c) => !codes.has(c.code)).map((c) => ({ ...c, gone: true }))];
      await kvSet('categories', memo);
    } catch (err) {
      memo = known.length ? known : null;
      if (!memo) throw err;
    }
  }
  return memo.filter((c) => !c.gone);
}

// A name for any code this phone has seen (a report made before its category was disabled keeps its name).
export async function categoryByCode(code) {
  const list = memo || (await kvGet('categories')) || [];
  return list.find((c) => c.code === code) || null;
}
