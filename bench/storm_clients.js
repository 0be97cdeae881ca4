#!/usr/bin/env node
/*
 * Reconnect-storm clients: ONE Node process holding N socket.io-client sockets.
 *
 * Driven by bench/reconnect_storm.py (or by hand). It reuses the socket.io-client that tests/node
 * pins (tests/node/package-lock.json), resolved from ../tests/node/node_modules: no dependency of its own.
 *
 *   node bench/storm_clients.js --url http://127.0.0.1:PORT --tokens-file FILE [--rooms 20]
 *        [--batch-size 100] [--batch-pause-ms 0] [--transport websocket|polling]
 *        [--connect-timeout-s 120] [--max-lifetime-s 900] [--room-prefix bench-] [--retry 1|0]
 *        [--ignore-user USER_ID]
 *
 * FILE holds one JWT per line; socket i uses line i and joins chat room `${roomPrefix}${i % rooms}`.
 * Every socket: forceNew, reconnection on (reconnectionDelay 500, reconnectionDelayMax 5000,
 * randomizationFactor 0.5), and on every (re)connect that was not recovered (socket.recovered false)
 * it emits chat:join again, as a real client must to get its room back. With --retry 1 (default) a
 * connect refused with UNAVAILABLE ("retry shortly") is retried after 0.5-1.5 s (at most 20 times) and a
 * failed chat:join up to 3 times: the stock client retries neither (--retry 0 shows what it would lose).
 * Events whose userId/senderId is --ignore-user (the driver's probe) are counted as "probe <event>".
 *
 * stdout: one JSON object per line, nothing else (diagnostics go to stderr):
 *   {"type":"ready", clientVersion, sockets, pid}
 *   {"type":"progress", phase, t, connected, joined, ...}      every second
 *   {"type":"initial", complete, ...}                           all sockets connected+joined, or the timeout
 *   {"type":"armed", at}                                        answer to {"op":"arm"}
 *   {"type":"all_reconnected", at}                              every socket disconnected after arm, then
 *                                                               connected again and is back in its room
 *   {"type":"storm_settled", at, back, gone}                    otherwise, once the rest will not come back
 *   {"type":"report", ...}                                      answer to {"op":"report"}: per-socket arrays
 *   {"type":"marker", clientId, expected, received, missing}    answer to {"op":"marker", clientId, rooms?}:
 *                                                               sockets that got chat:new_message with it
 *   {"type":"bye"}                                              answer to {"op":"exit"}
 * stdin: one JSON command per line: arm, report, marker, exit. stdin closing means exit.
 *
 * Everything is bounded: the process exits by itself after --max-lifetime-s.
 */
"use strict";

const path = require("node:path");
const fs = require("node:fs");
const readline = require("node:readline");
const { createRequire } = require("node:module");

const testsNode = path.resolve(__dirname, "..", "tests", "node");
const requireFromTests = createRequire(path.join(testsNode, "package.json"));
let io;
let clientVersion = null;
try {
  ({ io } = requireFromTests("socket.io-client"));
  clientVersion = requireFromTests("socket.io-client/package.json").version;
} catch (err) {
  process.stderr.write(
    `[storm] cannot load socket.io-client from ${testsNode}/node_modules (${err.message}); ` +
      "install it with `make node-tools` (npm ci in tests/node)\n",
  );
  process.exit(3);
}

// stdout is the protocol; keep stray library logging off it.
console.log = console.error;
console.info = console.error;

function parseArgs(argv) {
  const opts = {
    url: null,
    tokensFile: null,
    rooms: 20,
    batchSize: 100,
    batchPauseMs: 0,
    batchTimeoutMs: 15000,
    transport: "websocket",
    connectTimeoutS: 120,
    maxLifetimeS: 900,
    roomPrefix: "bench-",
    joinTimeoutMs: 20000,
    maxUnavailableRetries: 20,
    retry: 1,
    ignoreUser: "",
  };
  const names = {
    "--url": ["url", String],
    "--tokens-file": ["tokensFile", String],
    "--rooms": ["rooms", Number],
    "--batch-size": ["batchSize", Number],
    "--batch-pause-ms": ["batchPauseMs", Number],
    "--batch-timeout-ms": ["batchTimeoutMs", Number],
    "--transport": ["transport", String],
    "--connect-timeout-s": ["connectTimeoutS", Number],
    "--max-lifetime-s": ["maxLifetimeS", Number],
    "--room-prefix": ["roomPrefix", String],
    "--join-timeout-ms": ["joinTimeoutMs", Number],
    "--retry": ["retry", Number],
    "--ignore-user": ["ignoreUser", String],
  };
  for (let i = 2; i < argv.length; i += 2) {
    const spec = names[argv[i]];
    if (!spec || i + 1 >= argv.length) {
      throw new Error(`unknown or incomplete option ${argv[i]}`);
    }
    const value = spec[1](argv[i + 1]);
    if (typeof value === "number" && !Number.isFinite(value)) {
      throw new Error(`option ${argv[i]} needs a number`);
    }
    opts[spec[0]] = value;
  }
  if (!opts.url || !opts.tokensFile) throw new Error("--url and --tokens-file are required");
  if (!["websocket", "polling"].includes(opts.transport)) throw new Error("--transport websocket|polling");
  if (opts.rooms < 1) throw new Error("--rooms must be >= 1");
  return opts;
}

let opts;
try {
  opts = parseArgs(process.argv);
} catch (err) {
  process.stderr.write(`[storm] ${err.message}\n`);
  process.exit(2);
}

const tokens = fs
  .readFileSync(opts.tokensFile, "utf8")
  .split("\n")
  .map((line) => line.trim())
  .filter(Boolean);
const N = tokens.length;

function out(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

function diag(text) {
  process.stderr.write(`[storm] ${text}\n`);
}

function bump(map, key) {
  map[key] = (map[key] || 0) + 1;
}

// ---- per-socket state (plain arrays: cheap to report) -------------------------------------------
const sockets = new Array(N).fill(null);
const createdAt = new Array(N).fill(null); // epoch ms io() was called
const firstConnectAt = new Array(N).fill(null);
const firstJoinAt = new Array(N).fill(null);
const connected = new Array(N).fill(false);
const joinedNow = new Array(N).fill(false); // in its chat room on the current connection
const terminal = new Array(N).fill(null); // a reason the socket will not come back by itself
const unavailableRetries = new Array(N).fill(0);
// After "arm" (the storm phase):
let armedAt = null;
const stormDisconnectAt = new Array(N).fill(null); // first disconnect after arm
const stormDisconnectReason = new Array(N).fill(null);
const stormConnectAt = new Array(N).fill(null); // first connect after that disconnect
const stormJoinAt = new Array(N).fill(null); // first chat:join ack ok (or recovered connect) after it
const currentConnectAt = new Array(N).fill(null); // connect time of the current connection
const currentJoinAt = new Array(N).fill(null); // when the current connection got (back) into its room
const currentRecovered = new Array(N).fill(null); // socket.recovered of the current connection
const stormRecovered = new Array(N).fill(null); // socket.recovered at that connect
const stormAttempts = new Array(N).fill(0); // manager reconnect attempts after arm
const stormDisconnects = new Array(N).fill(0);
let allReconnectedAt = null;
let stormSettledAt = null;

const errors = { initial: {}, storm: {} }; // connect_error "code" (err.data.code or err.message) -> count
const errorDetails = { initial: {}, storm: {} }; // transport error description (ECONNREFUSED...) -> count
const joinErrors = { initial: {}, storm: {} };
const disconnectReasons = { initial: {}, storm: {} };
const serverEvents = { initial: {}, storm: {} }; // events received by name
const serverEventSpan = { initial: {}, storm: {} }; // name -> [first, last] epoch ms
const markers = new Map(); // clientId -> Set of socket indices that received chat:new_message with it

const phase = () => (armedAt === null ? "initial" : "storm");
const startedAt = Date.now();
let initialReported = false;
let initialDeadline = null;
let exiting = false;

function roomOf(i) {
  return `${opts.roomPrefix}${i % opts.rooms}`;
}

function join(i, socket, attempt = 1) {
  const p = phase();
  const retry = (code) => {
    // A failed join is retried (bounded), as an app would; every failure is counted.
    if (opts.retry && attempt < 3 && !exiting) {
      setTimeout(() => {
        if (!exiting && socket.connected && !joinedNow[i]) join(i, socket, attempt + 1);
      }, 1000);
    } else {
      terminal[i] = `join_failed:${code}`; // connected, but out of its room until the next reconnect
      checkProgress();
    }
  };
  socket.timeout(opts.joinTimeoutMs).emit("chat:join", { roomId: roomOf(i) }, (err, ack) => {
    if (sockets[i] !== socket || !socket.connected) return;
    if (err) {
      bump(joinErrors[p], "ack_timeout");
      retry("ack_timeout");
      return;
    }
    if (!ack || ack.ok !== true) {
      const code = (ack && ack.error && ack.error.code) || "bad_ack";
      bump(joinErrors[p], code);
      retry(code);
      return;
    }
    joined(i);
  });
}

function joined(i) {
  const now = Date.now();
  joinedNow[i] = true;
  currentJoinAt[i] = now;
  if (firstJoinAt[i] === null) firstJoinAt[i] = now;
  if (armedAt !== null && stormConnectAt[i] !== null && stormJoinAt[i] === null) stormJoinAt[i] = now;
  checkProgress();
}

function openSocket(i) {
  createdAt[i] = Date.now();
  const socket = io(opts.url, {
    forceNew: true,
    transports: [opts.transport],
    upgrade: false,
    reconnection: true,
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
    randomizationFactor: 0.5,
    timeout: 20000,
    auth: { token: tokens[i] },
  });
  sockets[i] = socket;

  socket.on("connect", () => {
    const now = Date.now();
    connected[i] = true;
    joinedNow[i] = false;
    terminal[i] = null;
    if (firstConnectAt[i] === null) firstConnectAt[i] = now;
    const recovered = socket.recovered === true;
    currentConnectAt[i] = now;
    currentJoinAt[i] = null;
    currentRecovered[i] = recovered;
    if (armedAt !== null && stormDisconnectAt[i] !== null && stormConnectAt[i] === null) {
      stormConnectAt[i] = now;
      stormRecovered[i] = recovered;
    }
    if (recovered) {
      joined(i); // the server restored its rooms: nothing to redo
    } else {
      join(i, socket);
    }
  });

  socket.on("connect_error", (err) => {
    const p = phase();
    const code = (err && err.data && err.data.code) || (err && err.message) || "unknown";
    bump(errors[p], code);
    const desc = err && err.description;
    if (desc !== undefined && desc !== null) {
      const detail =
        (desc && (desc.code || (desc.error && desc.error.code) || desc.message)) ||
        (typeof desc === "number" ? `http_${desc}` : String(desc));
      bump(errorDetails[p], String(detail));
    }
    // A refusal by the server (err.data set) does not make the manager retry. UNAVAILABLE means
    // "retry shortly"; the rest (auth) is final for this token.
    if (err && err.data && err.data.code) {
      const retryable = opts.retry && err.data.code === "UNAVAILABLE";
      if (retryable && unavailableRetries[i] < opts.maxUnavailableRetries && !exiting) {
        unavailableRetries[i] += 1;
        setTimeout(() => {
          if (!exiting && !socket.connected) socket.connect();
        }, 500 + Math.floor(Math.random() * 1000));
      } else {
        terminal[i] = `connect_error:${err.data.code}`;
        checkProgress();
      }
    }
  });

  socket.on("disconnect", (reason) => {
    const p = phase();
    connected[i] = false;
    joinedNow[i] = false;
    bump(disconnectReasons[p], reason);
    if (armedAt !== null) {
      stormDisconnects[i] += 1;
      if (stormDisconnectAt[i] === null) {
        stormDisconnectAt[i] = Date.now();
        stormDisconnectReason[i] = reason;
      }
    }
    if (reason === "io server disconnect" || reason === "io client disconnect") {
      // The client library does not reconnect after these by itself.
      terminal[i] = `disconnect:${reason}`;
    }
    checkProgress();
  });

  socket.io.on("reconnect_attempt", () => {
    if (armedAt !== null) stormAttempts[i] += 1;
  });

  socket.onAny((event, payload) => {
    // Events caused by the driver's probe user are counted apart: they are not part of the storm.
    const byProbe =
      opts.ignoreUser !== "" &&
      payload &&
      (payload.userId === opts.ignoreUser || payload.senderId === opts.ignoreUser);
    const name = byProbe ? `probe ${event}` : event;
    const p = phase();
    bump(serverEvents[p], name);
    const now = Date.now();
    const span = serverEventSpan[p][name];
    if (span === undefined) serverEventSpan[p][name] = [now, now];
    else span[1] = now;
    if (event === "chat:new_message" && payload && typeof payload.clientId === "string") {
      let seen = markers.get(payload.clientId);
      if (seen === undefined) {
        if (markers.size > 1000) return; // bounded: only the driver's probes matter
        seen = new Set();
        markers.set(payload.clientId, seen);
      }
      seen.add(i);
    }
  });
}

function counts() {
  let nConnected = 0;
  let nJoined = 0;
  let nTerminal = 0;
  let nStormDisc = 0;
  let nStormBack = 0;
  let nStormJoined = 0;
  let nRecovered = 0;
  for (let i = 0; i < N; i++) {
    if (connected[i]) nConnected++;
    if (connected[i] && joinedNow[i]) nJoined++;
    if (terminal[i] !== null) nTerminal++;
    if (stormDisconnectAt[i] !== null) nStormDisc++;
    if (stormConnectAt[i] !== null) nStormBack++;
    if (stormJoinAt[i] !== null) nStormJoined++;
    if (stormRecovered[i] === true) nRecovered++;
  }
  return {
    opened: sockets.filter(Boolean).length,
    connected: nConnected,
    joined: nJoined,
    terminal: nTerminal,
    stormDisconnected: nStormDisc,
    stormReconnected: nStormBack,
    stormRejoined: nStormJoined,
    stormRecovered: nRecovered,
  };
}

function checkProgress() {
  if (!initialReported && armedAt === null) {
    let done = sockets.every(Boolean);
    for (let i = 0; done && i < N; i++) {
      if (!(connected[i] && joinedNow[i]) && terminal[i] === null) done = false;
    }
    if (done) reportInitial(true);
  }
  if (armedAt !== null && allReconnectedAt === null) {
    let back = 0;
    let gone = 0;
    for (let i = 0; i < N; i++) {
      if (stormDisconnectAt[i] !== null && stormJoinAt[i] !== null && connected[i] && joinedNow[i]) back++;
      else if (terminal[i] !== null) gone++;
    }
    if (back === N) {
      allReconnectedAt = Date.now();
      out({ type: "all_reconnected", at: allReconnectedAt, ...counts() });
    } else if (back + gone === N && stormSettledAt === null) {
      // Some sockets will not come back by themselves: nothing left to wait for.
      stormSettledAt = Date.now();
      out({ type: "storm_settled", at: stormSettledAt, back, gone, ...counts() });
    }
  }
}

function reportInitial(complete) {
  if (initialReported) return;
  initialReported = true;
  out({
    type: "initial",
    complete,
    at: Date.now(),
    startedAt,
    ...counts(),
    errors: errors.initial,
    errorDetails: errorDetails.initial,
    joinErrors: joinErrors.initial,
    disconnectReasons: disconnectReasons.initial,
  });
}

async function openAll() {
  const batch = opts.batchSize > 0 ? opts.batchSize : N;
  for (let start = 0; start < N && !exiting; start += batch) {
    const end = Math.min(N, start + batch);
    for (let i = start; i < end; i++) openSocket(i);
    if (end >= N) break;
    // Wait until this batch is in (connected and joined, or terminal), bounded, then pause.
    const deadline = Date.now() + opts.batchTimeoutMs;
    while (!exiting && Date.now() < deadline) {
      let pending = 0;
      for (let i = start; i < end; i++) {
        if (!(connected[i] && joinedNow[i]) && terminal[i] === null) pending++;
      }
      if (pending === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    if (opts.batchPauseMs > 0) await new Promise((resolve) => setTimeout(resolve, opts.batchPauseMs));
  }
  checkProgress();
}

function report() {
  out({
    type: "report",
    at: Date.now(),
    clientVersion,
    sockets: N,
    armedAt,
    allReconnectedAt,
    startedAt,
    ...counts(),
    createdAt,
    firstConnectAt,
    firstJoinAt,
    stormDisconnectAt,
    stormDisconnectReason,
    stormConnectAt,
    stormJoinAt,
    stormRecovered,
    currentConnectAt,
    currentJoinAt,
    currentRecovered,
    stormAttempts,
    stormDisconnects,
    terminal,
    errors,
    errorDetails,
    joinErrors,
    disconnectReasons,
    serverEvents,
    serverEventSpan,
    memory: process.memoryUsage(),
  });
}

function shutdown(code) {
  if (exiting) return;
  exiting = true;
  for (const socket of sockets) {
    if (socket) {
      try {
        socket.io.reconnection(false);
        socket.disconnect();
      } catch (_err) {
        // closing anyway
      }
    }
  }
  setTimeout(() => process.exit(code), 200).unref();
}

function handle(cmd) {
  switch (cmd.op) {
    case "arm":
      armedAt = Date.now();
      out({ type: "armed", at: armedAt, ...counts() });
      break;
    case "report":
      report();
      break;
    case "marker": {
      const seen = markers.get(String(cmd.clientId)) || new Set();
      // Which sockets should have it: those in the rooms the marker was sent to.
      const rooms = new Set(Array.isArray(cmd.rooms) ? cmd.rooms.map(String) : []);
      const missing = [];
      let expected = 0;
      for (let i = 0; i < N; i++) {
        if (rooms.size > 0 && !rooms.has(roomOf(i))) continue;
        expected++;
        if (!seen.has(i)) missing.push(i);
      }
      out({
        type: "marker",
        clientId: cmd.clientId,
        expected,
        received: expected - missing.length,
        missing: missing.slice(0, 50),
        missingCount: missing.length,
      });
      break;
    }
    case "exit":
      out({ type: "bye" });
      shutdown(0);
      break;
    default:
      diag(`unknown op ${JSON.stringify(cmd.op)}`);
  }
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (_err) {
    diag("bad command line (not JSON)");
    return;
  }
  handle(cmd);
});
process.stdin.on("end", () => shutdown(0));
process.on("SIGTERM", () => shutdown(0));
process.on("SIGINT", () => shutdown(0));

// Bounded in time, whatever the driver does.
setTimeout(() => {
  diag(`max lifetime ${opts.maxLifetimeS}s reached; exiting`);
  shutdown(4);
}, opts.maxLifetimeS * 1000).unref();

const ticker = setInterval(() => {
  out({ type: "progress", phase: phase(), t: Date.now(), ...counts() });
  if (!initialReported && initialDeadline !== null && Date.now() > initialDeadline) reportInitial(false);
}, 1000);
ticker.unref();
// Keep the process alive while sockets exist; the lifetime timer and "exit" end it.
const keepAlive = setInterval(() => {}, 60000);
process.on("exit", () => clearInterval(keepAlive));

out({ type: "ready", clientVersion, sockets: N, pid: process.pid, transport: opts.transport });
initialDeadline = Date.now() + opts.connectTimeoutS * 1000;
openAll().catch((err) => {
  diag(`openAll failed: ${err && err.stack}`);
  shutdown(5);
});
