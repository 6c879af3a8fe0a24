// fetch for the API, from pages and the service worker: Bearer token, the reader's language, and every
// failure as an ApiError {status, code, message, errors, retryAfter} — status 0 when the network failed.
const config = {
  token: async () => null,
  lang: async () => 'zh-CN',
  onUnauthorized: () => {},
};

export function configureApi(overrides) {
  Object.assign(config, overrides);
}

export class ApiError extends Error {
  constructor({ status, code, message = '', errors = [], retryAfter = null, detail = '' }) {
    super(message || code);
    Object.assign(this, { status, code, errors, retryAfter, detail });
    this.message = message;
  }
}

// Retry-After is seconds or an HTTP date; the answer is seconds from now, or null.
export function retryAfterSeconds(value, now = Date.now()) {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value);
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

async function problemOf(res) {
  let body = {};
  try {
    body = await res.json();
  } catch {
    // A proxy's HTML error page: the status alone must do.
  }
  return new ApiError({
    status: res.status,
    code: body.code || `http_${res.status}`,
    message: body.title || '',
    detail: body.detail || '',
    errors: Array.isArray(body.errors) ? body.errors : [],
    retryAfter: retryAfterSeconds(res.headers.get('Retry-After')),
  });
}

export async function request(path, { method = 'GET', json, body, auth = true, signal } = {}) {
  const headers = { Accept: 'application/json', 'Accept-Language': await config.lang() };
  const token = auth ? await config.token() : null;
  if (token) headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  }
  let res;
  try {
    // No cookies: the token travels only in the header; no-store keeps personal data out of the HTTP cache.
    res = await fetch(path, { method, headers, body, signal, credentials: 'omit', cache: 'no-store' });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError({ status: 0, code: 'network' });
  }
  if (res.ok) return res.status === 204 ? null : res.json().catch(() => null);
  const problem = await problemOf(res);
  // The token that was refused goes along: a late 401 for an old session must not end a newer one.
  if (problem.status === 401 && auth) config.onUnauthorized(problem, token);
  throw problem;
}

export const get = (path, opts) => request(path, opts);
export const post = (path, json, opts) => request(path, { ...opts, method: 'POST', json });
