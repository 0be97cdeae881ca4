// React bindings of the realtime client: a provider and hooks over one client made with createClient().
// Rooms and presence subscriptions are shared and counted: the first component that needs a room joins it,
// the last one to go leaves it (a release waits one tick, so a component that remounts at once, as under
// StrictMode, neither leaves nor joins again).
import {
  createContext,
  createElement,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useRef,
  useSyncExternalStore,
} from "react";

const RealtimeContext = createContext(null);

const IDLE_ROOM = Object.freeze({ status: "idle", messages: Object.freeze([]), typing: Object.freeze([]), error: null });

const DEFAULTS = { messageLimit: 500, typingTimeout: 8000 };

function byCreatedAt(a, b) {
  if (a.createdAt === b.createdAt) return 0;
  return a.createdAt < b.createdAt ? -1 : 1;
}

function ignore() {}

/** Keys held by mounted components: hold() says whether a key is new; the last release() of a key calls
 * onLast(key) one tick later, unless a new hold() came meanwhile (a remount). */
class Holds {
  constructor(onLast) {
    this.entries = new Map();
    this.onLast = onLast;
  }

  has(key) {
    return this.entries.has(key);
  }

  keys() {
    return [...this.entries.keys()];
  }

  hold(key) {
    const entry = this.entries.get(key);
    if (!entry) {
      this.entries.set(key, { count: 1, timer: null });
      return true;
    }
    clearTimeout(entry.timer);
    entry.timer = null;
    entry.count += 1;
    return false;
  }

  release(key) {
    const entry = this.entries.get(key);
    if (!entry) return;
    entry.count -= 1;
    if (entry.count > 0) return;
    entry.timer = setTimeout(() => {
      if (this.entries.get(key) !== entry || entry.count > 0) return;
      this.entries.delete(key);
      this.onLast(key);
    }, 0);
  }
}

/** The shared state behind the hooks of one client: room entries, presence entries, their listeners. */
class Hub {
  constructor(client) {
    this.client = client;
    this.messageLimit = DEFAULTS.messageLimit;
    this.typingTimeout = DEFAULTS.typingTimeout;
    this.rooms = new Map();
    this.roomHolds = new Holds((roomId) => this._leave(roomId));
    this.roomListeners = new Map();
    this.presence = Object.freeze({});
    this.userHolds = new Holds((userId) => this._unwatchUser(userId));
    this.presenceListeners = new Set();
    this.connectedOnce = false;
    client.on("chat:new_message", (message) => this._onMessage(message));
    client.on("chat:history", (history) => this._merge(history.roomId, history.messages));
    client.on("chat:user_typing", (typing) => this._onTyping(typing));
    client.on("chat:user_left", (left) => this._stopTyping(left.roomId, left.userId));
    // In a busy room, leaves arrive coalesced (chat:members_changed); users past the listed ones time out.
    client.on("chat:members_changed", (change) => change.left.forEach((userId) => this._stopTyping(change.roomId, userId)));
    client.on("presence:update", (update) =>
      this._setPresence([{ userId: update.userId, isOnline: update.status !== "offline", status: update.status,
        lastSeen: update.lastSeen === undefined ? null : update.lastSeen }])
    );
    client.subscribe((state) => this._onState(state));
  }

  // Rooms

  roomSnapshot(roomId) {
    const entry = this.rooms.get(roomId);
    return entry ? entry.state : IDLE_ROOM;
  }

  watchRoom(roomId, listener) {
    let listeners = this.roomListeners.get(roomId);
    if (!listeners) {
      listeners = new Set();
      this.roomListeners.set(roomId, listeners);
    }
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0 && this.roomListeners.get(roomId) === listeners) this.roomListeners.delete(roomId);
    };
  }

  acquireRoom(roomId) {
    if (!this.roomHolds.hold(roomId)) return;
    const entry = { ids: new Set(), typingTimers: new Map(), joined: null, state: IDLE_ROOM };
    this.rooms.set(roomId, entry);
    this._setRoom(roomId, { status: "joining", error: null });
    entry.joined = this.client.request("chat:join", { roomId }).then(
      (ack) => {
        if (this.rooms.get(roomId) !== entry) return true;
        this._merge(roomId, ack.messages);
        this._setRoom(roomId, { status: "joined", error: null });
        return true;
      },
      (error) => {
        if (this.rooms.get(roomId) === entry) this._setRoom(roomId, { status: "failed", error });
        return false;
      }
    );
  }

  releaseRoom(roomId) {
    this.roomHolds.release(roomId);
  }

  _leave(roomId) {
    const entry = this.rooms.get(roomId);
    this.rooms.delete(roomId);
    for (const timer of entry.typingTimers.values()) clearTimeout(timer);
    entry.joined.then((joined) => {
      if (joined && !this.rooms.has(roomId)) this.client.request("chat:leave", { roomId }).catch(ignore);
    });
    this._notifyRoom(roomId);
  }

  _setRoom(roomId, change) {
    const entry = this.rooms.get(roomId);
    if (!entry) return;
    entry.state = Object.freeze({ ...entry.state, ...change });
    this._notifyRoom(roomId);
  }

  _notifyRoom(roomId) {
    for (const listener of [...(this.roomListeners.get(roomId) || [])]) listener();
  }

  _merge(roomId, messages) {
    const entry = this.rooms.get(roomId);
    if (!entry || !Array.isArray(messages)) return;
    const fresh = messages.filter((message) => message && !entry.ids.has(message.id));
    if (fresh.length === 0) return;
    for (const message of fresh) entry.ids.add(message.id);
    let merged = [...entry.state.messages, ...fresh].sort(byCreatedAt);
    if (merged.length > this.messageLimit) {
      for (const dropped of merged.slice(0, merged.length - this.messageLimit)) entry.ids.delete(dropped.id);
      merged = merged.slice(merged.length - this.messageLimit);
    }
    this._setRoom(roomId, { messages: Object.freeze(merged) });
  }

  _onMessage(message) {
    this._stopTyping(message.roomId, message.senderId);
    this._merge(message.roomId, [message]);
  }

  _onTyping(typing) {
    const entry = this.rooms.get(typing.roomId);
    if (!entry) return;
    if (!typing.isTyping) {
      this._stopTyping(typing.roomId, typing.userId);
      return;
    }
    clearTimeout(entry.typingTimers.get(typing.userId));
    entry.typingTimers.set(typing.userId, setTimeout(() => this._stopTyping(typing.roomId, typing.userId), this.typingTimeout));
    const others = entry.state.typing.filter((user) => user.userId !== typing.userId);
    this._setRoom(typing.roomId, { typing: Object.freeze([...others, { userId: typing.userId, username: typing.username }]) });
  }

  _stopTyping(roomId, userId) {
    const entry = this.rooms.get(roomId);
    if (!entry) return;
    clearTimeout(entry.typingTimers.get(userId));
    entry.typingTimers.delete(userId);
    if (!entry.state.typing.some((user) => user.userId === userId)) return;
    this._setRoom(roomId, { typing: Object.freeze(entry.state.typing.filter((user) => user.userId !== userId)) });
  }

  // Presence

  presenceSnapshot() {
    return this.presence;
  }

  watchPresence(listener) {
    this.presenceListeners.add(listener);
    return () => {
      this.presenceListeners.delete(listener);
    };
  }

  acquirePresence(userIds) {
    this._watchUsers(userIds.filter((userId) => this.userHolds.hold(userId)));
  }

  releasePresence(userIds) {
    for (const userId of userIds) this.userHolds.release(userId);
  }

  _unwatchUser(userId) {
    this.client.request("presence:unsubscribe", { userIds: [userId] }).catch(ignore);
    const rest = { ...this.presence };
    delete rest[userId];
    this._replacePresence(rest);
  }

  _watchUsers(userIds) {
    if (userIds.length === 0) return;
    // Subscribe before checking, so that no change falls between the answer and the first update.
    this.client.request("presence:subscribe", { userIds }).catch(ignore);
    this.client.request("presence:check", { userIds }).then((entries) => this._setPresence(entries), ignore);
  }

  _setPresence(entries) {
    const watched = entries.filter((entry) => this.userHolds.has(entry.userId));
    if (watched.length === 0) return;
    const next = { ...this.presence };
    for (const entry of watched) next[entry.userId] = Object.freeze({ ...entry });
    this._replacePresence(next);
  }

  _replacePresence(next) {
    this.presence = Object.freeze(next);
    for (const listener of [...this.presenceListeners]) listener();
  }

  _onState(state) {
    if (state.status !== "connected") return;
    // The client joins its rooms again by itself; presence subscriptions of a fresh session are renewed here.
    if (this.connectedOnce && !state.recovered) this._watchUsers(this.userHolds.keys());
    this.connectedOnce = true;
  }
}

/** One hub per client, however often providers of it render: its listeners are added once. */
const HUBS = new WeakMap();

function hubFor(client) {
  let hub = HUBS.get(client);
  if (!hub) {
    hub = new Hub(client);
    HUBS.set(client, hub);
  }
  return hub;
}

/** Make `client` (from createClient) available to the hooks below it. */
export function RealtimeProvider({ client, children, messageLimit, typingTimeout }) {
  if (!client || typeof client.request !== "function" || typeof client.subscribe !== "function") {
    throw new TypeError("RealtimeProvider needs client={createClient(url, options)}; got " + String(client) + ".");
  }
  const hub = hubFor(client);
  hub.messageLimit = messageLimit === undefined ? DEFAULTS.messageLimit : messageLimit;
  hub.typingTimeout = typingTimeout === undefined ? DEFAULTS.typingTimeout : typingTimeout;
  return createElement(RealtimeContext.Provider, { value: hub }, children);
}

function useHub() {
  const hub = useContext(RealtimeContext);
  if (hub === null) {
    throw new Error("The realtime hooks need a <RealtimeProvider client={...}> above the component that uses them.");
  }
  return hub;
}

/** The client given to the nearest RealtimeProvider. */
export function useRealtimeClient() {
  return useHub().client;
}

/** The connection state; the component renders again on every change. */
export function useConnectionState() {
  const client = useRealtimeClient();
  const subscribe = useCallback((listener) => client.subscribe(listener), [client]);
  return useSyncExternalStore(subscribe, () => client.state);
}

/** Call handler(payload) for every `event` from the server while the component is mounted. */
export function useEvent(event, handler) {
  const client = useRealtimeClient();
  const latest = useRef(handler);
  useEffect(() => {
    latest.current = handler;
  });
  useEffect(() => {
    const listener = (payload) => latest.current(payload);
    client.on(event, listener);
    return () => {
      client.off(event, listener);
    };
  }, [client, event]);
}

/** A chat room joined while the component is mounted: its status, messages (oldest first), who is typing. */
export function useRoom(roomId) {
  const hub = useHub();
  useEffect(() => {
    hub.acquireRoom(roomId);
    return () => hub.releaseRoom(roomId);
  }, [hub, roomId]);
  const subscribe = useCallback((listener) => hub.watchRoom(roomId, listener), [hub, roomId]);
  const state = useSyncExternalStore(subscribe, () => hub.roomSnapshot(roomId));
  const send = useCallback(
    (message) => {
      const body = typeof message === "string" ? { content: message } : message;
      return hub.client.request("chat:message", { ...body, roomId });
    },
    [hub, roomId]
  );
  const setTyping = useCallback((isTyping) => hub.client.request("chat:typing", { roomId, isTyping }), [hub, roomId]);
  return useMemo(() => ({ ...state, send, setTyping }), [state, send, setTyping]);
}

/** The presence of `userIds` (subscribed while the component is mounted), by user id; undefined until known. */
export function usePresence(userIds) {
  const hub = useHub();
  const key = [...new Set(userIds)].sort().join("\u0000");
  useEffect(() => {
    const ids = key === "" ? [] : key.split("\u0000");
    hub.acquirePresence(ids);
    return () => hub.releasePresence(ids);
  }, [hub, key]);
  const subscribe = useCallback((listener) => hub.watchPresence(listener), [hub]);
  const all = useSyncExternalStore(subscribe, () => hub.presenceSnapshot());
  return useMemo(() => {
    const picked = {};
    for (const userId of key === "" ? [] : key.split("\u0000")) picked[userId] = all[userId];
    return Object.freeze(picked);
  }, [all, key]);
}
