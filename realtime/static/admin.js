// realtime admin page: no framework, no external resource. Every value from the API is written with
// textContent, never as HTML. The token lives in sessionStorage (this tab only) and travels only in the
// Authorization header of fetch calls to this origin.
"use strict";

(() => {
  const TOKEN_KEY = "realtime.adminToken";
  const REFRESH_MS = 3000;
  // A second click within this time confirms an action; the first only arms the button.
  const CONFIRM_MS = 5000;
  const api = document.body.dataset.api;
  const $ = (id) => document.getElementById(id);

  let timer = null;
  let usersQuery = {cursor: "0", userId: ""};

  class AuthError extends Error {}

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  async function call(method, path) {
    const response = await fetch(api + path, {
      method,
      headers: {Authorization: "Bearer " + token(), Accept: "application/json"},
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (response.status === 401 || response.status === 403) {
      throw new AuthError(body && body.error ? body.error.message : "Not authorized.");
    }
    if (!body || body.ok !== true) {
      const message = body && body.error ? body.error.code + ": " + body.error.message : "HTTP " + response.status;
      throw new Error(message);
    }
    return body.data;
  }

  function el(tag, props, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "text") node.textContent = String(value);
      else if (key === "className") node.className = value;
      else if (key.startsWith("data-")) node.setAttribute(key, String(value));
      else node[key] = value;
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  function rate(value) {
    return (Number(value) || 0).toFixed(1) + "/s";
  }

  function showStatus(text, state) {
    const status = $("action-status");
    status.textContent = text;
    status.dataset.state = state;
    status.hidden = false;
  }

  function armed(button, label, action) {
    // Two clicks: the first arms the button, the second (within CONFIRM_MS) runs the action.
    button.addEventListener("click", async () => {
      if (button.dataset.armed !== "1") {
        button.dataset.armed = "1";
        const idle = button.textContent;
        button.textContent = label;
        setTimeout(() => {
          if (button.isConnected && button.dataset.armed === "1") {
            button.dataset.armed = "";
            button.textContent = idle;
          }
        }, CONFIRM_MS);
        return;
      }
      button.dataset.armed = "";
      button.disabled = true;
      try {
        showStatus(await action(), "ok");
      } catch (err) {
        handleError(err);
      } finally {
        refresh();
      }
    });
    return button;
  }

  function disconnectButton(sid) {
    const button = el("button", {type: "button", className: "danger disconnect", text: "Disconnect", "data-sid": sid});
    return armed(button, "Confirm disconnect", async () => {
      const done = await call("POST", "/sockets/" + encodeURIComponent(sid) + "/disconnect");
      return "Disconnected socket " + done.sid + " of user " + done.userId + ".";
    });
  }

  function logoutButton(userId) {
    const button = el("button", {type: "button", className: "danger logout", text: "Force logout", "data-user-id": userId});
    return armed(button, "Confirm logout", async () => {
      const done = await call("POST", "/users/" + encodeURIComponent(userId) + "/logout");
      return "Logged out " + done.userId + ": " + done.sessions + " session(s), " + done.sockets + " socket(s).";
    });
  }

  function renderTotals(totals) {
    const rates = totals.rates || {};
    const rows = [
      ["workers", totals.workers],
      ["sockets", totals.sockets],
      ["events received", rate(rates.eventsReceived)],
      ["events emitted", rate(rates.eventsEmitted)],
      ["deliveries", rate(rates.deliveries)],
      ["event errors", rate(rates.eventErrors)],
    ];
    $("totals").replaceChildren(...rows.flatMap(([name, value]) => [
      el("dt", {text: name}), el("dd", {text: value, "data-total": name}),
    ]));
  }

  function renderWorkers(workers) {
    const sections = workers.map((worker) => {
      const rates = worker.rates || {};
      const sockets = (worker.listed || []).map((sock) => el("li", {
        "data-sid": sock.sid, "data-user-id": sock.userId, "data-worker": worker.id,
      }, [
        el("code", {className: "sid", text: sock.sid}), " ",
        el("span", {className: "user", text: sock.userId}), " ",
        el("span", {className: "muted", text: sock.rooms + " room(s)"}), " ",
        disconnectButton(sock.sid),
      ]));
      const more = worker.sockets - (worker.listed || []).length;
      const totals = worker.totals || {};
      return el("article", {
        className: "worker", "data-worker": worker.id, "data-sockets": worker.sockets,
        "data-received": totals.eventsReceived || 0, "data-errors": totals.eventErrors || 0,
      }, [
        el("h3", {}, [el("code", {text: worker.id}), worker.draining ? el("span", {className: "badge", text: " draining"}) : ""]),
        el("p", {className: "muted", text:
          worker.sockets + " socket(s), " + worker.users + " user(s) · in " + rate(rates.eventsReceived) +
          " · out " + rate(rates.eventsEmitted) + " · deliveries " + rate(rates.deliveries) +
          " · errors " + rate(rates.eventErrors) + " · beat " + worker.beatAt}),
        el("p", {className: "muted", text:
          "since start: " + (totals.eventsReceived || 0) + " events in, " + (totals.eventsEmitted || 0) + " out, " +
          (totals.deliveries || 0) + " deliveries, " + (totals.eventErrors || 0) + " failed · up since " + worker.startedAt}),
        el("ul", {className: "sockets"}, sockets),
        more > 0 ? el("p", {className: "muted", text: "… and " + more + " more (find them by user below)"}) : "",
      ]);
    });
    $("workers").replaceChildren(...(sections.length ? sections : [el("p", {className: "muted", text: "No worker reported yet."})]));
  }

  function renderRooms(rooms) {
    $("rooms").replaceChildren(...rooms.map((room) => el("tr", {"data-room": room.room}, [
      el("td", {}, [el("code", {text: room.room})]),
      el("td", {className: "sockets", text: room.sockets}),
      el("td", {className: "users", text: room.users}),
    ])));
  }

  function renderErrors(errors) {
    const items = errors.map((entry) => el("li", {"data-code": entry.code || "", "data-event": entry.event || ""}, [
      el("time", {text: entry.ts || ""}), " ",
      el("span", {className: "level", text: entry.level || ""}), " ",
      entry.code ? el("code", {className: "code", text: entry.code}) : "", " ",
      entry.event ? el("code", {className: "event", text: entry.event}) : "", " ",
      el("span", {className: "message", text: entry.message || ""}), " ",
      el("span", {className: "muted", text: (entry.host || "") + ":" + (entry.worker || "")}),
    ]));
    $("errors").replaceChildren(...(items.length ? items : [el("li", {className: "muted", text: "No recent errors."})]));
  }

  function renderUsers(page) {
    $("users").replaceChildren(...page.users.map((user) => el("tr", {"data-user-id": user.userId}, [
      el("td", {}, [el("code", {text: user.userId})]),
      el("td", {className: "sids"}, user.sockets.map((sid) => el("code", {className: "sid", text: sid + " "}))),
      el("td", {}, [user.sockets.length ? logoutButton(user.userId) : el("span", {className: "muted", text: "offline"})]),
    ])));
    const next = $("users-next");
    next.hidden = !page.next;
    next.dataset.cursor = page.next || "";
  }

  function usersPath() {
    if (usersQuery.userId) return "/users?userId=" + encodeURIComponent(usersQuery.userId);
    return "/users?cursor=" + encodeURIComponent(usersQuery.cursor) + "&limit=50";
  }

  function handleError(err) {
    if (err instanceof AuthError) {
      signOut(err.message);
      return;
    }
    showStatus(String(err.message || err), "error");
  }

  async function refresh() {
    if (!token()) return;
    try {
      const [overview, users] = await Promise.all([call("GET", "/overview"), call("GET", usersPath())]);
      // Re-rendering would replace an armed button and lose the first click of its confirmation.
      if (document.querySelector('[data-armed="1"]')) return;
      document.body.dataset.state = "signed-in";
      $("sign-in").hidden = true;
      $("dashboard").hidden = false;
      $("sign-out").hidden = false;
      renderTotals(overview.totals);
      renderWorkers(overview.workers);
      renderRooms(overview.rooms);
      renderErrors(overview.errors);
      renderUsers(users);
      $("refreshed").textContent = "updated " + overview.generatedAt;
      document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
    } catch (err) {
      handleError(err);
    }
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    clearInterval(timer);
    timer = null;
    document.body.dataset.state = "signed-out";
    $("dashboard").hidden = true;
    $("sign-out").hidden = true;
    $("sign-in").hidden = false;
    const error = $("auth-error");
    error.textContent = message || "";
    error.hidden = !message;
  }

  function start() {
    clearInterval(timer);
    refresh();
    timer = setInterval(refresh, REFRESH_MS);
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("admin-token");
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = "";
    $("auth-error").hidden = true;
    start();
  });
  $("sign-out").addEventListener("click", () => signOut(""));
  $("user-search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    usersQuery = {cursor: "0", userId: $("user-search").value.trim()};
    refresh();
  });
  $("users-all").addEventListener("click", () => {
    $("user-search").value = "";
    usersQuery = {cursor: "0", userId: ""};
    refresh();
  });
  $("users-next").addEventListener("click", () => {
    usersQuery = {cursor: $("users-next").dataset.cursor || "0", userId: ""};
    refresh();
  });

  if (token()) start();
})();
