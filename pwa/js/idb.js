// IndexedDB with promises, for pages and the service worker alike (no DOM here): the outbox and the
// session must be readable by the worker's Background Sync, which has no localStorage.
const NAME = 'gridrider';
const VERSION = 1;
let opening = null;

export function openDb() {
  opening ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(NAME, VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      // drafts: marks not yet sent · outbox: reports on their way, by client_id · kv: session, settings, caches
      for (const [store, keyPath] of [['drafts', 'id'], ['outbox', 'client_id'], ['kv', null]]) {
        if (!db.objectStoreNames.contains(store)) db.createObjectStore(store, keyPath ? { keyPath } : undefined);
      }
    };
    req.onsuccess = () => {
      const db = req.result;
      // A newer tab (after an update) may need to upgrade: let go instead of blocking it.
      db.onversionchange = () => { db.close(); opening = null; };
      resolve(db);
    };
    req.onerror = () => { opening = null; reject(req.error); };
  });
  return opening;
}

function settle(tx, req) {
  // Resolve on the transaction's completion, not the request's: only then is the write durable.
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve(req?.result);
    tx.onerror = tx.onabort = () => reject(tx.error);
  });
}

async function run(store, mode, fn) {
  const tx = (await openDb()).transaction(store, mode);
  return settle(tx, fn(tx.objectStore(store)));
}

export const get = (store, key) => run(store, 'readonly', (s) => s.get(key));
export const all = (store) => run(store, 'readonly', (s) => s.getAll());
export const put = (store, value, key) => run(store, 'readwrite', (s) => s.put(value, key));
export const del = (store, key) => run(store, 'readwrite', (s) => s.delete(key));

// Read, change and write one record in a single transaction, so two writers cannot interleave.
// `fn` gets the record (or undefined) and returns the new one, or undefined to leave it alone.
export async function update(store, key, fn) {
  const tx = (await openDb()).transaction(store, 'readwrite');
  const s = tx.objectStore(store);
  let result;
  s.get(key).onsuccess = (e) => {
    result = fn(e.target.result);
    if (result !== undefined) s.put(result);
  };
  await settle(tx);
  return result;
}

export const kvGet = (key) => get('kv', key);
export const kvSet = (key, value) => put('kv', value, key);
