#!/usr/bin/env node
/*
 * Load driver for the side-by-side benchmark: one of --procs Node processes, each with its share of the
 * socket.io-client sockets (bench/load_group.py starts them and merges what they report).
 *
 *   node bench/node/load.js --urls http://127.0.0.1:A[,http://127.0.0.1:B] --tokens-file FILE
 *        --clients N [--procs 1] [--proc 0] [--rooms 10] [--room-size 100] [--senders 50] [--rate 20000]
 *        [--duration-s 20] [--batch-size 200] [--connect-timeout-s 180] [--max-lifetime-s 900] [--run-id X]
 *
 * Socket i (0 … clients-1) belongs to process floor(i / rooms) % procs, so that every process holds
 * members of every room. It uses line i of FILE and connects to urls[i % urls.length] (websocket only,
 * forceNew, no reconnection: a dropped socket stays dropped and is counted). Sockets 0 … rooms*roomSize-1
 * join chat room `bench-${i % rooms}` (chat:join, ack awaited); the others stay connected in no room (idle).
 * A process connects its sockets in batches of --batch-size (the next batch starts when this one is
 * connected and joined); 0 = all of them at once (a storm).
 * After {"op":"start","roomMembers":[…]} (the members of each room over every process): the senders (the
 * first --senders joined sockets of this process, spread over the rooms; 0 in every process but one) emit
 * chat:message at rate/roomSize messages per second in total for --duration-s, content
 * "${runId}|${seq}|${sentAtMs}"; every receiver takes its latency from that timestamp (wall clock, one
 * machine). Deliveries count as measured until {"op":"stop"}.
 *
 * stdout: JSON lines only.  {"type":"connected", …}  after the connect phase;  {"type":"sent", …}  when the
 * send window ends (a process with senders);  {"type":"count", received}  answers {"op":"count"};
 * {"type":"stopped"}  answers {"op":"stop"};  {"type":"report", …}  (with the raw latencies) answers
 * {"op":"report"};  {"type":"bye"}  answers {"op":"exit"}.  stdin closing means exit. It exits by itself
 * after --max-lifetime-s.
 */
"use strict";

const fs = require("node:fs");
const readline = require("node:readline");
const { performance } = require("node:perf_hooks");
const { io } = require("socket.io-client");

console.log = console.error;

function parseArgs(argv) {
  const opts = {
    urls: "", tokensFile: "", clients: 1000, procs: 1, proc: 0, rooms: 10, roomSize: 100, senders: 50,
    rate: 20000, durationS: 20, batchSize: 200, connectTimeoutS: 180, maxLifetimeS: 900, runId: "run",
  };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "").replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in opts)) {
      process.stderr.write(`[load] unknown option ${argv[i]}\n`);
      process.exit(2);
    }
    opts[key] = typeof opts[key] === "number" ? Number(argv[i + 1]) : argv[i + 1];
  }
  opts.urls = opts.urls.split(",").filter(Boolean);
  return opts;
}

const opts = parseArgs(process.argv);
const tokens = fs.readFileSync(opts.tokensFile, "utf8").split("\n").filter(Boolean);
if (tokens.length < opts.clients) {
  process.stderr.write(`[load] ${opts.tokensFile} holds ${tokens.length} tokens for ${opts.clients} clients\n`);
  process.exit(2);
}
const now = () => performance.timeOrigin + performance.now();
const out = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
setTimeout(() => process.exit(4), opts.maxLifetimeS * 1000).unref();

const inRooms = Math.min(opts.clients, opts.rooms * opts.roomSize);
const owned = [];
for (let i = 0; i < opts.clients; i += 1) {
  if (Math.floor(i / Math.max(1, opts.rooms)) % opts.procs === opts.proc) owned.push(i);
}
const sockets = new Array(opts.clients);
const connectMs = [];
const joinMs = [];
const connectErrors = {};
let connected = 0;
let joined = 0;
let failed = 0;
let settledCount = 0;
let disconnects = 0;
const disconnectReasons = {};
const roomMembers = new Array(opts.rooms).fill(0);
let allRoomMembers = roomMembers;

// Measurement state.
let measuring = false;
let sent = 0;
let expected = 0;
let received = 0;
let late = 0;
let ackOk = 0;
const ackErrors = {};
const latencies = [];
const ackLatencies = [];
const expectedBySeq = [];
const receivedBySeq = [];
// Per message: the latency of its first and of its last delivery (the spread of one broadcast).
const firstBySeq = {};
const lastBySeq = {};

function bump(table, key) {
  table[key] = (table[key] || 0) + 1;
}

function onNewMessage(msg) {
  const parts = typeof msg.content === "string" ? msg.content.split("|") : [];
  if (parts.length !== 3 || parts[0] !== opts.runId) return;
  const seq = Number(parts[1]);
  const sentAt = Number(parts[2]);
  received += 1;
  receivedBySeq[seq] = (receivedBySeq[seq] || 0) + 1;
  const latency = now() - sentAt;
  latencies.push(latency);
  if (!(seq in firstBySeq)) firstBySeq[seq] = latency;
  lastBySeq[seq] = latency;
  if (!measuring) late += 1;
}

function openSocket(i) {
  return new Promise((resolve) => {
    const started = now();
    const socket = io(opts.urls[i % opts.urls.length], {
      transports: ["websocket"], forceNew: true, reconnection: false, timeout: opts.connectTimeoutS * 1000,
      auth: { token: tokens[i] },
    });
    sockets[i] = socket;
    let settled = false;
    const settle = (ok) => {
      if (!settled) {
        settled = true;
        settledCount += 1;
        if (!ok) failed += 1;
        resolve();
      }
    };
    socket.on("connect_error", (err) => {
      bump(connectErrors, (err.data && err.data.code) || err.message);
      settle(false);
    });
    socket.on("disconnect", (reason) => {
      disconnects += 1;
      bump(disconnectReasons, reason);
    });
    socket.on("chat:new_message", onNewMessage);
    socket.once("connect", () => {
      connected += 1;
      connectMs.push(now() - started);
      if (i >= inRooms) {
        settle(true);
        return;
      }
      const room = i % opts.rooms;
      socket.timeout(60000).emit("chat:join", { roomId: `bench-${room}` }, (err, ack) => {
        if (err || !ack || !ack.ok) {
          bump(connectErrors, `join ${err ? "timeout" : (ack && ack.error && ack.error.code) || "?"}`);
          settle(false);
          return;
        }
        socket.benchRoom = room;
        roomMembers[room] += 1;
        joined += 1;
        joinMs.push(now() - started);
        settle(true);
      });
    });
  });
}

const r2 = (v) => Math.round(v * 100) / 100;

function percentiles(values) {
  if (!values.length) return { count: 0 };
  const sorted = Float64Array.from(values).sort();
  const at = (p) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
  return { count: sorted.length, p50: r2(at(50)), p90: r2(at(90)), p99: r2(at(99)), max: r2(sorted[sorted.length - 1]) };
}

async function connectAll() {
  const started = now();
  const deadline = started + opts.connectTimeoutS * 1000;
  const batch = opts.batchSize > 0 ? opts.batchSize : owned.length;
  for (let first = 0; first < owned.length && now() < deadline; first += batch) {
    const pending = owned.slice(first, first + batch).map(openSocket);
    await Promise.race([Promise.all(pending), new Promise((r) => setTimeout(r, Math.max(0, deadline - now())))]);
  }
  out({
    type: "connected", clients: owned.length, connected, joined, failed, pending: owned.length - settledCount,
    connectedNow: sockets.filter((s) => s && s.connected).length, disconnects,
    connectAllMs: Math.round(now() - started), connectMsRaw: connectMs.map(r2), joinMsRaw: joinMs.map(r2),
    connectErrors, roomMembers, pid: process.pid,
  });
}

function senders() {
  const chosen = [];
  const perRoom = new Array(opts.rooms).fill(0);
  const want = Math.ceil(opts.senders / opts.rooms);
  for (const socket of sockets) {
    if (chosen.length >= opts.senders) break;
    if (socket && socket.connected && socket.benchRoom !== undefined && perRoom[socket.benchRoom] < want) {
      perRoom[socket.benchRoom] += 1;
      chosen.push(socket);
    }
  }
  return chosen;
}

function run() {
  const from = senders();
  const members = (room) => allRoomMembers[room];
  const avgRoom = from.length ? from.reduce((s, x) => s + members(x.benchRoom), 0) / from.length : 1;
  const msgRate = opts.rate / Math.max(1, avgRoom);
  const started = now();
  const stopAt = started + opts.durationS * 1000;
  let next = 0;
  measuring = true;
  const tick = setInterval(() => {
    const t = now();
    const due = Math.floor(((Math.min(t, stopAt) - started) / 1000) * msgRate) - sent;
    for (let k = 0; k < due && from.length; k += 1) {
      const socket = from[next % from.length];
      next += 1;
      if (!socket.connected) continue;
      const seq = sent;
      sent += 1;
      expectedBySeq[seq] = members(socket.benchRoom);
      expected += expectedBySeq[seq];
      const sentAt = now();
      socket.timeout(30000).emit(
        "chat:message", { roomId: `bench-${socket.benchRoom}`, content: `${opts.runId}|${seq}|${sentAt}` },
        (err, ack) => {
          if (!err && ack && ack.ok) {
            ackOk += 1;
            ackLatencies.push(now() - sentAt);
          } else bump(ackErrors, err ? "timeout" : (ack && ack.error && ack.error.code) || "?");
        },
      );
    }
    if (t >= stopAt) {
      clearInterval(tick);
      if (opts.senders > 0) out({ type: "sent", sent, expected, sendWindowMs: Math.round(now() - started) });
    }
  }, 5);
  return { senders: from.length, msgRate, started };
}

let runInfo = null;
// Per message seq: [received here, first latency here, last latency here], for the messages this
// process received; the group merges them with the sender's expectedBySeq.
function report() {
  const bySeq = {};
  for (const seq of Object.keys(receivedBySeq)) {
    bySeq[seq] = [receivedBySeq[seq], r2(firstBySeq[seq]), r2(lastBySeq[seq])];
  }
  out({
    type: "report", sent, expected, received, late, expectedBySeq, bySeq, latencyMsRaw: latencies.map(r2),
    ackOk, ackErrors, ackMs: percentiles(ackLatencies), senders: runInfo && runInfo.senders,
    msgRate: runInfo && runInfo.msgRate, connectedNow: sockets.filter((s) => s && s.connected).length,
    disconnects, disconnectReasons,
  });
}

function exit() {
  for (const socket of sockets) if (socket) socket.close();
  out({ type: "bye" });
  setTimeout(() => process.exit(0), 200);
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch {
    return;
  }
  if (cmd.op === "start" && runInfo === null) {
    if (Array.isArray(cmd.roomMembers)) allRoomMembers = cmd.roomMembers;
    runInfo = run();
  } else if (cmd.op === "count") out({ type: "count", received });
  else if (cmd.op === "stop") {
    measuring = false;
    out({ type: "stopped" });
  } else if (cmd.op === "report") report();
  else if (cmd.op === "exit") exit();
}).on("close", exit);

connectAll();
