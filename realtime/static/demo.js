/* realtime demo chat: mint a dev token, connect with the vendored socket.io-client, join a room, chat.
 *
 * Every client->server event is sent with an ack callback and answered with one envelope,
 * {ok: true, data} or {ok: false, error: {code, message, fields?}}. Features the server does not
 * implement yet answer UNKNOWN_EVENT: the page then turns that feature off and keeps working.
 * User-supplied text is only ever written with textContent (never innerHTML).
 */
(function () {
  "use strict";

  var ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
  var ACK_TIMEOUT_MS = 8000;
  var TYPING_REPEAT_MS = 2000; // re-announce "typing" at most this often
  var TYPING_IDLE_MS = 3000; // announce "stopped typing" after this long without input
  var TYPING_SHOW_MS = 5000; // show someone's "typing" for at most this long
  var PRESENCE_BATCH = 100;
  var PRESENCE_STATES = ["online", "away", "busy", "offline"];
  var PRESENCE_ORDER = { online: 0, away: 1, busy: 2, unknown: 3, offline: 4 };

  var $ = function (id) { return document.getElementById(id); };
  var el = {
    joinForm: $("join-form"), userId: $("user-id"), displayName: $("display-name"), roomId: $("room-id"),
    join: $("join"), leave: $("leave"), joinError: $("join-error"), banner: $("banner"),
    status: $("status"), unread: $("unread"), unreadCount: $("unread-count"),
    roomTitle: $("room-title"), messages: $("messages"), empty: $("empty"), typing: $("typing"),
    composer: $("composer"), input: $("message-input"), send: $("send"),
    online: $("online"), peopleLink: $("people-link"), peopleCount: $("people-count"), presenceStatus: $("presence-status"), presenceNote: $("presence-note")
  };
  var tokenUrl = document.body.getAttribute("data-token-url") || "/dev/token";

  var state = {
    socket: null,
    userId: null,
    username: null,
    roomId: null,
    joined: false,
    loggedOut: false,
    remintedToken: false,
    messages: new Map(), // message id -> li
    pending: new Map(), // clientId -> {clientId, content, li, adopted}
    names: new Map(), // user id -> display name
    users: new Map(), // user id -> {li, status, lastSeen}
    subscribed: new Set(),
    presenceQueue: new Set(),
    presenceTimer: null,
    myStatus: "online",
    typers: new Map(), // user id -> timeout handle
    typingOut: { active: false, lastSent: 0, idleTimer: null },
    unread: 0,
    features: { clientId: true, presence: true, presenceCheck: true, presenceStatus: true, typing: true }
  };

  // ---------------------------------------------------------------- small helpers

  function randomToken(length, alphabet) {
    var bytes = new Uint8Array(length);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    var out = "";
    for (var i = 0; i < length; i++) out += alphabet[bytes[i] % alphabet.length];
    return out;
  }

  function newClientId() {
    return "c" + Date.now().toString(36) + "-" + randomToken(10, "abcdefghijklmnopqrstuvwxyz0123456789");
  }

  function isId(value) { return typeof value === "string" && ID_RE.test(value); }

  function normalizeError(error) {
    var e = error && typeof error === "object" ? error : {};
    return {
      code: typeof e.code === "string" && e.code ? e.code : "ERROR",
      message: typeof e.message === "string" ? e.message : "",
      fields: e.fields && typeof e.fields === "object" ? e.fields : null
    };
  }

  function describeError(error) {
    var e = normalizeError(error);
    var text = e.code + (e.message ? ": " + e.message : "");
    if (e.fields) {
      var parts = Object.keys(e.fields).map(function (k) {
        var v = e.fields[k];
        return k + " " + (Array.isArray(v) ? v.join(" ") : String(v));
      });
      if (parts.length) text += " (" + parts.join("; ") + ")";
    }
    return text;
  }

  function show(node, text) {
    node.textContent = text || "";
    node.hidden = !text;
  }

  function setStatus(kind, text, transport) {
    el.status.setAttribute("data-state", kind);
    if (transport) el.status.setAttribute("data-transport", transport);
    else el.status.removeAttribute("data-transport");
    el.status.textContent = text;
  }

  function reportBug(where, err) {
    // A bug in this page, not a server answer: make it visible (tests fail on console errors).
    console.error("demo.js: " + where + " failed", err);
  }

  function nameOf(userId) {
    return state.names.get(userId) || userId;
  }

  function learnName(userId, username) {
    if (!isId(userId) || typeof username !== "string" || !username) return;
    if (state.names.get(userId) === username) return;
    state.names.set(userId, username);
    var user = state.users.get(userId);
    if (user) renderUser(userId);
  }

  function parseTime(value) {
    var t = typeof value === "string" || typeof value === "number" ? new Date(value) : null;
    return t && !isNaN(t.getTime()) ? t : new Date();
  }

  function formatTime(date) {
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function isNearBottom() {
    var m = el.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  /** Emit with an ack; resolve with an envelope whatever happens (timeout, odd answer, no socket). */
  function request(event, payload) {
    return new Promise(function (resolve) {
      var socket = state.socket;
      if (!socket) {
        resolve({ ok: false, error: { code: "NOT_CONNECTED", message: "Not connected." } });
        return;
      }
      socket.timeout(ACK_TIMEOUT_MS).emit(event, payload, function (err, ack) {
        if (err) {
          resolve({ ok: false, error: { code: "TIMEOUT", message: "No answer to " + event + " in time." } });
        } else if (ack && typeof ack === "object" && typeof ack.ok === "boolean") {
          resolve(ack.ok ? ack : { ok: false, error: normalizeError(ack.error) });
        } else {
          resolve({ ok: false, error: { code: "BAD_ACK", message: "Unexpected answer to " + event + "." } });
        }
      });
    });
  }

  function isUnknownEvent(ack) { return !ack.ok && ack.error && ack.error.code === "UNKNOWN_EVENT"; }

  /** socket.on(), ignoring events of a replaced socket and surfacing bugs in the handler. */
  function listen(socket, event, handler) {
    socket.on(event, function () {
      if (socket !== state.socket) return;
      try {
        handler.apply(null, arguments);
      } catch (err) {
        reportBug("handler for " + event, err);
      }
    });
  }

  // ---------------------------------------------------------------- messages

  function insertByTime(li) {
    var ts = Number(li.getAttribute("data-ts"));
    var list = el.messages;
    var before = null;
    for (var node = list.lastElementChild; node; node = node.previousElementSibling) {
      if (node === li) continue;
      if (Number(node.getAttribute("data-ts")) <= ts) break;
      before = node;
    }
    if (li.parentNode === list && li.nextElementSibling === before) return;
    list.insertBefore(li, before);
  }

  function fillMessage(li, m) {
    var created = parseTime(m.createdAt);
    var sender = m.sender && typeof m.sender === "object" ? m.sender : null;
    var senderName = (sender && typeof sender.username === "string" && sender.username) || nameOf(m.senderId);
    li.className = "message" + (m.senderId === state.userId ? " mine" : "");
    li.setAttribute("data-id", m.id);
    li.setAttribute("data-sender-id", String(m.senderId || ""));
    li.setAttribute("data-ts", String(created.getTime()));
    li.removeAttribute("data-client-id");
    li.textContent = "";

    var meta = document.createElement("div");
    meta.className = "meta";
    var who = document.createElement("span");
    who.className = "sender";
    who.textContent = senderName;
    var when = document.createElement("time");
    when.className = "time";
    when.setAttribute("datetime", created.toISOString());
    when.title = created.toLocaleString();
    when.textContent = formatTime(created);
    meta.appendChild(who);
    meta.appendChild(document.createTextNode(" "));
    meta.appendChild(when);

    var text = document.createElement("p");
    text.className = "text";
    text.textContent = typeof m.content === "string" ? m.content : "";

    li.appendChild(meta);
    if (text.textContent) li.appendChild(text);

    if (typeof m.mediaUrl === "string" && /^(https?:\/\/|\/)/i.test(m.mediaUrl)) {
      // A link, never an embed: the page loads nothing from other origins by itself.
      var media = document.createElement("a");
      media.className = "media";
      media.href = m.mediaUrl;
      media.rel = "noopener noreferrer";
      media.target = "_blank";
      var kind = typeof m.type === "string" ? m.type.toLowerCase() : "";
      media.textContent = (kind && kind !== "text" ? kind : "attachment") + " ↗";
      li.appendChild(media);
    }
  }

  function findPendingFor(m) {
    if (m.senderId !== state.userId) return null;
    if (typeof m.clientId === "string" && state.pending.has(m.clientId)) return state.pending.get(m.clientId);
    if (typeof m.clientId === "string" && state.features.clientId) return null; // someone else's send (other tab)
    // Server does not echo clientId: adopt the oldest unsent-yet-unconfirmed message with the same text.
    var found = null;
    state.pending.forEach(function (p) {
      if (!found && !p.adopted && !p.failed && p.content === m.content) found = p;
    });
    return found;
  }

  /** Render one message once (dedupe by id); history and live messages go through here. */
  function renderMessage(m, live) {
    if (!m || typeof m !== "object" || typeof m.id !== "string" || !m.id) return;
    if (m.roomId && m.roomId !== state.roomId) return;
    if (m.sender && typeof m.sender === "object") learnName(m.senderId, m.sender.username);
    if (isId(m.senderId)) {
      addUser(m.senderId);
      if (live) {
        clearTyper(m.senderId);
        if (!state.features.presence && m.senderId !== state.userId) setPresence(m.senderId, "online");
      }
    }
    var existing = state.messages.get(m.id);
    if (existing) {
      if (existing.getAttribute("data-local") === "1") {
        // Rendered from our own ack before the broadcast arrived: take the server's fields.
        existing.removeAttribute("data-local");
        fillMessage(existing, m);
        insertByTime(existing);
      }
      return;
    }
    var stick = isNearBottom();
    var pending = findPendingFor(m);
    var li;
    if (pending) {
      pending.adopted = true;
      pending.messageId = m.id;
      state.pending.delete(pending.clientId);
      li = pending.li;
    } else {
      li = document.createElement("li");
    }
    fillMessage(li, m);
    state.messages.set(m.id, li);
    insertByTime(li);
    updateEmpty();
    if (stick || pending) el.messages.scrollTop = el.messages.scrollHeight;
  }

  function renderHistory(messages) {
    if (!Array.isArray(messages)) return;
    // Newest first on the wire; oldest first on screen (insertByTime sorts anyway).
    for (var i = messages.length - 1; i >= 0; i--) renderMessage(messages[i], false);
    el.messages.scrollTop = el.messages.scrollHeight;
  }

  function addNotice(text, timestamp) {
    var li = document.createElement("li");
    li.className = "notice";
    li.setAttribute("data-kind", "notice");
    li.setAttribute("data-ts", String(parseTime(timestamp).getTime()));
    li.textContent = text;
    var stick = isNearBottom();
    insertByTime(li);
    updateEmpty();
    if (stick) el.messages.scrollTop = el.messages.scrollHeight;
  }

  function updateEmpty() {
    var hasItems = el.messages.children.length > 0;
    el.empty.hidden = hasItems;
    if (!hasItems) el.empty.textContent = state.joined ? "No messages yet. Say hello!" : "Join a room to see its messages.";
  }

  // ---------------------------------------------------------------- sending

  function pendingItem(p) {
    var li = document.createElement("li");
    li.className = "message mine pending";
    li.setAttribute("data-client-id", p.clientId);
    li.setAttribute("data-ts", String(Date.now()));
    var meta = document.createElement("div");
    meta.className = "meta";
    var who = document.createElement("span");
    who.className = "sender";
    who.textContent = nameOf(state.userId);
    var note = document.createElement("span");
    note.className = "time";
    note.textContent = "sending…";
    meta.appendChild(who);
    meta.appendChild(document.createTextNode(" "));
    meta.appendChild(note);
    var text = document.createElement("p");
    text.className = "text";
    text.textContent = p.content;
    li.appendChild(meta);
    li.appendChild(text);
    return li;
  }

  function markFailed(p, error) {
    p.failed = true;
    state.pending.delete(p.clientId);
    var li = p.li;
    li.classList.remove("pending");
    li.classList.add("failed");
    var meta = li.querySelector(".time");
    if (meta) meta.textContent = "not sent";
    var err = document.createElement("p");
    err.className = "send-error";
    err.setAttribute("role", "alert");
    err.setAttribute("data-error-code", normalizeError(error).code);
    err.textContent = describeError(error);
    li.appendChild(err);
  }

  function rejectsClientId(ack) {
    var e = ack.error;
    return !ack.ok && e && e.code === "VALIDATION_ERROR" && e.fields &&
      Object.prototype.hasOwnProperty.call(e.fields, "clientId");
  }

  async function sendPending(p, roomId) {
    var payload = { roomId: roomId, content: p.content };
    if (state.features.clientId) payload.clientId = p.clientId;
    var ack = await request("chat:message", payload);
    if (payload.clientId && rejectsClientId(ack)) {
      // Older server: it refuses unknown keys. Send without clientId from now on.
      state.features.clientId = false;
      ack = await request("chat:message", { roomId: roomId, content: p.content });
    }
    if (roomId !== state.roomId) return;
    if (!ack.ok) {
      markFailed(p, ack.error);
      return;
    }
    var id = ack.data && typeof ack.data.id === "string" ? ack.data.id : null;
    if (p.adopted) return; // the broadcast already turned it into a message
    state.pending.delete(p.clientId);
    if (!id) {
      p.li.classList.remove("pending");
      return;
    }
    if (state.messages.has(id)) {
      if (p.li.parentNode) p.li.parentNode.removeChild(p.li);
      return;
    }
    // Ack before broadcast: show it now; the broadcast with the same id will refresh it.
    fillMessage(p.li, { id: id, roomId: roomId, senderId: state.userId, content: p.content, createdAt: new Date().toISOString() });
    p.li.setAttribute("data-local", "1");
    state.messages.set(id, p.li);
    insertByTime(p.li);
  }

  function onSend(event) {
    event.preventDefault();
    var content = el.input.value;
    if (!content.trim() || !state.joined) return;
    stopTyping();
    var p = { clientId: newClientId(), content: content, li: null, adopted: false, failed: false };
    p.li = pendingItem(p);
    state.pending.set(p.clientId, p);
    insertByTime(p.li);
    updateEmpty();
    el.messages.scrollTop = el.messages.scrollHeight;
    el.input.value = "";
    el.input.focus();
    sendPending(p, state.roomId).catch(function (err) { reportBug("send", err); });
  }

  // ---------------------------------------------------------------- typing

  function emitTyping(isTyping) {
    var socket = state.socket;
    if (!socket || !socket.connected || !state.joined || !state.features.typing) return;
    request("chat:typing", { roomId: state.roomId, isTyping: isTyping }).then(function (ack) {
      if (isUnknownEvent(ack)) state.features.typing = false;
    });
  }

  function onInput() {
    if (!state.joined || !state.features.typing) return;
    var t = state.typingOut;
    clearTimeout(t.idleTimer);
    if (!el.input.value) {
      stopTyping();
      return;
    }
    var now = Date.now();
    if (!t.active || now - t.lastSent >= TYPING_REPEAT_MS) {
      t.active = true;
      t.lastSent = now;
      emitTyping(true);
    }
    t.idleTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  }

  function stopTyping() {
    var t = state.typingOut;
    clearTimeout(t.idleTimer);
    t.idleTimer = null;
    if (t.active) {
      t.active = false;
      emitTyping(false);
    }
  }

  function clearTyper(userId) {
    if (!state.typers.has(userId)) return;
    clearTimeout(state.typers.get(userId));
    state.typers.delete(userId);
    renderTyping();
  }

  function clearTypers() {
    state.typers.forEach(function (timer) { clearTimeout(timer); });
    state.typers.clear();
    renderTyping();
  }

  function renderTyping() {
    var names = Array.from(state.typers.keys()).map(nameOf);
    var text = "";
    if (names.length === 1) text = names[0] + " is typing…";
    else if (names.length === 2) text = names[0] + " and " + names[1] + " are typing…";
    else if (names.length > 2) text = names[0] + ", " + names[1] + " and " + (names.length - 2) + " more are typing…";
    el.typing.textContent = text;
  }

  function onUserTyping(e) {
    if (!e || typeof e !== "object" || !isId(e.userId)) return;
    if (e.roomId && e.roomId !== state.roomId) return;
    if (e.userId === state.userId) return;
    learnName(e.userId, e.username);
    addUser(e.userId);
    if (e.isTyping) {
      clearTimeout(state.typers.get(e.userId));
      state.typers.set(e.userId, setTimeout(function () { clearTyper(e.userId); }, TYPING_SHOW_MS));
      if (!state.features.presence) setPresence(e.userId, "online");
      renderTyping();
    } else {
      clearTyper(e.userId);
    }
  }

  // ---------------------------------------------------------------- who is online

  function normalizeStatus(status, isOnline) {
    if (PRESENCE_STATES.indexOf(status) >= 0) return status;
    if (isOnline === true) return "online";
    if (isOnline === false) return "offline";
    return "unknown";
  }

  function renderUser(userId) {
    var user = state.users.get(userId);
    if (!user) return;
    var li = user.li;
    li.setAttribute("data-presence", user.status);
    li.textContent = "";
    var dot = document.createElement("span");
    dot.className = "dot";
    dot.setAttribute("aria-hidden", "true");
    var name = document.createElement("span");
    name.className = "name";
    name.textContent = nameOf(userId) + (userId === state.userId ? " (you)" : "");
    var status = document.createElement("span");
    status.className = "presence";
    status.textContent = user.status === "unknown" ? "—" : user.status;
    li.appendChild(dot);
    li.appendChild(name);
    li.appendChild(status);
    var title = nameOf(userId) === userId ? userId : nameOf(userId) + " (" + userId + ")";
    if (user.lastSeen && user.status !== "online") title += ", last seen " + parseTime(user.lastSeen).toLocaleString();
    li.title = title;
  }

  function sortUsers() {
    var entries = Array.from(state.users.entries());
    entries.sort(function (a, b) {
      if (a[0] === state.userId) return -1;
      if (b[0] === state.userId) return 1;
      var d = PRESENCE_ORDER[a[1].status] - PRESENCE_ORDER[b[1].status];
      return d || nameOf(a[0]).localeCompare(nameOf(b[0]));
    });
    entries.forEach(function (entry) { el.online.appendChild(entry[1].li); });
    var here = entries.filter(function (entry) { return entry[1].status !== "offline"; }).length;
    el.peopleCount.textContent = String(here);
    el.peopleLink.hidden = entries.length === 0;
  }

  function addUser(userId, status) {
    if (!isId(userId)) return;
    if (state.users.has(userId)) {
      if (status) setPresence(userId, status);
      return;
    }
    var li = document.createElement("li");
    li.setAttribute("data-user-id", userId);
    state.users.set(userId, { li: li, status: status || "unknown", lastSeen: null });
    renderUser(userId);
    sortUsers();
    queuePresence(userId);
  }

  function setPresence(userId, status, lastSeen) {
    var user = state.users.get(userId);
    if (!user) return;
    user.status = status;
    if (lastSeen !== undefined) user.lastSeen = lastSeen;
    renderUser(userId);
    sortUsers();
  }

  function resetUsers() {
    state.users.clear();
    el.online.textContent = "";
    el.peopleLink.hidden = true;
    state.presenceQueue.clear();
    clearTimeout(state.presenceTimer);
  }

  function queuePresence(userId) {
    if (!state.features.presence || state.subscribed.has(userId)) return;
    state.presenceQueue.add(userId);
    clearTimeout(state.presenceTimer);
    state.presenceTimer = setTimeout(function () {
      flushPresence().catch(function (err) { reportBug("presence", err); });
    }, 150);
  }

  function presenceUnavailable() {
    state.features.presence = false;
    state.presenceQueue.clear();
    show(el.presenceNote, "Presence is not available on this server yet: listing who joined, typed or wrote here.");
    // Fall back to what this page knows: itself, connected.
    if (state.users.has(state.userId)) setPresence(state.userId, state.myStatus);
  }

  async function flushPresence() {
    var socket = state.socket;
    if (!socket || !socket.connected || !state.features.presence) return;
    var ids = Array.from(state.presenceQueue).filter(function (id) { return !state.subscribed.has(id); });
    state.presenceQueue.clear();
    for (var i = 0; i < ids.length; i += PRESENCE_BATCH) {
      var batch = ids.slice(i, i + PRESENCE_BATCH);
      var ack = await request("presence:subscribe", { userIds: batch });
      if (socket !== state.socket) return;
      if (isUnknownEvent(ack)) { presenceUnavailable(); return; }
      if (!ack.ok) {
        show(el.presenceNote, "Presence: " + describeError(ack.error));
        continue;
      }
      batch.forEach(function (id) { state.subscribed.add(id); });
      if (!state.features.presenceCheck) continue;
      var check = await request("presence:check", { userIds: batch });
      if (socket !== state.socket) return;
      if (isUnknownEvent(check)) { state.features.presenceCheck = false; continue; }
      var entries = check.ok && check.data ? (Array.isArray(check.data) ? check.data : check.data.users) : null;
      if (Array.isArray(entries)) {
        entries.forEach(function (p) {
          if (p && isId(p.userId)) setPresence(p.userId, normalizeStatus(p.status, p.isOnline), p.lastSeen || null);
        });
      }
    }
  }

  function onPresenceUpdate(e) {
    if (!e || typeof e !== "object" || !isId(e.userId) || !state.users.has(e.userId)) return;
    setPresence(e.userId, normalizeStatus(e.status), e.lastSeen || null);
  }

  async function onStatusPicked() {
    var status = el.presenceStatus.value;
    var ack = await request("presence:status", { status: status });
    if (isUnknownEvent(ack)) {
      state.features.presenceStatus = false;
      el.presenceStatus.value = "online";
      el.presenceStatus.disabled = true;
      el.presenceStatus.title = "Status changes are not available on this server.";
      return;
    }
    if (!ack.ok) {
      show(el.presenceNote, "Status: " + describeError(ack.error));
      el.presenceStatus.value = state.myStatus;
      return;
    }
    state.myStatus = status;
    setPresence(state.userId, status);
  }

  // ---------------------------------------------------------------- notifications

  function setUnread(count) {
    state.unread = Math.max(0, Math.floor(count) || 0);
    el.unreadCount.textContent = String(state.unread);
    el.unread.hidden = state.unread === 0;
  }

  function onNotification(n) {
    var count = n && typeof n === "object" ? Number(n.unreadCount) : NaN;
    setUnread(Number.isFinite(count) ? count : state.unread + 1);
    var label = n && typeof n === "object" ? (n.title || n.body || n.type) : null;
    if (typeof label === "string" && label) el.unread.title = "Latest: " + label;
  }

  // ---------------------------------------------------------------- connection

  function setComposerEnabled(enabled) {
    el.input.disabled = !enabled;
    el.send.disabled = !enabled;
    el.presenceStatus.disabled = !enabled || !state.features.presenceStatus;
  }

  function prepareRoom(roomId) {
    state.roomId = roomId;
    state.joined = false;
    state.messages.clear();
    state.pending.clear();
    el.messages.textContent = "";
    clearTypers();
    resetUsers();
    el.roomTitle.textContent = "Joining #" + roomId + "…";
    updateEmpty();
  }

  async function joinRoom(roomId) {
    var socket = state.socket;
    var ack = await request("chat:join", { roomId: roomId });
    if (socket !== state.socket || roomId !== state.roomId) return;
    if (!ack.ok) {
      el.roomTitle.textContent = "Could not join #" + roomId;
      show(el.joinError, "Join refused: " + describeError(ack.error));
      document.body.setAttribute("data-phase", "idle");
      setComposerEnabled(false);
      return;
    }
    state.joined = true;
    document.body.setAttribute("data-phase", "joined");
    show(el.joinError, "");
    el.roomTitle.textContent = "#" + roomId;
    setComposerEnabled(true);
    addUser(state.userId, state.myStatus);
    var data = ack.data && typeof ack.data === "object" ? ack.data : {};
    renderHistory(data.messages);
    updateEmpty();
  }

  function onConnect(socket) {
    var engine = socket.io.engine;
    var transport = engine && engine.transport ? engine.transport.name : "unknown";
    state.remintedToken = false;
    state.subscribed.clear(); // subscriptions belong to the previous connection
    state.users.forEach(function (_user, id) { state.presenceQueue.add(id); });
    setStatus("connected", "Connected via " + transport, transport);
    if (engine) {
      engine.once("upgrade", function (t) {
        if (socket === state.socket && socket.connected) setStatus("connected", "Connected via " + t.name, t.name);
      });
    }
    show(el.banner, "");
    if (state.myStatus !== "online" && state.features.presenceStatus) onStatusPicked();
    joinRoom(state.roomId).then(function () {
      return flushPresence();
    }).catch(function (err) { reportBug("join", err); });
  }

  function onDisconnect(socket, reason) {
    state.joined = false;
    setComposerEnabled(false);
    stopTyping();
    clearTypers();
    if (state.loggedOut) return;
    if (reason === "io client disconnect") {
      setStatus("disconnected", "Disconnected (left)");
    } else if (socket.active) {
      setStatus("disconnected", "Disconnected: " + reason + " — reconnecting…");
    } else {
      setStatus("disconnected", "Disconnected: " + reason + ". Press Join to connect again.");
    }
    if (!state.features.presence && state.users.has(state.userId)) setPresence(state.userId, "offline");
  }

  async function onConnectError(socket, err) {
    var data = err && err.data && typeof err.data === "object" ? err.data : null;
    var code = data && data.code ? String(data.code) : null;
    var message = (data && data.message) || (err && err.message) || "connection failed";
    if (socket.active) {
      // Transport problem: socket.io-client retries by itself.
      setStatus("error", code ? "connect_error: " + code + " — " + message + " — retrying…"
        : "Cannot reach the server (" + message + ") — retrying…");
      return;
    }
    // Refused by the server's handshake: no automatic retry.
    setStatus("error", "connect_error: " + (code || "REFUSED") + (message ? " — " + message : ""));
    if (code === "TOKEN_EXPIRED" && !state.remintedToken) {
      state.remintedToken = true;
      var minted = await mintToken(state.userId, state.username);
      if (socket !== state.socket) return;
      if (minted.ok) {
        socket.auth = { token: minted.token };
        setStatus("connecting", "Token renewed, connecting…");
        socket.connect();
      } else {
        show(el.joinError, minted.error);
      }
    }
  }

  function onForceLogout(socket, e) {
    var reason = e && typeof e === "object" && typeof e.reason === "string" && e.reason ? e.reason : "duplicate_login";
    var text = "Logged out: " + reason.replace(/[_-]+/g, " ");
    state.loggedOut = true;
    socket.io.reconnection(false);
    socket.disconnect();
    setComposerEnabled(false);
    setStatus("disconnected", text);
    show(el.banner, text + ". Press Join to connect again.");
    document.body.setAttribute("data-phase", "idle");
    el.roomTitle.textContent = "Logged out of #" + state.roomId;
    if (state.users.has(state.userId)) setPresence(state.userId, "offline");
    el.leave.disabled = true;
  }

  async function mintToken(userId, username) {
    var response;
    try {
      response = await fetch(tokenUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ userId: userId, username: username }),
        credentials: "same-origin"
      });
    } catch (err) {
      return { ok: false, error: "Could not reach the server for a token (" + err.message + ")." };
    }
    var body = null;
    try { body = await response.json(); } catch (err) { body = null; }
    if (response.ok && body && typeof body.token === "string") return { ok: true, token: body.token, userId: body.userId };
    var error = body && body.error ? describeError(body.error) : "HTTP " + response.status;
    return { ok: false, error: "Token refused: " + error };
  }

  function teardown() {
    var socket = state.socket;
    state.socket = null;
    if (socket) {
      socket.io.reconnection(false);
      socket.disconnect();
    }
    state.joined = false;
    stopTyping();
    setComposerEnabled(false);
  }

  function connect(token, roomId) {
    if (typeof window.io !== "function") {
      show(el.joinError, "The socket.io client did not load (vendor/socket.io.min.js).");
      return;
    }
    var socket = window.io({ auth: { token: token }, reconnectionDelayMax: 10000 });
    state.socket = socket;
    state.loggedOut = false;
    state.subscribed.clear();
    prepareRoom(roomId);
    setStatus("connecting", "Connecting…");
    listen(socket, "connect", function () { onConnect(socket); });
    listen(socket, "disconnect", function (reason) { onDisconnect(socket, reason); });
    listen(socket, "connect_error", function (err) {
      onConnectError(socket, err).catch(function (e) { reportBug("connect_error", e); });
    });
    socket.io.on("reconnect_attempt", function (attempt) {
      if (socket === state.socket) setStatus("connecting", "Reconnecting (attempt " + attempt + ")…");
    });
    listen(socket, "chat:new_message", function (m) { renderMessage(m, true); });
    listen(socket, "chat:history", function (h) {
      if (h && typeof h === "object" && (!h.roomId || h.roomId === state.roomId)) renderHistory(h.messages);
    });
    listen(socket, "chat:user_typing", onUserTyping);
    listen(socket, "chat:user_joined", function (e) {
      if (!e || typeof e !== "object" || !isId(e.userId) || (e.roomId && e.roomId !== state.roomId)) return;
      if (e.userId === state.userId) return;
      addUser(e.userId);
      if (!state.features.presence) setPresence(e.userId, "online");
      addNotice(nameOf(e.userId) + " joined", e.timestamp);
    });
    listen(socket, "chat:user_left", function (e) {
      if (!e || typeof e !== "object" || !isId(e.userId) || (e.roomId && e.roomId !== state.roomId)) return;
      if (e.userId === state.userId) return;
      clearTyper(e.userId);
      if (!state.features.presence) setPresence(e.userId, "offline");
      addNotice(nameOf(e.userId) + " left", e.timestamp);
    });
    listen(socket, "presence:update", onPresenceUpdate);
    listen(socket, "notification:unread_count", function (e) {
      if (e && typeof e === "object" && Number.isFinite(Number(e.count))) setUnread(Number(e.count));
    });
    listen(socket, "notification:new", onNotification);
    listen(socket, "force_logout", function (e) { onForceLogout(socket, e); });
    listen(socket, "error", function (e) {
      // Failures of emits sent without an ack (this page always asks for one, so rare).
      addNotice("Server error: " + describeError(e), Date.now());
    });
  }

  async function switchRoom(roomId) {
    if (roomId === state.roomId && state.joined) return;
    var previous = state.joined ? state.roomId : null;
    stopTyping();
    prepareRoom(roomId);
    if (previous && previous !== roomId) await request("chat:leave", { roomId: previous });
    if (state.socket && state.socket.connected) await joinRoom(roomId);
    await flushPresence();
  }

  async function onJoin(event) {
    event.preventDefault();
    show(el.joinError, "");
    var userId = el.userId.value.trim();
    var username = el.displayName.value.trim() || userId;
    var roomId = el.roomId.value.trim();
    if (!isId(userId)) { show(el.joinError, "User id: 1-64 letters, digits, _ or -."); el.userId.focus(); return; }
    if (!isId(roomId)) { show(el.joinError, "Room: 1-64 letters, digits, _ or -."); el.roomId.focus(); return; }
    if (username.length > 40) { show(el.joinError, "Display name: at most 40 characters."); return; }

    if (state.socket && !state.loggedOut && state.userId === userId && state.username === username) {
      await switchRoom(roomId);
      return;
    }
    teardown();
    el.join.disabled = true;
    setStatus("connecting", "Getting a development token…");
    var minted = await mintToken(userId, username);
    el.join.disabled = false;
    if (!minted.ok) {
      setStatus("idle", "Not connected");
      show(el.joinError, minted.error);
      return;
    }
    state.userId = minted.userId || userId;
    state.username = username;
    state.myStatus = "online";
    el.presenceStatus.value = "online";
    state.names.set(state.userId, username);
    show(el.banner, "");
    el.leave.disabled = false;
    connect(minted.token, roomId);
    el.input.focus();
  }

  function onLeave() {
    if (state.socket && state.joined && state.roomId) request("chat:leave", { roomId: state.roomId });
    var socket = state.socket;
    state.socket = null;
    if (socket) {
      socket.io.reconnection(false);
      // Let the leave reach the server before closing.
      setTimeout(function () { socket.disconnect(); }, 100);
    }
    state.joined = false;
    stopTyping();
    clearTypers();
    setComposerEnabled(false);
    setStatus("disconnected", "Disconnected (left)");
    document.body.setAttribute("data-phase", "idle");
    el.roomTitle.textContent = "Left #" + state.roomId;
    if (state.users.has(state.userId)) setPresence(state.userId, "offline");
    el.leave.disabled = true;
  }

  // ---------------------------------------------------------------- start

  function wrap(name, fn) {
    return function (event) {
      try {
        var result = fn(event);
        if (result && typeof result.catch === "function") result.catch(function (err) { reportBug(name, err); });
      } catch (err) {
        reportBug(name, err);
      }
    };
  }

  el.userId.value = "guest_" + randomToken(4, "abcdefghijklmnopqrstuvwxyz0123456789");
  el.joinForm.addEventListener("submit", wrap("join", onJoin));
  el.leave.addEventListener("click", wrap("leave", onLeave));
  el.composer.addEventListener("submit", wrap("send", onSend));
  el.input.addEventListener("input", wrap("typing", onInput));
  el.input.addEventListener("blur", wrap("typing", stopTyping));
  el.presenceStatus.addEventListener("change", wrap("status", onStatusPicked));
  if (typeof window.io !== "function") {
    show(el.banner, "The socket.io client did not load (vendor/socket.io.min.js).");
  }
  updateEmpty();
})();
