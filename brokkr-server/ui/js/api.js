// The REST API as the dashboard uses it: the key from session storage in the
// Authorization header, the JSON error body turned into an ApiError, and a network
// failure told apart from an answer.

const KEY = 'brokkr.key';
// Relative to the page (`/ui/`), so the dashboard works wherever the app is nested.
const BASE = new URL('../api/v1', document.baseURI).pathname;
const ROLE = 'brokkr.role';
const ID = 'brokkr.id';

/** A failed call: `status` 0 when the server could not be reached. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The signed-in key's session, or null. */
export function session() {
  const key = sessionStorage.getItem(KEY);
  if (!key) return null;
  return { key, role: sessionStorage.getItem(ROLE), id: sessionStorage.getItem(ID) };
}

/** Checks `key` with the server and keeps it for this tab only. */
export async function signIn(key) {
  const who = await call('/auth/pak', { method: 'POST', key });
  if (who.role !== 'admin' && who.role !== 'generator') {
    throw new ApiError(403, 'forbidden', 'Only admin and generator keys can use the dashboard.');
  }
  sessionStorage.setItem(KEY, key);
  sessionStorage.setItem(ROLE, who.role);
  sessionStorage.setItem(ID, who.id ?? '');
  return session();
}

/** Forgets the key. */
export function signOut() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(ROLE);
  sessionStorage.removeItem(ID);
}

/** `?a=1&b=2` from the entries of `params` that have a value. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') q.set(name, String(value));
  }
  const text = q.toString();
  return text ? `?${text}` : '';
}

/** GET (or `method`) `/api/v1` + `path`; the parsed JSON, or null for 204. */
export async function call(path, { method = 'GET', key, body } = {}) {
  const headers = { Accept: 'application/json' };
  const secret = key ?? sessionStorage.getItem(KEY);
  if (secret) headers.Authorization = `Bearer ${secret}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(`${BASE}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
      redirect: 'error',
    });
  } catch {
    throw new ApiError(0, 'unreachable', 'The server cannot be reached.');
  }
  if (resp.status === 204) return null;
  let data = null;
  try {
    data = await resp.json();
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const code = data && typeof data.code === 'string' ? data.code : `http_${resp.status}`;
    const message = data && typeof data.message === 'string' ? data.message : resp.statusText;
    throw new ApiError(resp.status, code, message);
  }
  return data;
}

/** Like `call`, but a 404 is null (a resource that is absent or not visible). */
export async function optional(path) {
  try {
    return await call(path);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}
