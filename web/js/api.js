// HTTP client for /api/v1: bearer token, JSON in and out, and errors turned into words a player reads.

/** An API failure with a message meant for the player. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    /** Seconds the server asked to wait before the next try (429 and 503), or null. */
    this.retryAfter = retryAfter;
  }
}

const TOKEN_KEY = 'cauldron.token';

export const session = {
  get token() {
    return localStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    if (value) localStorage.setItem(TOKEN_KEY, value);
    else localStorage.removeItem(TOKEN_KEY);
  },
};

/** What to tell the player for a failed request. Rule rejections carry the plugin's own message. */
function explain(status, body, retryAfter) {
  const code = body?.error?.code ?? 'error';
  const msg = body?.error?.message;
  switch (status) {
    case 400: return msg ? `That request was not accepted: ${msg}` : 'That request was not accepted.';
    case 401: return msg && code !== 'unauthorized' ? msg : 'Your session has ended. Please log in again.';
    case 404: return msg ?? 'That does not exist (any more).';
    case 409: return msg ?? 'Something changed at the same moment. Please try again.';
    case 422: return msg ?? 'The rules of the game do not allow that right now.';
    case 429: return `Too fast — please wait ${retryAfter ?? 'a few'} s and try again.`;
    case 500: return code === 'plugin_fault'
      ? 'The game module failed on this action; nothing was changed. Please try again later.'
      : 'The server hit a problem; nothing was changed. Please try again.';
    case 503: return msg ?? 'The server is busy or under maintenance. Please try again shortly.';
    default: return msg ?? `Unexpected reply from the server (${status}).`;
  }
}

/** Calls the API. `onUnauthorized` runs when a token is refused. */
export function createApi({ onUnauthorized } = {}) {
  async function request(method, path, body, headers = {}) {
    const h = { Accept: 'application/json', ...headers };
    if (session.token) h.Authorization = `Bearer ${session.token}`;
    const raw = body instanceof Blob || body instanceof ArrayBuffer;
    if (body !== undefined && !raw) h['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetch(`/api/v1${path}`, {
        method,
        headers: h,
        body: body === undefined || raw ? body : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(0, 'offline', 'Cannot reach the server. Check your connection and try again.');
    }
    if (res.status === 204) return null;
    let data = null;
    try {
      data = await res.json();
    } catch {
      data = null;
    }
    if (!res.ok) {
      const retryAfter = res.headers.get('Retry-After');
      const err = new ApiError(res.status, data?.error?.code ?? 'error',
        explain(res.status, data, retryAfter), retryAfter === null ? null : Number(retryAfter));
      if (res.status === 401 && session.token && onUnauthorized) onUnauthorized(err);
      throw err;
    }
    return data;
  }

  return {
    register: (username, password) => request('POST', '/auth/register', { username, password }),
    login: (username, password) => request('POST', '/auth/login', { username, password }),
    logout: () => request('POST', '/auth/logout'),
    me: () => request('GET', '/auth/me'),
    player: () => request('GET', '/player'),
    stats: () => request('GET', '/player/stats'),
    catalog: () => request('GET', '/catalog'),
    board: (name, limit = 20) => request('GET', `/leaderboards/${encodeURIComponent(name)}?limit=${limit}`),
    around: (name, limit = 10, offset = 0) =>
      request('GET', `/leaderboards/${encodeURIComponent(name)}/around/me?limit=${limit}&offset=${offset}`),
    online: () => request('GET', '/online'),
    onlinePlayers: () => request('GET', '/online/players'),
    rename: (name) => request('POST', '/player/name', { name }),
    /** The plugin administration routes (admin accounts only). */
    admin: {
      plugins: () => request('GET', '/admin/plugins'),
      upload: (name, file, type) => request('POST', `/admin/plugins/${encodeURIComponent(name)}`, file,
        { 'Content-Type': type }),
      rollback: (name) => request('POST', `/admin/plugins/${encodeURIComponent(name)}/rollback`),
      unload: (name) => request('DELETE', `/admin/plugins/${encodeURIComponent(name)}`),
      /** Stores a version without serving it; its digest is in `stored.sha256`. */
      store: (name, file, type) => request('POST', `/admin/plugins/${encodeURIComponent(name)}?activate=false`, file,
        { 'Content-Type': type }),
      canary: (name, sha256, share) => request('PUT', `/admin/plugins/${encodeURIComponent(name)}/canary`,
        { sha256, share_percent: Number(share) }),
      promote: (name) => request('POST', `/admin/plugins/${encodeURIComponent(name)}/canary/promote`),
      endCanary: (name) => request('DELETE', `/admin/plugins/${encodeURIComponent(name)}/canary`),
      shadow: (name, sha256, share) => request('PUT', `/admin/plugins/${encodeURIComponent(name)}/shadow`,
        { sha256, share_percent: Number(share) }),
      endShadow: (name) => request('DELETE', `/admin/plugins/${encodeURIComponent(name)}/shadow`),
    },
    // A query (read-only action) needs no Idempotency-Key: repeating it is harmless and the server
    // ignores the key anyway.
    act: (plugin, action, params = {}, { query = false } = {}) => request('POST',
      `/actions/${encodeURIComponent(plugin)}/${encodeURIComponent(action)}`, params,
      query ? {} : { 'Idempotency-Key': newKey() }),
  };
}

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}
