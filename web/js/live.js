// The live connection (/ws): events, presence and reload notices pushed by the server. Reconnects with
// exponential backoff and jitter; failures are logged at debug level only, so a server without the
// endpoint (or a flaky network) never floods the console.

const MIN_DELAY = 1000;
const MAX_DELAY = 60000;
const PING_EVERY = 25000;

export function createLive({ onMessage, onStatus }) {
  let ws = null;
  let token = null;
  let attempt = 0;
  let timer = null;
  let pinger = null;
  let stopped = true;
  let nextId = 1;

  function url() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${proto}//${location.host}/ws?token=${encodeURIComponent(token)}`;
  }

  function schedule() {
    if (stopped) return;
    const base = Math.min(MAX_DELAY, MIN_DELAY * 2 ** attempt);
    const delay = Math.round(base / 2 + Math.random() * base / 2);
    attempt += 1;
    onStatus?.('retrying', delay);
    console.debug(`live: reconnecting in ${delay} ms (attempt ${attempt})`);
    timer = setTimeout(open, delay);
  }

  function open() {
    timer = null;
    if (stopped || !token) return;
    onStatus?.('connecting');
    let socket;
    try {
      socket = new WebSocket(url());
    } catch (e) {
      console.debug('live: cannot open', e);
      schedule();
      return;
    }
    ws = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      attempt = 0;
      onStatus?.('open');
      pinger = setInterval(() => send({ type: 'ping' }), PING_EVERY);
    };
    socket.onmessage = (m) => {
      let msg;
      try {
        msg = JSON.parse(m.data);
      } catch {
        console.debug('live: ignoring a non-JSON message');
        return;
      }
      onMessage?.(msg);
    };
    socket.onerror = () => console.debug('live: connection error');
    socket.onclose = (e) => {
      clearInterval(pinger);
      pinger = null;
      if (ws === socket) ws = null;
      console.debug(`live: closed (code ${e.code}${opened ? '' : ', never opened'})`);
      if (e.code === 4401 || e.code === 1008) onStatus?.('refused');
      schedule();
    };
  }

  function send(msg) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  return {
    start(newToken) {
      token = newToken;
      stopped = false;
      attempt = 0;
      if (!ws && !timer) open();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      timer = null;
      clearInterval(pinger);
      if (ws) {
        const s = ws;
        ws = null;
        s.onclose = null;
        s.close(1000, 'logout');
      }
      onStatus?.('off');
    },
    /** Sends an action over the socket; returns its id, or null when not connected. */
    action(plugin, action, params = {}) {
      const id = `a${nextId++}`;
      return send({ type: 'action', id, plugin, action, params }) ? id : null;
    },
    get connected() {
      return !!ws && ws.readyState === WebSocket.OPEN;
    },
  };
}
