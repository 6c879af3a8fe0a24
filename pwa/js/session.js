// Who is signed in on this phone: {token, member}, in IndexedDB so the service worker can send the
// outbox too. A 401 forgets the token but keeps the member: drafts and outbox items stay theirs and go
// once they sign in again (a new code for the same phone is the same member).
import { kvGet, kvSet } from './idb.js';
import { request } from './api.js';

let current = null;

export async function loadSession() {
  current = (await kvGet('session')) || null;
  return current;
}

export const session = () => current;
export const member = () => current?.member ?? null;
export const token = () => current?.token ?? null;

export async function saveSession(newToken, newMember) {
  current = { token: newToken, member: newMember };
  await kvSet('session', current);
}

export async function updateMember(newMember) {
  if (!current) return;
  current = { ...current, member: newMember };
  await kvSet('session', current);
}

export async function expireSession() {
  if (!current?.token) return;
  current = { token: null, member: current.member };
  await kvSet('session', current);
}

export async function signOut() {
  try {
    await request('/api/v1/sessions/current', { method: 'DELETE' });
  } catch {
    // Offline or already expired: forgetting the token here is what matters to this phone.
  }
  current = null;
  await kvSet('session', null);
}
