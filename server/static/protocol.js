// Switchboard protocol v1 for browsers: one resumable WebSocket with requests, replies and events.
//
// Mirrors clients/agent.py: `hello {id, token}` → `welcome`; requests carry an `id` and resolve with
// the reply whose `re` matches (an `error` reply rejects with a RequestError); events keep their order
// and update `lastSeq`. After a drop the connection comes back by itself with jittered exponential
// backoff (0.2 s → 10 s) and `hello {resume_from: lastSeq, epoch}`, unless the server's close code
// says retrying cannot help (4400, 4401, 4403, 1009). Events are never delivered twice: anything with
// a `seq` at or below the last one seen is dropped. See docs/protocol.md.

export const SUBPROTOCOL = 'switchboard.v1.json';

/** Close codes after which reconnecting as is cannot help (protocol.codes.CLOSE_HELP). */
export const FATAL_CLOSES = new Set([1009, 4400, 4401, 4403]);

export const CLOSE_REASONS = {
  1009: 'A message was larger than the server accepts.',
  4400: 'The server did not understand this page (protocol error).',
  4401: 'Your sign-in was refused or has expired. Please sign in again.',
  4403: 'The server refused this connection for this page (wrong kind of token, or this site may not connect).',
};

const MIN_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 10000;
const REQUEST_TIMEOUT_MS = 10000;
const HELLO_TIMEOUT_MS = 10000;
const HEARTBEAT_MS = 15000;

export class RequestError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'RequestError';
    this.code = code;
  }
}

/** The claims of a JWT (unverified: only to route the user and warn before the server refuses). */
export function tokenClaims(token) {
  try {
    const part = token.split('.')[1];
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const json = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const claims = JSON.parse(json);
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

/** GET or POST JSON on this server; rejects with RequestError(code, message) on an HTTP error. */
export async function api(path, { token, method = 'GET', body } = {}) {
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new RequestError('network', 'The server cannot be reached.');
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    throw new RequestError(data?.code || `http_${response.status}`, data?.message || response.statusText);
  }
  return data;
}

/**
 * One agent or supervisor socket.
 *
 * options: path ('/v1/agent' or '/v1/supervisor'), token, resumable (agents: resume with lastSeq),
 * and callbacks onWelcome(welcome, {first}), onEvent(frame), onState(state, info), onFatal({code,
 * reason, message}), onStrayError(errorFrame).
 * state: 'connecting' → 'connected' ⇄ 'reconnecting'; 'closed' after stop() or a fatal close.
 */
export class Connection {
  constructor({ path, token, resumable = false, onWelcome, onEvent, onState, onFatal, onStrayError }) {
    this.path = path;
    this.token = token;
    this.resumable = resumable;
    this.onWelcome = onWelcome || (() => {});
    this.onEvent = onEvent || (() => {});
    this.onState = onState || (() => {});
    this.onFatal = onFatal || (() => {});
    this.onStrayError = onStrayError || (() => {});
    this.state = 'closed';
    this.lastSeq = 0;
    this.epoch = null;
    this.welcome = null;
    this.skewS = 0; // server clock minus ours, in seconds
    this.attempt = 0;
    this.nextRetryAt = null;
    this._ids = 0;
    this._ws = null;
    this._gen = 0;
    this._pending = new Map();
    this._helloId = null;
    this._helloTimer = null;
    this._retryTimer = null;
    this._heartbeat = null;
    this._retryAfterMs = 0;
    this._stopped = true;
    this._onOnline = () => {
      if (this.state === 'reconnecting') this._retryNow();
    };
  }

  get url() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}${this.path}`;
  }

  /** The server's clock now, in Unix seconds (corrected with welcome/pong server_time). */
  serverNow() {
    return Date.now() / 1000 + this.skewS;
  }

  start() {
    this._stopped = false;
    window.addEventListener('online', this._onOnline);
    this._setState('connecting');
    this._open();
  }

  /** Close for good: no reconnecting after this. */
  stop() {
    this._stopped = true;
    window.removeEventListener('online', this._onOnline);
    clearTimeout(this._retryTimer);
    this._detach('closed on request', 1000);
    this._setState('closed');
  }

  /** Send a request frame (without `id`); resolves with its reply, rejects with RequestError. */
  request(frame, { timeoutMs = REQUEST_TIMEOUT_MS } = {}) {
    if (this.state !== 'connected' || !this._ws) {
      return Promise.reject(new RequestError('not_connected', 'Not connected to the server right now; try again in a moment.'));
    }
    const id = ++this._ids;
    const ws = this._ws;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new RequestError('timeout', `No answer to ${frame.type} in time.`));
      }, timeoutMs);
      this._pending.set(id, { resolve, reject, timer, sentAt: Date.now() });
      try {
        ws.send(JSON.stringify({ ...frame, id }));
      } catch {
        clearTimeout(timer);
        this._pending.delete(id);
        reject(new RequestError('not_connected', 'Not connected to the server right now; try again in a moment.'));
      }
    });
  }

  _setState(state, info = {}) {
    if (this.state === state && state !== 'reconnecting') return;
    this.state = state;
    this.onState(state, info);
  }

  _open() {
    const gen = ++this._gen;
    let ws;
    try {
      ws = new WebSocket(this.url, [SUBPROTOCOL]);
    } catch {
      this._scheduleRetry();
      return;
    }
    this._ws = ws;
    ws.onopen = () => {
      if (gen !== this._gen) return;
      this._sendHello(ws);
    };
    ws.onmessage = (message) => {
      if (gen !== this._gen) return;
      this._receive(message.data);
    };
    ws.onclose = (event) => {
      if (gen !== this._gen) return;
      this._closed(event.code, event.reason);
    };
    ws.onerror = () => {}; // onclose follows with the code; the browser already logs the failure
  }

  _sendHello(ws) {
    const hello = { type: 'hello', id: ++this._ids, token: this.token };
    if (this.resumable && this.welcome) {
      hello.resume_from = this.lastSeq;
      if (this.epoch) hello.epoch = this.epoch;
    }
    this._helloId = hello.id;
    this._helloSentAt = Date.now();
    ws.send(JSON.stringify(hello));
    this._helloTimer = setTimeout(() => this._lost('no welcome in time'), HELLO_TIMEOUT_MS);
  }

  _receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      console.warn('switchboard: ignored a frame that is not JSON');
      return;
    }
    if (!frame || typeof frame !== 'object') return;
    if (frame.type === 'welcome' && frame.re === this._helloId) {
      this._welcomed(frame);
      return;
    }
    if (frame.re !== undefined && frame.re !== null && this._pending.has(frame.re)) {
      const pending = this._pending.get(frame.re);
      this._pending.delete(frame.re);
      clearTimeout(pending.timer);
      if (frame.type === 'pong' && typeof frame.server_time === 'number') {
        this._skewFrom(frame.server_time, pending.sentAt);
      }
      if (frame.type === 'error') pending.reject(new RequestError(frame.code, frame.message));
      else pending.resolve(frame);
      return;
    }
    if (frame.type === 'error') {
      if (frame.re === this._helloId) return; // the close that follows says it all
      this.onStrayError(frame);
      return;
    }
    if (frame.re !== undefined && frame.re !== null) return; // a late reply to a request that timed out
    if (frame.type === 'closing') {
      // not an event of the agent's log: its number must not move where a resume starts from
      this._retryAfterMs = Number(frame.retry_after_ms) || 0;
    } else if (typeof frame.seq === 'number' && frame.seq > 0) {
      if (frame.seq <= this.lastSeq) return; // already seen: never apply an event twice
      this.lastSeq = frame.seq;
    }
    this.onEvent(frame);
  }

  _skewFrom(serverTime, sentAtMs) {
    const midpoint = (sentAtMs + Date.now()) / 2000;
    this.skewS = serverTime - midpoint;
  }

  _welcomed(welcome) {
    clearTimeout(this._helloTimer);
    const first = this.welcome === null;
    if (typeof welcome.server_time === 'number' && welcome.server_time > 0) {
      this._skewFrom(welcome.server_time, this._helloSentAt);
    }
    this.welcome = welcome;
    this.epoch = welcome.epoch || null;
    if (!welcome.resumed) this.lastSeq = welcome.seq || 0;
    this.attempt = 0;
    this.nextRetryAt = null;
    this._retryAfterMs = 0;
    this._setState('connected');
    this._startHeartbeat();
    this.onWelcome(welcome, { first });
  }

  _startHeartbeat() {
    clearInterval(this._heartbeat);
    this._heartbeat = setInterval(() => {
      if (this.state !== 'connected') return;
      this.request({ type: 'ping' }, { timeoutMs: 10000 }).catch((error) => {
        if (error.code === 'timeout') this._lost('no answer to ping');
      });
    }, HEARTBEAT_MS);
  }

  /** The socket looks dead (no welcome, no pong): drop it now and reconnect. */
  _lost(why) {
    if (this._stopped) return;
    this._detach(why, 4000);
    this._scheduleRetry();
  }

  /** Forget the current socket: close it, fail what waits on it, ignore whatever it still says. */
  _detach(why, code) {
    this._gen++;
    clearTimeout(this._helloTimer);
    clearInterval(this._heartbeat);
    const ws = this._ws;
    this._ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) {
      try {
        ws.close(code, why.slice(0, 100));
      } catch {
        /* already closing */
      }
    }
    this._failPending();
  }

  _failPending() {
    for (const pending of this._pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new RequestError('not_connected', 'The connection dropped before the server answered; try again.'));
    }
    this._pending.clear();
  }

  _closed(code, reason) {
    clearTimeout(this._helloTimer);
    clearInterval(this._heartbeat);
    this._ws = null;
    this._failPending();
    if (this._stopped) {
      this._setState('closed');
      return;
    }
    if (FATAL_CLOSES.has(code)) {
      this._stopped = true;
      window.removeEventListener('online', this._onOnline);
      this._setState('closed', { code, reason });
      this.onFatal({ code, reason, message: CLOSE_REASONS[code] || `Closed (${code}).` });
      return;
    }
    this._scheduleRetry(code);
  }

  _scheduleRetry(code) {
    if (this._stopped) return;
    clearTimeout(this._retryTimer);
    const ceiling = Math.min(MIN_BACKOFF_MS * 2 ** this.attempt, MAX_BACKOFF_MS);
    let delay = ceiling / 2 + Math.random() * (ceiling / 2);
    if (this._retryAfterMs) delay = Math.max(delay, this._retryAfterMs);
    this._retryAfterMs = 0;
    this.attempt += 1;
    this.nextRetryAt = Date.now() + delay;
    this._setState('reconnecting', { code, attempt: this.attempt, retryAt: this.nextRetryAt });
    this._retryTimer = setTimeout(() => {
      if (!this._stopped) this._open();
    }, delay);
  }

  _retryNow() {
    clearTimeout(this._retryTimer);
    if (this._ws || this._stopped) return;
    this.nextRetryAt = Date.now();
    this._open();
  }

  /** Reconnect at once (the user asked to). */
  retryNow() {
    if (this.state === 'reconnecting') this._retryNow();
  }
}
