/* realtime event catalogue (GET /ws-docs): search, deep links, copy buttons and the try-it console.
 *
 * The catalogue itself is rendered by templates/ws_docs.html and reads without JavaScript; this file only
 * adds behaviour. Everything that comes from the server or the user is written with textContent, never
 * innerHTML. No inline handlers: the page works under a strict CSP (script-src 'self').
 */
(function () {
  "use strict";

  var ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
  var MAX_LOG = 500;
  var STORE = "ws-docs:";

  var $ = function (id) { return document.getElementById(id); };
  var body = document.body;
  var data = JSON.parse($("ws-docs-data").textContent || "{}");
  var ACK_TIMEOUT_MS = data.ackTimeoutMs || 10000;
  var WIDE = window.matchMedia("(min-width: 1200px)");
  var NARROW = window.matchMedia("(max-width: 899.98px)");
  var COARSE = window.matchMedia("(pointer: coarse)");

  // ---------------------------------------------------------------- small helpers

  function pretty(value) { return JSON.stringify(value, null, 2); }

  /** One-line JSON with a space after ":" and ",": dense but readable in the log. */
  function compact(value) {
    if (Array.isArray(value)) return "[" + value.map(compact).join(", ") + "]";
    if (value && typeof value === "object") {
      return "{" + Object.keys(value).map(function (k) { return JSON.stringify(k) + ": " + compact(value[k]); }).join(", ") + "}";
    }
    var text = JSON.stringify(value);
    return text === undefined ? "null" : text;
  }

  function storage(kind) {
    try { return kind === "local" ? window.localStorage : window.sessionStorage; } catch (e) { return null; }
  }
  function remember(kind, key, value) {
    var s = storage(kind);
    if (!s) return;
    try { if (value) s.setItem(STORE + key, value); else s.removeItem(STORE + key); } catch (e) { /* quota, privacy mode */ }
  }
  function recall(kind, key) {
    var s = storage(kind);
    try { return s ? s.getItem(STORE + key) : null; } catch (e) { return null; }
  }

  function randomId(length) {
    var alphabet = "abcdefghijkmnpqrstuvwxyz23456789";
    var bytes = new Uint8Array(length);
    window.crypto.getRandomValues(bytes);
    var out = "";
    for (var i = 0; i < length; i++) out += alphabet[bytes[i] % alphabet.length];
    return out;
  }

  function clock(date) {
    var d = date || new Date();
    var p = function (n, w) { return String(n).padStart(w || 2, "0"); };
    return p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds()) + "." + p(d.getMilliseconds(), 3);
  }

  function duration(seconds) {
    var s = Math.abs(Math.round(seconds));
    if (s < 90) return s + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    if (s < 172800) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " days";
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  var toastTimer = null;
  function toast(message) {
    var node = $("toast");
    node.textContent = message;
    node.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { node.hidden = true; }, 1800);
  }

  function copyText(text) {
    function fallback() {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      area.remove();
      return ok;
    }
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).then(function () { return true; }, function () { return fallback(); });
    }
    return Promise.resolve(fallback());
  }

  function flashButton(button, ok, doneText) {
    var label = button.querySelector(".btn-copy-label") || button.querySelector("span") || button;
    if (!button.dataset.label) button.dataset.label = label.textContent;
    label.textContent = ok ? doneText || "Copied" : "Copy failed";
    button.classList.toggle("is-done", ok);
    button.classList.toggle("is-failed", !ok);
    clearTimeout(button._flash);
    button._flash = setTimeout(function () {
      label.textContent = button.dataset.label;
      button.classList.remove("is-done", "is-failed");
    }, 1600);
  }

  // ---------------------------------------------------------------- the cards

  var cards = Array.prototype.map.call(document.querySelectorAll(".event-card"), function (card) {
    var desc = card.querySelector(".event-desc");
    var audience = card.querySelector(".audience");
    return {
      card: card,
      anchor: card.id,
      name: card.dataset.event,
      direction: card.dataset.direction,
      category: card.dataset.category,
      nameEl: card.querySelector(".event-name code"),
      haystack: (card.dataset.event + "\n" + (desc ? desc.textContent : "") + "\n" +
        (audience ? audience.textContent : "")).toLowerCase(),
      // Field paths and error codes: a match also highlights the row.
      rows: Array.prototype.map.call(card.querySelectorAll(".field-row, .error-row"), function (row) {
        return { row: row, path: (row.dataset.path || row.dataset.code || "").toLowerCase() };
      }),
      nav: document.querySelector('.nav-event[data-anchor="' + CSS.escape(card.id) + '"]'),
    };
  });
  var cardByAnchor = new Map(cards.map(function (c) { return [c.anchor, c]; }));
  var TOTAL = cards.length;

  /** Field paths of one schema table, in the order the schema declares them. */
  function fieldOrder(container) {
    var order = new Map();
    if (!container) return order;
    container.querySelectorAll(".field-row").forEach(function (row, index) { order.set(row.dataset.path, index); });
    return order;
  }

  /** ``value`` with object keys in schema order (the server's JSON sorts them alphabetically). */
  function reorder(value, prefix, order) {
    if (Array.isArray(value)) return value.map(function (v) { return reorder(v, prefix + "[].", order); });
    if (!value || typeof value !== "object") return value;
    var rank = function (key) { var r = order.get(prefix + key); return r === undefined ? Infinity : r; };
    var out = {};
    Object.keys(value)
      .map(function (key, i) { return { key: key, i: i }; })
      .sort(function (a, b) { return rank(a.key) - rank(b.key) || a.i - b.i; })
      .forEach(function (k) { out[k.key] = reorder(value[k.key], prefix + k.key + ".", order); });
    return out;
  }

  function payloadOrder(anchor) {
    var c = cardByAnchor.get(anchor);
    return fieldOrder(c ? c.card.querySelector('[data-role="payload"]') : null);
  }

  // Examples: keys in schema order.
  cards.forEach(function (c) {
    var order = payloadOrder(c.anchor);
    c.card.querySelectorAll("pre.json code").forEach(function (code) {
      try { code.textContent = pretty(reorder(JSON.parse(code.textContent), "", order)); } catch (e) { /* keep as is */ }
    });
  });

  // Event names in descriptions become links to their cards.
  (function linkify() {
    var names = new Map(); // name -> {client, server}
    cards.forEach(function (c) {
      if (!/[:_]/.test(c.name)) return; // plain words ("error") stay text
      var entry = names.get(c.name) || {};
      entry[c.direction === "client_to_server" ? "client" : "server"] = c.anchor;
      names.set(c.name, entry);
    });
    var escaped = Array.from(names.keys())
      .sort(function (a, b) { return b.length - a.length; })
      .map(function (n) { return n.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); });
    if (!escaped.length) return;
    var re = new RegExp("(^|[^\\w:{])(" + escaped.join("|") + ")(?![\\w:])", "g");
    cards.forEach(function (c) {
      var desc = c.card.querySelector(".event-desc");
      if (!desc || desc.children.length) return;
      var text = desc.textContent;
      var fragment = document.createDocumentFragment();
      var last = 0;
      var found = false;
      var match;
      re.lastIndex = 0;
      while ((match = re.exec(text))) {
        var name = match[2];
        var entry = names.get(name);
        var isClient = c.direction === "client_to_server";
        var target = isClient ? entry.server || entry.client : entry.client || entry.server;
        if (name === c.name) target = isClient ? entry.server : entry.client;
        if (!target || target === c.anchor) continue;
        var start = match.index + match[1].length;
        fragment.append(text.slice(last, start));
        var link = el("a", "event-link");
        link.href = "#" + target;
        link.append(el("code", null, name));
        fragment.append(link);
        last = start + name.length;
        found = true;
      }
      if (!found) return;
      fragment.append(text.slice(last));
      desc.textContent = "";
      desc.append(fragment);
    });
  })();

  // ---------------------------------------------------------------- search and filters

  var search = $("search");
  var visibleCount = $("visible-count");
  var noMatch = $("no-match");
  var categorySections = Array.prototype.slice.call(document.querySelectorAll(".category"));
  var navCategories = Array.prototype.slice.call(document.querySelectorAll(".nav-category"));
  var directionInputs = Array.prototype.slice.call(document.querySelectorAll('input[name="direction"]'));

  function currentDirection() {
    var checked = directionInputs.filter(function (i) { return i.checked; })[0];
    return checked ? checked.value : "all";
  }

  function highlightName(c, terms) {
    var text = c.name;
    c.nameEl.textContent = "";
    var lower = text.toLowerCase();
    var marks = [];
    terms.forEach(function (t) {
      var at = lower.indexOf(t);
      while (at !== -1 && t) { marks.push([at, at + t.length]); at = lower.indexOf(t, at + t.length); }
    });
    if (!marks.length) { c.nameEl.textContent = text; return; }
    marks.sort(function (a, b) { return a[0] - b[0]; });
    var pos = 0;
    marks.forEach(function (m) {
      if (m[0] < pos) m[0] = pos;
      if (m[1] <= m[0]) return;
      c.nameEl.append(text.slice(pos, m[0]));
      c.nameEl.append(el("mark", "hit", text.slice(m[0], m[1])));
      pos = m[1];
    });
    c.nameEl.append(text.slice(pos));
  }

  function applyFilter() {
    var query = search.value.trim();
    var terms = query.toLowerCase().split(/\s+/).filter(Boolean);
    var direction = currentDirection();
    var filtering = terms.length > 0 || direction !== "all";
    var visible = 0;
    var perCategory = new Map();

    cards.forEach(function (c) {
      var dirOk = direction === "all" ||
        (direction === "client_to_server" ? c.direction === "client_to_server" : c.direction !== "client_to_server");
      var matchedRows = [];
      var termsOk = terms.every(function (t) {
        var rows = c.rows.filter(function (r) { return r.path.indexOf(t) !== -1; });
        matchedRows = matchedRows.concat(rows);
        return c.haystack.indexOf(t) !== -1 || rows.length > 0;
      });
      var show = dirOk && termsOk;
      c.card.hidden = !show;
      if (c.nav) c.nav.hidden = !show;
      c.rows.forEach(function (r) { r.row.classList.toggle("is-match", show && matchedRows.indexOf(r) !== -1); });
      highlightName(c, show ? terms : []);
      if (show) {
        visible += 1;
        perCategory.set(c.category, (perCategory.get(c.category) || 0) + 1);
      }
    });

    categorySections.forEach(function (section) {
      section.hidden = !perCategory.get(section.dataset.category);
      section.querySelectorAll(".direction-group").forEach(function (group) {
        group.hidden = !group.querySelector(".event-card:not([hidden])");
      });
    });
    navCategories.forEach(function (item) {
      var n = perCategory.get(item.dataset.category) || 0;
      var count = item.querySelector(".count");
      item.hidden = n === 0;
      count.textContent = filtering ? n + "/" + count.dataset.total : count.dataset.total;
    });

    visibleCount.dataset.count = String(visible);
    visibleCount.dataset.filtered = filtering ? "true" : "false";
    visibleCount.textContent = filtering ? visible + " of " + TOTAL + " events" : TOTAL + " events";
    noMatch.hidden = visible !== 0;
    if (visible === 0) {
      var what = query ? "“" + query + "”" : "this filter";
      if (query && direction !== "all") what += " (" + (direction === "server" ? "listen" : "emit") + " only)";
      $("no-match-query").textContent = what;
    }
    syncUrl(query, direction);
  }

  var urlTimer = null;
  function syncUrl(query, direction) {
    clearTimeout(urlTimer);
    urlTimer = setTimeout(function () {
      var url = new URL(window.location.href);
      if (query) url.searchParams.set("q", query); else url.searchParams.delete("q");
      if (direction !== "all") url.searchParams.set("dir", direction); else url.searchParams.delete("dir");
      if (url.href !== window.location.href) {
        try { history.replaceState(history.state, "", url.href); } catch (e) { /* file:// in some browsers */ }
      }
    }, 250);
  }

  function clearFilters() {
    search.value = "";
    directionInputs.forEach(function (i) { i.checked = i.value === "all"; });
    applyFilter();
  }

  search.addEventListener("input", applyFilter);
  search.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && search.value) { event.preventDefault(); clearFilters(); }
    if (event.key === "Enter") {
      event.preventDefault();
      var first = cards.filter(function (c) { return !c.card.hidden; })[0];
      if (first) goTo(first.anchor);
    }
  });
  directionInputs.forEach(function (i) { i.addEventListener("change", applyFilter); });
  $("search-clear").addEventListener("click", function () { clearFilters(); search.focus(); });

  document.addEventListener("keydown", function (event) {
    var t = event.target;
    var typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
    if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      if (NARROW.matches) setNav(false);
      search.focus();
      search.select();
    } else if (event.key === "Escape") {
      if (body.classList.contains("console-open")) setConsole(false);
      if (body.classList.contains("nav-open")) setNav(false);
    }
  });

  // ---------------------------------------------------------------- deep links

  function hashId() {
    var raw = window.location.hash.slice(1);
    if (!raw) return "";
    try { return decodeURIComponent(raw); } catch (e) { return raw; }
  }

  function markCurrentNav(anchor) {
    document.querySelectorAll(".nav-event.is-current").forEach(function (n) { n.classList.remove("is-current"); });
    var c = cardByAnchor.get(anchor);
    if (!c || !c.nav) return;
    c.nav.classList.add("is-current");
    var nav = $("nav");
    var item = c.nav.getBoundingClientRect();
    var box = nav.getBoundingClientRect();
    if (item.top < box.top || item.bottom > box.bottom) {
      nav.scrollTop += item.top - box.top - box.height / 3;
    }
  }

  function focusTarget() {
    var id = hashId();
    if (!id) return;
    var target = document.getElementById(id);
    if (!target) return;
    var c = cardByAnchor.get(id);
    if ((c && c.card.hidden) || (target.classList.contains("category") && target.hidden)) clearFilters();
    if (NARROW.matches) setNav(false);
    document.querySelectorAll(".event-card.is-target").forEach(function (n) {
      if (n !== target) n.classList.remove("is-target");
    });
    if (c) {
      target.classList.remove("is-target");
      void target.offsetWidth; // restart the highlight animation
      target.classList.add("is-target");
      markCurrentNav(id);
    }
    target.scrollIntoView({ block: "start" });
    if (c) target.focus({ preventScroll: true });
  }

  function goTo(anchor) {
    if (hashId() === anchor) focusTarget();
    else window.location.hash = encodeURIComponent(anchor).replace(/%3A/gi, ":").replace(/%7E/gi, "~");
  }

  window.addEventListener("hashchange", focusTarget);
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest('a[href^="#"]');
    if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    var id = link.getAttribute("href").slice(1);
    try { id = decodeURIComponent(id); } catch (e) { /* keep the raw fragment */ }
    if (link.classList.contains("anchor-link")) {
      var url = window.location.href.split("#")[0] + "#" + id;
      copyText(url).then(function (ok) { toast(ok ? "Link copied: #" + id : "Link: #" + id); });
    }
    if (!WIDE.matches && link.closest("#console")) setConsole(false); // the drawer would cover the card
    if (id && id === hashId()) { event.preventDefault(); focusTarget(); }
    else if (NARROW.matches) setNav(false);
  });

  // The nav follows the reading position: the current card is the last one whose top passed under the bars.
  var spyQueued = false;
  function spy() {
    spyQueued = false;
    var line = document.querySelector(".topbar").offsetHeight + (NARROW.matches ? 120 : 90);
    var current = null;
    for (var i = 0; i < cards.length; i++) {
      if (cards[i].card.hidden) continue;
      if (cards[i].card.getBoundingClientRect().top <= line) current = cards[i];
      else if (current) break;
    }
    var marked = document.querySelector(".nav-event.is-current");
    if (current && (!marked || marked !== current.nav)) markCurrentNav(current.anchor);
    if (!current && marked) marked.classList.remove("is-current");
  }
  window.addEventListener("scroll", function () {
    if (!spyQueued) { spyQueued = true; window.requestAnimationFrame(spy); }
  }, { passive: true });

  // ---------------------------------------------------------------- copy buttons

  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = $(button.dataset.copy);
      copyText(source ? source.textContent : "").then(function (ok) {
        flashButton(button, ok);
        if (ok) toast("Example copied to the clipboard");
      });
    });
  });

  // ---------------------------------------------------------------- panels (nav on phones, console drawer)

  var navToggle = $("nav-toggle");
  var consoleToggle = $("console-toggle");

  function setNav(open) {
    body.classList.toggle("nav-open", open);
    navToggle.setAttribute("aria-expanded", open ? "true" : "false");
  }
  navToggle.addEventListener("click", function () { setNav(!body.classList.contains("nav-open")); });

  function consoleShown() {
    return WIDE.matches ? body.classList.contains("console-docked") : body.classList.contains("console-open");
  }
  function syncConsoleToggle() { consoleToggle.setAttribute("aria-expanded", consoleShown() ? "true" : "false"); }
  function setConsole(show) {
    if (WIDE.matches) {
      body.classList.toggle("console-docked", show);
      remember("local", "console-docked", show ? "1" : "0");
    } else {
      body.classList.toggle("console-open", show);
      if (show) setNav(false);
    }
    syncConsoleToggle();
  }
  if (recall("local", "console-docked") === "0") body.classList.remove("console-docked");
  consoleToggle.addEventListener("click", function () { setConsole(!consoleShown()); });
  $("console-close").addEventListener("click", function () { setConsole(false); consoleToggle.focus(); });
  var onMedia = function () {
    if (WIDE.matches) body.classList.remove("console-open");
    if (!NARROW.matches) setNav(false);
    syncConsoleToggle();
  };
  if (WIDE.addEventListener) { WIDE.addEventListener("change", onMedia); NARROW.addEventListener("change", onMedia); }
  syncConsoleToggle();

  // ---------------------------------------------------------------- the try-it console

  var ui = {
    form: $("try-connect-form"), server: $("try-server"), token: $("try-token"), tokenInfo: $("try-token-info"),
    userId: $("try-user-id"), mint: $("try-mint"), mintError: $("try-mint-error"), transport: $("try-transport"),
    connect: $("try-connect"), connection: $("try-connection"), status: $("try-status"), dot: $("console-dot"),
    emitForm: $("try-emit-form"), event: $("try-event"), customField: $("try-custom-field"), custom: $("try-custom-event"),
    eventInfo: $("try-event-info"), payload: $("try-payload"), payloadError: $("try-payload-error"),
    example: $("try-example"), format: $("try-format"), ack: $("try-ack"), emit: $("try-emit"), emitHint: $("try-emit-hint"),
    log: $("try-log"), logCount: $("try-log-count"), logEmpty: $("try-log-empty"), clear: $("try-clear"),
  };
  var clientEvents = new Map((data.clientEvents || []).map(function (e) {
    var order = payloadOrder(e.anchor);
    e.examples = (e.examples || []).map(function (x) { return reorder(x, "", order); });
    return [e.name, e];
  }));
  var serverAnchors = data.serverAnchors || {};
  var state = { socket: null, current: null, drafts: new Map(), exampleIndex: new Map(), logCount: 0, user: null };

  // Token and identity --------------------------------------------------

  function decodeJwt(token) {
    var parts = token.split(".");
    if (parts.length !== 3) return null;
    try {
      var b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
      b64 += "===".slice((b64.length + 3) % 4);
      var bytes = Uint8Array.from(window.atob(b64), function (ch) { return ch.charCodeAt(0); });
      var claims = JSON.parse(new TextDecoder().decode(bytes));
      return claims && typeof claims === "object" ? claims : null;
    } catch (e) {
      return null;
    }
  }

  function updateTokenInfo() {
    var token = ui.token.value.trim();
    var info = ui.tokenInfo;
    info.classList.remove("is-bad");
    state.user = null;
    remember("session", "token", token);
    if (!token) {
      info.replaceChildren.apply(info, Array.prototype.slice.call(tokenHint.cloneNode(true).childNodes));
      return;
    }
    var claims = decodeJwt(token);
    if (!claims) {
      info.textContent = "Not a JWT (expected three base64url parts): the server will answer INVALID_TOKEN.";
      info.classList.add("is-bad");
      return;
    }
    state.user = typeof claims.sub === "string" ? claims.sub : null;
    var parts = ["user " + (claims.sub || "?")];
    if (claims.sid) parts.push("session " + String(claims.sid).slice(0, 10) + (String(claims.sid).length > 10 ? "…" : ""));
    if (typeof claims.exp === "number") {
      var left = claims.exp - Date.now() / 1000;
      if (left <= 0) { parts.push("expired " + duration(left) + " ago"); info.classList.add("is-bad"); }
      else parts.push("expires in " + duration(left));
    }
    info.textContent = parts.join(" · ");
  }
  var tokenHint = ui.tokenInfo.cloneNode(true); // the server's hint, shown while the field is empty
  ui.token.addEventListener("input", updateTokenInfo);
  ui.token.value = recall("session", "token") || "";
  updateTokenInfo();

  if (ui.server) {
    ui.server.value = recall("local", "server") || ui.server.value;
    ui.server.addEventListener("change", function () { remember("local", "server", ui.server.value.trim()); });
  }

  function showMintError(message) {
    if (!ui.mintError) return;
    ui.mintError.textContent = message || "";
    ui.mintError.hidden = !message;
    if (ui.userId) ui.userId.setAttribute("aria-invalid", message ? "true" : "false");
  }

  if (ui.mint && ui.userId) {
    ui.userId.value = recall("session", "user-id") || "qa_" + randomId(4);
    ui.userId.addEventListener("input", function () { showMintError(""); remember("session", "user-id", ui.userId.value.trim()); });
    ui.userId.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { event.preventDefault(); mint(); }
    });
    ui.mint.addEventListener("click", mint);
  }

  function mint() {
    var userId = ui.userId.value.trim();
    if (!ID_RE.test(userId)) {
      showMintError("User id: 1–64 characters of A–Z a–z 0–9 _ -");
      ui.userId.focus();
      return;
    }
    showMintError("");
    ui.mint.disabled = true;
    fetch(data.mintUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ userId: userId }),
      credentials: "same-origin",
    })
      .then(function (response) {
        return response.json().catch(function () { return null; }).then(function (answer) {
          if (!response.ok || !answer || !answer.token) {
            var error = answer && answer.error;
            throw new Error(error ? error.code + ": " + error.message : "HTTP " + response.status);
          }
          return answer;
        });
      })
      .then(function (answer) {
        ui.token.value = answer.token;
        updateTokenInfo();
        flashButton(ui.mint, true, "Minted");
        log("system", null, undefined, {
          text: "minted a dev token for " + answer.userId + " (expires in " + duration(answer.expiresIn) + ")",
        });
      })
      .catch(function (err) {
        showMintError("Could not mint a token: " + err.message);
        log("error", null, undefined, { label: "mint", text: err.message });
      })
      .then(function () { ui.mint.disabled = false; });
  }

  // Connection ------------------------------------------------------------

  function setStatus(stateName, text, transport) {
    ui.status.dataset.state = stateName;
    if (transport) ui.status.dataset.transport = transport; else delete ui.status.dataset.transport;
    ui.status.textContent = text;
    ui.status.title = text;
    ui.dot.dataset.state = stateName;
    var live = !!state.socket && (state.socket.connected || state.socket.active);
    ui.connect.textContent = live ? "Disconnect" : "Connect";
    ui.connect.dataset.action = live ? "disconnect" : "connect";
    ui.connect.classList.toggle("btn-primary", !live);
    ui.connect.classList.toggle("btn-danger", live);
    var connected = !!state.socket && state.socket.connected;
    ui.form.classList.toggle("is-connected", connected);
    ui.connection.hidden = !connected;
    if (connected) {
      ui.connection.textContent = "";
      ui.connection.append("socket id ", el("code", null, state.socket.id || "?"));
      ui.connection.title = "Socket.IO socket id " + state.socket.id;
    }
    ui.emit.disabled = !connected;
    ui.emitHint.firstChild.textContent = connected ? "" : "Connect first. ";
  }

  function transportOf(socket) {
    var engine = socket && socket.io && socket.io.engine;
    return engine && engine.transport ? engine.transport.name : null;
  }

  function connectedText(socket) {
    var transport = transportOf(socket);
    return "Connected via " + (transport || "?") + (state.user ? " as " + state.user : "");
  }

  function serverUrl() {
    if (!ui.server) return null;
    var raw = ui.server.value.trim();
    try {
      var url = new URL(raw);
      if (!/^(https?|wss?):$/.test(url.protocol)) throw new Error("scheme");
      return url.href.replace(/\/$/, "");
    } catch (e) {
      return undefined;
    }
  }

  function teardown() {
    var socket = state.socket;
    if (!socket) return;
    state.socket = null; // every listener below checks this first, so the old socket goes quiet
    socket.offAny();
    // Closing while the websocket probe is still connecting makes the browser warn "WebSocket is closed
    // before the connection is established": let a running upgrade finish (or fail) first.
    var engine = socket.io && socket.io.engine;
    if (engine && engine.upgrading) {
      var closed = false;
      var close = function () { if (!closed) { closed = true; socket.disconnect(); } };
      engine.once("upgrade", function () { setTimeout(close, 0); });
      engine.once("upgradeError", close);
      setTimeout(close, 2000);
    } else {
      socket.disconnect();
    }
  }

  function connect() {
    if (typeof window.io !== "function") {
      setStatus("error", "socket.io client not loaded");
      log("error", null, undefined, { label: "client", text: "the socket.io client bundle did not load" });
      return;
    }
    teardown();
    var url = serverUrl();
    if (url === undefined) {
      setStatus("error", "Enter the server URL (http://host:port)");
      ui.server.focus();
      return;
    }
    if (ui.server) remember("local", "server", url);
    var token = ui.token.value.trim();
    var transports = ui.transport.value.split(",");
    var options = {
      transports: transports,
      auth: token ? { token: token } : {},
      forceNew: true,
      reconnectionAttempts: 8,
      timeout: 10000,
    };
    var socket = url ? window.io(url, options) : window.io(options);
    state.socket = socket;
    log("system", null, undefined, {
      text: "connecting to " + (url || window.location.origin) + " (" + transports.join(", ") + ")" +
        (token ? state.user ? " as " + state.user : "" : " without a token"),
    });
    setStatus("connecting", "Connecting…");

    socket.on("connect", function () {
      if (state.socket !== socket) return;
      setStatus("connected", connectedText(socket), transportOf(socket));
      log("system", null, undefined, { text: "connected, socket id " + socket.id + ", transport " + transportOf(socket) });
    });
    socket.io.on("open", function () {
      socket.io.engine.on("upgrade", function (transport) {
        if (state.socket !== socket || !socket.connected) return;
        setStatus("connected", connectedText(socket), transport.name);
        log("system", null, undefined, { text: "transport upgraded to " + transport.name });
      });
    });
    socket.on("connect_error", function (err) {
      if (state.socket !== socket) return;
      var details = err && err.data ? err.data : { message: err ? err.message : "unknown" };
      var code = err && err.data && err.data.code;
      setStatus("error", "connect_error: " + (code || (err && err.message) || "failed"));
      log("error", "connect_error", details, { label: "connect_error", code: code || null });
    });
    socket.on("disconnect", function (reason) {
      if (state.socket !== socket) return;
      log("system", null, undefined, { text: "disconnected: " + reason });
      if (socket.active) setStatus("connecting", "Disconnected (" + reason + "), reconnecting…");
      else setStatus("disconnected", "Disconnected: " + reason);
    });
    socket.io.on("reconnect_attempt", function (attempt) {
      if (state.socket === socket) setStatus("connecting", "Reconnecting (attempt " + attempt + ")…");
    });
    socket.io.on("reconnect_failed", function () {
      if (state.socket !== socket) return;
      setStatus("error", "Could not reconnect; press Connect to retry");
      log("error", null, undefined, { label: "reconnect", text: "gave up after " + options.reconnectionAttempts + " attempts" });
    });
    socket.onAny(function (event) {
      if (state.socket !== socket) return;
      var args = Array.prototype.slice.call(arguments, 1);
      log("event", event, args.length === 0 ? undefined : args.length === 1 ? args[0] : args);
    });
  }

  function disconnect() {
    if (!state.socket) return;
    var was = state.socket.connected;
    teardown();
    log("system", null, undefined, { text: was ? "disconnected by you" : "stopped connecting" });
    setStatus("disconnected", "Disconnected");
  }

  ui.form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (ui.connect.dataset.action === "disconnect") disconnect(); else connect();
  });

  // Event and payload -------------------------------------------------------

  function currentName() {
    return ui.event.value || ui.custom.value.trim();
  }

  function showPayloadError(message) {
    ui.payloadError.textContent = message || "";
    ui.payloadError.hidden = !message;
    ui.payload.setAttribute("aria-invalid", message ? "true" : "false");
  }

  function parsePayload() {
    var raw = ui.payload.value.trim();
    if (!raw) return { ok: true, empty: true };
    try {
      return { ok: true, value: JSON.parse(raw) };
    } catch (err) {
      return { ok: false, message: "Invalid JSON: " + err.message + ". Nothing was emitted." };
    }
  }

  function describe(name) {
    var info = ui.eventInfo;
    var docs = $("try-event-docs");
    info.textContent = "";
    var ev = clientEvents.get(name);
    docs.hidden = !ev;
    if (!ev) {
      info.textContent = name ? "Not a documented client → server event: expect UNKNOWN_EVENT." : "Type an event name.";
      info.title = "";
      return;
    }
    docs.href = "#" + ev.anchor;
    docs.setAttribute("aria-label", "Documentation of " + ev.name);
    if (ev.roomRequired) info.append(el("strong", null, "Join the room first. "));
    info.append(ev.description);
    info.title = ev.description;
  }

  function selectEvent(name, exampleIndex) {
    if (state.current !== null) state.drafts.set(state.current, ui.payload.value);
    var ev = clientEvents.get(name);
    if (ev) {
      ui.event.value = name;
      ui.customField.hidden = true;
    } else {
      ui.event.value = "";
      ui.custom.value = name || "";
      ui.customField.hidden = false;
    }
    state.current = ev ? name : "";
    if (exampleIndex !== undefined && ev && ev.examples.length) {
      var index = Math.min(exampleIndex, ev.examples.length - 1);
      state.exampleIndex.set(name, index);
      ui.payload.value = pretty(ev.examples[index]);
    } else if (state.drafts.has(state.current)) {
      ui.payload.value = state.drafts.get(state.current);
    } else {
      ui.payload.value = ev && ev.examples.length ? pretty(ev.examples[0]) : "{}";
      state.exampleIndex.set(name, 0);
    }
    ui.example.disabled = !(ev && ev.examples.length);
    showPayloadError("");
    describe(currentName());
  }

  ui.event.addEventListener("change", function () {
    selectEvent(ui.event.value);
    if (!ui.event.value) ui.custom.focus();
  });
  ui.custom.addEventListener("input", function () { describe(currentName()); });
  ui.example.addEventListener("click", function () {
    var ev = clientEvents.get(ui.event.value);
    if (!ev || !ev.examples.length) return;
    var next = ((state.exampleIndex.get(ev.name) || 0) + 1) % ev.examples.length;
    if (ui.payload.value.trim() !== pretty(ev.examples[state.exampleIndex.get(ev.name) || 0])) next = state.exampleIndex.get(ev.name) || 0;
    state.exampleIndex.set(ev.name, next);
    ui.payload.value = pretty(ev.examples[next]);
    showPayloadError("");
  });
  ui.format.addEventListener("click", function () {
    var parsed = parsePayload();
    if (!parsed.ok) { showPayloadError(parsed.message.replace(" Nothing was emitted.", "")); return; }
    if (!parsed.empty) ui.payload.value = pretty(parsed.value);
    showPayloadError("");
  });
  ui.payload.addEventListener("input", function () {
    if (!ui.payloadError.hidden && parsePayload().ok) showPayloadError("");
  });
  ui.payload.addEventListener("blur", function () {
    var parsed = parsePayload();
    if (!parsed.ok) showPayloadError(parsed.message.replace(" Nothing was emitted.", ""));
  });
  ui.payload.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      emit();
    }
  });
  ui.emitForm.addEventListener("submit", function (event) { event.preventDefault(); emit(); });

  function emit() {
    var name = currentName();
    if (!name) { showPayloadError("Choose or type an event name."); return; }
    var parsed = parsePayload();
    if (!parsed.ok) { showPayloadError(parsed.message); ui.payload.focus(); return; }
    var socket = state.socket;
    if (!socket || !socket.connected) { showPayloadError("Not connected: press Connect first."); return; }
    showPayloadError("");
    var args = parsed.empty ? [] : [parsed.value];
    var withAck = ui.ack.checked;
    var meta = [parsed.empty ? "no payload" : "", withAck ? "" : "no ack"].filter(Boolean).join(" · ");
    log("emit", name, parsed.empty ? undefined : parsed.value, { meta: meta });
    if (!withAck) { socket.emit.apply(socket, [name].concat(args)); return; }
    var started = performance.now();
    var timed = socket.timeout(ACK_TIMEOUT_MS);
    timed.emit.apply(timed, [name].concat(args, [function (err) {
      var ms = Math.round(performance.now() - started);
      if (err) {
        log("error", name, undefined, { label: "ack timeout", text: "no ack within " + ACK_TIMEOUT_MS / 1000 + " s" });
        return;
      }
      var answer = Array.prototype.slice.call(arguments, 1);
      log("ack", name, answer.length === 1 ? answer[0] : answer, { ms: ms });
    }]));
  }

  // Try-it buttons on the cards.
  document.querySelectorAll("[data-try]").forEach(function (button) {
    button.addEventListener("click", function () {
      var index = button.dataset.example ? Number(button.dataset.example) : 0;
      selectEvent(button.dataset.try, index);
      setConsole(true);
      if (COARSE.matches) ui.emitForm.scrollIntoView({ block: "nearest" }); // no on-screen keyboard popping up
      else ui.payload.focus({ preventScroll: WIDE.matches });
      if (!WIDE.matches && !COARSE.matches) ui.payload.scrollIntoView({ block: "nearest" });
    });
  });

  // The log -------------------------------------------------------------------

  function log(kind, event, payload, opts) {
    opts = opts || {};
    var list = ui.log;
    var stick = list.scrollHeight - list.scrollTop - list.clientHeight < 48;
    var li = el("li", "log-entry");
    li.dataset.kind = kind;
    if (event) li.dataset.event = event;
    var line = el("div", "log-line");
    var now = new Date();
    var time = el("time", "log-time", clock(now));
    time.dateTime = now.toISOString();
    line.append(time);
    var arrow = { emit: "→", ack: "←", event: "←", error: "✕", system: "·" }[kind] || "·";
    line.append(el("span", "log-arrow", arrow));
    if (kind === "emit" || kind === "ack") line.append(el("span", "log-kind", kind));
    if (kind === "error" && opts.label) line.append(el("span", "log-kind", opts.label));

    if (event && kind !== "error" && kind !== "system") {
      var anchor = kind === "event" ? serverAnchors[event] : clientEvents.has(event) ? clientEvents.get(event).anchor : null;
      var name;
      if (anchor) { name = el("a", "log-event", event); name.href = "#" + anchor; }
      else name = el("span", "log-event", event);
      line.append(name);
    } else if (event && kind === "error" && event !== opts.label) {
      line.append(el("span", "log-event", event));
    }
    if (opts.text) line.append(el("span", "log-text", opts.text));

    var meta = [];
    if (kind === "ack") {
      var ok = !!(payload && typeof payload === "object" && payload.ok === true);
      li.dataset.ok = ok ? "true" : "false";
      var code = !ok && payload && payload.error && payload.error.code;
      if (code) li.dataset.code = code;
      var status = el("span", ok ? "log-ok" : "log-code", ok ? "ok" : code || "error");
      line.append(status);
    }
    if (kind === "error" && opts.code) { li.dataset.code = opts.code; line.append(el("span", "log-code", opts.code)); }
    if (opts.meta) meta.push(opts.meta);
    if (opts.ms !== undefined) meta.push(opts.ms + " ms");
    if (meta.length) line.append(el("span", "log-meta", meta.join(" · ")));
    li.append(line);
    if (payload !== undefined) {
      var json = el("pre", "log-json", compact(payload));
      var long = pretty(payload);
      if (long.indexOf("\n") !== -1) {
        json.tabIndex = 0;
        json.setAttribute("role", "button");
        json.setAttribute("aria-expanded", "false");
        json.title = "Click to expand";
        json._pretty = long;
        json._compact = json.textContent;
      }
      li.append(json);
    }

    list.append(li);
    while (list.children.length > MAX_LOG) list.firstElementChild.remove();
    state.logCount += 1;
    ui.logCount.textContent = String(list.children.length);
    ui.logEmpty.hidden = true;
    if (stick) list.scrollTop = list.scrollHeight;
  }

  function toggleJson(node) {
    if (!node || !node._pretty) return;
    var open = node.getAttribute("aria-expanded") !== "true";
    node.setAttribute("aria-expanded", open ? "true" : "false");
    node.textContent = open ? node._pretty : node._compact;
    node.title = open ? "Click to collapse" : "Click to expand";
  }
  ui.log.addEventListener("click", function (event) {
    var node = event.target.closest(".log-json");
    if (node && !window.getSelection().toString()) toggleJson(node);
  });
  ui.log.addEventListener("keydown", function (event) {
    if ((event.key === "Enter" || event.key === " ") && event.target.classList.contains("log-json")) {
      event.preventDefault();
      toggleJson(event.target);
    }
  });

  ui.clear.addEventListener("click", function () {
    ui.log.textContent = "";
    ui.logCount.textContent = "0";
    ui.logEmpty.hidden = false;
  });

  // ---------------------------------------------------------------- start

  (function restoreFilters() {
    var params = new URLSearchParams(window.location.search);
    if (params.get("q")) search.value = params.get("q");
    var dir = params.get("dir");
    if (dir) directionInputs.forEach(function (i) { i.checked = i.value === dir; });
  })();
  applyFilter();
  var firstEvent = ui.event.options.length ? ui.event.options[0].value : "";
  selectEvent(firstEvent);
  setStatus("idle", "Not connected");
  if (window.location.hash) focusTarget();
  spy();
  body.classList.add("js-ready");
})();
