// The realtime browser client: promise requests, typed events, a connection state machine, an offline
// outbox and room rejoin, on top of the stock socket.io-client. The event tables below are generated from
// the server's event registry; everything else is this hand-written runtime.
const TABLES = { version: "0", clientEvents: {}, rooms: {}, serverEvents: [] }; // @event-tables

/** Failure codes the client itself produces, next to the server's error codes. */
export const CLIENT_ERROR_CODES = Object.freeze(["TIMEOUT", "DISCONNECTED", "OUTBOX_FULL", "CLOSED"]);

/** The schema version of the registry this client was generated from. */
export const SCHEMA_VERSION = TABLES.version;

/** A failed request: the server's error envelope, or TIMEOUT / DISCONNECTED / OUTBOX_FULL / CLOSED. */
export class RealtimeError extends Error {
  constructor(code, message, fields, event) {
    super(message);
    this.name = "RealtimeError";
    this.code = code;
    this.fields = fields === undefined ? null : fields;
    this.event = event === undefined ? null : event;
  }
}

const DEFAULTS = {
  timeout: 10000,
  outboxLimit: 100,
  backoff: { minMs: 1000, maxMs: 10000, jitter: 0.5 },
};

let counter = 0;

/** A fresh id of [A-Za-z0-9_-], at most 64 characters: the shape the server's clientId field takes. */
export function newClientId() {
  const cryptoApi = globalThis.crypto;
  if (cryptoApi && typeof cryptoApi.randomUUID === "function") return "c-" + cryptoApi.randomUUID();
  counter += 1;
  return "c-" + Date.now().toString(36) + "-" + counter.toString(36) + "-" + Math.random().toString(36).slice(2, 10);
}

function errorFrom(body, event) {
  const error = body && typeof body === "object" ? body : {};
  const code = typeof error.code === "string" ? error.code : "INTERNAL";
  const message = typeof error.message === "string" ? error.message : "The server answered without a message.";
  return new RealtimeError(code, message, error.fields, event);
}

function resolveIo(options) {
  const io = options.io || globalThis.io;
  if (typeof io !== "function") {
    throw new TypeError(
      "createClient needs socket.io-client: pass { io } from `import { io } from \"socket.io-client\"`, " +
        "or load its browser bundle first so that window.io exists."
    );
  }
  return io;
}

function readStorage(storage, key) {
  if (!storage) return [];
  try {
    const saved = JSON.parse(storage.getItem(key) || "[]");
    return Array.isArray(saved) ? saved.filter((item) => item && typeof item.event === "string") : [];
  } catch (err) {
    return [];
  }
}

class Client {
  constructor(url, options) {
    if (!options || (options.token === undefined && typeof options.getToken !== "function")) {
      throw new TypeError("createClient(url, options) needs options.token or options.getToken().");
    }
    this._options = options;
    this._timeout = options.timeout === undefined ? DEFAULTS.timeout : options.timeout;
    this._limit = options.outboxLimit === undefined ? DEFAULTS.outboxLimit : options.outboxLimit;
    this._storage = options.storage === undefined ? null : options.storage;
    this._storageKey = options.storageKey || "realtime:outbox";
    this._token = options.token === undefined ? null : options.token;
    this._refreshes = 0;
    this._state = { status: "connecting", recovered: false, reason: null, error: null };
    this._listeners = new Set();
    this._handlers = new Map();
    this._outbox = [];
    this._inflight = new Map();
    this._rooms = new Map();
    this._ready = false;
    this._flushing = false;
    this._sequence = 0;
    this._connectedOnce = false;
    const backoff = { ...DEFAULTS.backoff, ...(options.backoff || {}) };
    const io = resolveIo(options);
    this.socket = io(url, {
      ...(options.socketOptions || {}),
      autoConnect: false,
      reconnectionDelay: backoff.minMs,
      reconnectionDelayMax: backoff.maxMs,
      randomizationFactor: backoff.jitter,
      auth: (callback) => {
        this._currentToken().then(
          (token) => callback({ token }),
          (err) => this._close("token", new RealtimeError("AUTH_REQUIRED", "getToken() failed: " + String(err)))
        );
      },
    });
    this.restored = readStorage(this._storage, this._storageKey).map((saved) => ({
      event: saved.event,
      payload: saved.payload,
      result: this._enqueue(saved.event, saved.payload, saved.timeout === undefined ? this._timeout : saved.timeout),
    }));
    this._wire();
    this.socket.connect();
  }

  /** The current connection state: status, recovered, and the reason and error of a close. */
  get state() {
    return this._state;
  }

  /** Call listener(state) on every state change; returns the function that stops it. */
  subscribe(listener) {
    this._listeners.add(listener);
    return () => this._listeners.delete(listener);
  }

  /** Requests waiting for a connection, oldest first: [{event, payload}]. */
  pending() {
    return this._outbox.map((entry) => ({ event: entry.event, payload: entry.payload }));
  }

  /** Send a client->server event; resolve with the ack's data or reject with a RealtimeError. */
  request(event, payload, options) {
    if (!Object.prototype.hasOwnProperty.call(TABLES.clientEvents, event)) {
      return Promise.reject(
        new RealtimeError("VALIDATION_ERROR", `Unknown event ${JSON.stringify(event)}; see /ws-docs/events.`, null, event)
      );
    }
    const meta = TABLES.clientEvents[event];
    let body = payload;
    if (meta.clientIdField && body && typeof body === "object" && !Array.isArray(body) && !body[meta.clientIdField]) {
      body = { ...body, [meta.clientIdField]: newClientId() };
    }
    const timeout = options && options.timeout !== undefined ? options.timeout : this._timeout;
    return this._enqueue(event, body, timeout);
  }

  /** Listen to a server->client event; the handler gets the payload. */
  on(event, handler) {
    return this._listen(event, handler, (payload) => handler(payload));
  }

  /** Stop a handler added with on() or once(); without a handler, stop every handler of the event. */
  off(event, handler) {
    const byHandler = this._handlers.get(event);
    if (!byHandler) return this;
    const targets = handler === undefined ? [...byHandler.keys()] : [handler];
    for (const target of targets) {
      for (const wrapped of byHandler.get(target) || []) this.socket.off(event, wrapped);
      byHandler.delete(target);
    }
    return this;
  }

  /** Listen to the next occurrence of a server->client event only. */
  once(event, handler) {
    const wrapped = (payload) => {
      this._unlisten(event, handler, wrapped);
      handler(payload);
    };
    return this._listen(event, handler, wrapped);
  }

  _listen(event, handler, wrapped) {
    let byHandler = this._handlers.get(event);
    if (!byHandler) {
      byHandler = new Map();
      this._handlers.set(event, byHandler);
    }
    byHandler.set(handler, [...(byHandler.get(handler) || []), wrapped]);
    this.socket.on(event, wrapped);
    return this;
  }

  _unlisten(event, handler, wrapped) {
    this.socket.off(event, wrapped);
    const byHandler = this._handlers.get(event);
    const left = ((byHandler && byHandler.get(handler)) || []).filter((w) => w !== wrapped);
    if (!byHandler) return;
    if (left.length) byHandler.set(handler, left);
    else byHandler.delete(handler);
  }

  /** Connect again after offline or closed (not after force_logout unless the app chooses to). */
  connect() {
    if (this.socket.connected) return;
    this._refreshes = 0;
    this.socket.io.reconnection(true);
    this._setState({ status: this._connectedOnce ? "reconnecting" : "connecting", reason: null, error: null });
    this.socket.connect();
  }

  /** Disconnect for good: pending and queued requests reject with CLOSED. */
  close() {
    this._close("closed", null);
  }

  _currentToken() {
    if (this._token !== null) return Promise.resolve(this._token);
    if (typeof this._options.getToken !== "function") return Promise.resolve(this._options.token);
    return Promise.resolve(this._options.getToken()).then((token) => {
      this._token = token;
      return token;
    });
  }

  _wire() {
    const socket = this.socket;
    socket.on("connect", () => this._onConnect());
    socket.on("disconnect", (reason) => this._onDisconnect(reason));
    socket.on("connect_error", (err) => this._onConnectError(err));
    socket.on("force_logout", (payload) => {
      const reason = payload && typeof payload.reason === "string" ? payload.reason : "revoked";
      this._close(reason, new RealtimeError("SESSION_REVOKED", `The server logged this session out (${reason}).`));
    });
    socket.io.on("reconnect_attempt", () => {
      if (this._state.status !== "closed") this._setState({ status: "reconnecting" });
    });
    socket.io.on("reconnect_failed", () => {
      if (this._state.status !== "closed") this._setState({ status: "offline" });
    });
    if (typeof globalThis.addEventListener === "function") {
      globalThis.addEventListener("offline", () => {
        if (this._state.status !== "closed" && !socket.connected) this._setState({ status: "offline" });
      });
      globalThis.addEventListener("online", () => {
        if (this._state.status === "offline") this.connect();
      });
    }
  }

  _setState(change) {
    const next = { ...this._state, ...change };
    if (
      next.status === this._state.status &&
      next.recovered === this._state.recovered &&
      next.reason === this._state.reason &&
      next.error === this._state.error
    ) {
      return;
    }
    this._state = Object.freeze(next);
    for (const listener of [...this._listeners]) listener(this._state);
  }

  async _onConnect() {
    const recovered = Boolean(this.socket.recovered);
    const reconnect = this._connectedOnce;
    this._connectedOnce = true;
    this._refreshes = 0;
    this._setState({ status: "connected", recovered: reconnect && recovered, reason: null, error: null });
    if (reconnect && !recovered) await this._rejoin();
    if (!this.socket.connected) return;
    this._ready = true;
    this._flush();
  }

  async _rejoin() {
    for (const [key, join] of [...this._rooms]) {
      const outcome = await this._send(this._entry(join.event, join.payload, this._timeout));
      if (!this.socket.connected) return;
      if (outcome.error) this._rooms.delete(key);
    }
  }

  _onDisconnect(reason) {
    this._ready = false;
    const lost = [...this._inflight.values()].sort((a, b) => a.seq - b.seq);
    const retry = [];
    for (const entry of lost) {
      if (entry.retry && entry.reject) {
        retry.push(entry);
        entry.finish({ requeued: true });
      } else {
        entry.finish({
          error: new RealtimeError("DISCONNECTED", `The connection dropped (${reason}) before the answer came.`, null, entry.event),
        });
      }
    }
    this._outbox.unshift(...retry);
    this._persist();
    if (this._state.status === "closed") return;
    const status = reason === "io server disconnect" || reason === "io client disconnect" ? "offline" : "reconnecting";
    this._setState({ status, recovered: false });
  }

  _onConnectError(err) {
    if (this._state.status === "closed") return;
    const data = err && err.data && typeof err.data === "object" ? err.data : null;
    const code = data && typeof data.code === "string" ? data.code : null;
    if (this.socket.active) {
      this._setState({ status: this._connectedOnce ? "reconnecting" : "connecting" });
      return;
    }
    const error = new RealtimeError(code || "UNAVAILABLE", (data && data.message) || (err && err.message) || "refused");
    if (code === "TOKEN_EXPIRED" && typeof this._options.getToken === "function" && this._refreshes < 1) {
      this._refreshes += 1;
      this._token = null;
      this._retryLater(this.socket.io.reconnectionDelay());
      return;
    }
    if (code === "UNAVAILABLE") {
      this._setState({ status: "reconnecting", error });
      this._retryLater(this.socket.io.reconnectionDelayMax());
      return;
    }
    this._close(code ? code.toLowerCase() : "refused", error);
  }

  _retryLater(delay) {
    // Not at once: socket.io-client is still closing the refused connection, whose last polling requests
    // would otherwise meet a server that already dropped that session.
    setTimeout(() => {
      if (this._state.status !== "closed" && !this.socket.connected && !this.socket.active) this.socket.connect();
    }, delay);
  }

  _close(reason, error) {
    if (this._state.status === "closed") return;
    this._ready = false;
    this._setState({ status: "closed", recovered: false, reason, error });
    this.socket.io.reconnection(false);
    this.socket.disconnect();
    const closed = (event) => new RealtimeError("CLOSED", `The client is closed (${reason}).`, null, event);
    for (const entry of [...this._inflight.values()]) entry.finish({ error: closed(entry.event) });
    for (const entry of this._outbox) entry.reject(closed(entry.event));
    this._outbox = [];
    this._persist();
  }

  _entry(event, payload, timeout) {
    const meta = TABLES.clientEvents[event] || { retry: false };
    return { event, payload, timeout, retry: meta.retry, seq: (this._sequence += 1), attempt: 0, finish: null,
      resolve: null, reject: null, timer: null };
  }

  _enqueue(event, payload, timeout) {
    if (this._state.status === "closed") {
      return Promise.reject(new RealtimeError("CLOSED", `The client is closed (${this._state.reason}).`, null, event));
    }
    const entry = this._entry(event, payload, timeout);
    return new Promise((resolve, reject) => {
      entry.resolve = resolve;
      entry.reject = reject;
      if (this._ready && this._outbox.length === 0 && !this._flushing) {
        this._dispatch(entry);
        return;
      }
      if (this._outbox.length >= this._limit) {
        reject(new RealtimeError("OUTBOX_FULL", `${this._limit} requests already wait for the connection; raise outboxLimit or wait for "connected".`, null, event));
        return;
      }
      this._outbox.push(entry);
      this._persist();
    });
  }

  async _dispatch(entry) {
    const outcome = await this._send(entry);
    if (outcome.requeued) return;
    if (outcome.error) {
      entry.reject(outcome.error);
      return;
    }
    this._track(entry);
    entry.resolve(outcome.data);
  }

  _send(entry) {
    return new Promise((done) => {
      entry.attempt += 1;
      const attempt = entry.attempt;
      entry.finish = (outcome) => {
        if (entry.attempt !== attempt || entry.finish === null) return;
        entry.finish = null;
        clearTimeout(entry.timer);
        this._inflight.delete(entry.seq);
        done(outcome);
      };
      entry.timer = setTimeout(() => {
        if (entry.finish) {
          entry.finish({ error: new RealtimeError("TIMEOUT", `No answer to ${entry.event} within ${entry.timeout} ms.`, null, entry.event) });
        }
      }, entry.timeout);
      this._inflight.set(entry.seq, entry);
      const finish = entry.finish;
      this.socket.emit(entry.event, entry.payload, (response) => {
        if (response && response.ok === true) finish({ data: response.data });
        else finish({ error: errorFrom(response && response.error, entry.event) });
      });
    });
  }

  _track(entry) {
    const payload = entry.payload && typeof entry.payload === "object" ? entry.payload : null;
    if (!payload) return;
    const join = TABLES.rooms[entry.event];
    if (join) {
      this._rooms.set(join.leave + "\u0000" + String(payload[join.key]), { event: entry.event, payload });
      return;
    }
    for (const room of Object.values(TABLES.rooms)) {
      if (room.leave === entry.event) this._rooms.delete(room.leave + "\u0000" + String(payload[room.key]));
    }
  }

  async _flush() {
    if (this._flushing) return;
    this._flushing = true;
    try {
      while (this._ready && this._outbox.length > 0) {
        const entry = this._outbox.shift();
        this._persist();
        await this._dispatch(entry);
      }
    } finally {
      this._flushing = false;
    }
  }

  _persist() {
    if (!this._storage) return;
    const saved = this._outbox.map((entry) => ({ event: entry.event, payload: entry.payload, timeout: entry.timeout }));
    try {
      if (saved.length) this._storage.setItem(this._storageKey, JSON.stringify(saved));
      else this._storage.removeItem(this._storageKey);
    } catch (err) {
      this._storage = null;
    }
  }
}

/** Create a client; it connects at once. See the README's "Typed client" section. */
export function createClient(url, options) {
  return new Client(url, options);
}
