#!/usr/bin/env node
/*
 * JSON-lines driver for the real Node `socket.io-client`, used by the pytest
 * helper tests/helpers/node_client.py.
 *
 * Protocol: one JSON object per line on stdin (commands), one JSON object per
 * line on stdout (results and events). Nothing else is ever written to
 * stdout; diagnostics go to stderr.
 *
 * Commands ("op"):
 *   connect         {id, url, auth, query, extraHeaders, transports,
 *                    reconnection, upgrade, options}
 *   emit            {id, event, args, ack, req, timeout}
 *   ack_reply       {id, ack_id, args}   answer a server event sent with a callback
 *   disconnect      {id}
 *   close_transport {id}                 drop the engine so the client reconnects
 *   reconnect       {id}                 socket.connect() again (after a drop without auto-reconnection:
 *                                        the client sends its pid and offset, as its own reconnection would)
 *   exit            {}
 *
 * Output ("type"):
 *   ready, connect, connect_error, disconnect, upgrade, reconnect_attempt,
 *   reconnect, reconnect_failed, event, ack, ack_timeout, emitted, replied,
 *   closed, transport_closed, reconnecting, error
 */
"use strict";

const readline = require("node:readline");
const { io } = require("socket.io-client");

let clientVersion = null;
try {
  clientVersion = require("socket.io-client/package.json").version;
} catch (_err) {
  clientVersion = null;
}

// Keep stdout reserved for the protocol, whatever a library might log.
console.log = console.error;
console.info = console.error;

/** @type {Map<string, import("socket.io-client").Socket>} */
const sockets = new Map();
/** Callbacks of server events awaiting an answer, keyed by "<id>:<ack_id>". */
const pendingServerAcks = new Map();
let nextServerAckId = 1;
let exiting = false;

function toJsonSafe(_key, value) {
  if (value instanceof ArrayBuffer) {
    return { _binary: Buffer.from(value).toString("base64") };
  }
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    return {
      _binary: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64"),
    };
  }
  if (typeof value === "bigint") {
    return value.toString();
  }
  return value;
}

function out(message) {
  let line;
  try {
    line = JSON.stringify(message, toJsonSafe);
  } catch (err) {
    line = JSON.stringify({ type: "error", message: `unserialisable output: ${err.message}` });
  }
  process.stdout.write(line + "\n");
}

function diag(...parts) {
  process.stderr.write(`[sioclient] ${parts.join(" ")}\n`);
}

function fail(message, cmd) {
  const msg = { type: "error", message: String(message) };
  if (cmd && typeof cmd === "object") {
    if (cmd.op !== undefined) msg.op = cmd.op;
    if (cmd.id !== undefined) msg.id = cmd.id;
    if (cmd.req !== undefined) msg.req = cmd.req;
  }
  out(msg);
}

function getSocket(cmd) {
  if (typeof cmd.id !== "string" || cmd.id === "") {
    throw new Error("missing or invalid 'id'");
  }
  const socket = sockets.get(cmd.id);
  if (!socket) {
    throw new Error(`unknown id: ${cmd.id}`);
  }
  return socket;
}

function engineTransportName(socket) {
  const engine = socket.io && socket.io.engine;
  return engine && engine.transport ? engine.transport.name : null;
}

function doConnect(cmd) {
  const id = cmd.id;
  if (typeof id !== "string" || id === "") {
    throw new Error("missing or invalid 'id'");
  }
  if (typeof cmd.url !== "string" || cmd.url === "") {
    throw new Error("missing or invalid 'url'");
  }
  if (sockets.has(id)) {
    throw new Error(`id already in use: ${id}`);
  }

  const opts = {
    forceNew: true,
    reconnection: cmd.reconnection === true,
    upgrade: cmd.upgrade !== false,
  };
  if (cmd.auth != null) opts.auth = cmd.auth;
  if (cmd.query != null) opts.query = cmd.query;
  if (cmd.extraHeaders != null) opts.extraHeaders = cmd.extraHeaders;
  if (Array.isArray(cmd.transports) && cmd.transports.length > 0) {
    opts.transports = cmd.transports;
  }
  if (cmd.options != null && typeof cmd.options === "object") {
    Object.assign(opts, cmd.options);
  }

  const socket = io(cmd.url, opts);
  sockets.set(id, socket);
  const manager = socket.io;

  const watchEngine = () => {
    const engine = manager.engine;
    if (!engine) return;
    engine.on("upgrade", (transport) => {
      out({ type: "upgrade", id, transport: transport && transport.name });
    });
  };
  // The manager opens its engine in the constructor (autoConnect) and builds a
  // new one on every reconnection attempt; "open" fires before any upgrade.
  manager.on("open", watchEngine);

  manager.on("reconnect_attempt", (attempt) => {
    out({ type: "reconnect_attempt", id, attempt });
  });
  manager.on("reconnect", (attempt) => {
    out({ type: "reconnect", id, attempt });
  });
  manager.on("reconnect_failed", () => {
    out({ type: "reconnect_failed", id });
  });

  socket.on("connect", () => {
    out({
      type: "connect",
      id,
      sid: socket.id,
      recovered: socket.recovered === true,
      transport: engineTransportName(socket),
      // The private recovery id the server sent in its CONNECT answer (socket.io-client keeps it in _pid).
      pid: socket._pid === undefined ? null : socket._pid,
    });
  });
  socket.on("connect_error", (err) => {
    out({
      type: "connect_error",
      id,
      message: err && err.message !== undefined ? String(err.message) : String(err),
      data: err && err.data !== undefined ? err.data : null,
    });
  });
  socket.on("disconnect", (reason, details) => {
    const msg = { type: "disconnect", id, reason };
    if (details && typeof details === "object" && details.description !== undefined) {
      msg.description =
        details.description instanceof Error ? details.description.message : details.description;
    }
    out(msg);
  });
  socket.onAny((event, ...args) => {
    const msg = { type: "event", id, event, args };
    if (args.length > 0 && typeof args[args.length - 1] === "function") {
      const callback = args.pop();
      const ackId = nextServerAckId++;
      pendingServerAcks.set(`${id}:${ackId}`, callback);
      msg.ack_id = ackId;
    }
    out(msg);
  });
}

function doEmit(cmd) {
  const socket = getSocket(cmd);
  if (typeof cmd.event !== "string" || cmd.event === "") {
    throw new Error("missing or invalid 'event'");
  }
  const args = Array.isArray(cmd.args) ? cmd.args : cmd.args == null ? [] : [cmd.args];
  const id = cmd.id;
  const req = cmd.req === undefined ? null : cmd.req;
  if (cmd.ack) {
    const timeout = Number.isFinite(cmd.timeout) && cmd.timeout > 0 ? cmd.timeout : 5000;
    socket.timeout(timeout).emit(cmd.event, ...args, (err, ...resp) => {
      if (err) {
        out({ type: "ack_timeout", id, req });
      } else {
        out({ type: "ack", id, req, args: resp });
      }
    });
  } else {
    socket.emit(cmd.event, ...args);
    out({ type: "emitted", id, req });
  }
}

function doAckReply(cmd) {
  getSocket(cmd);
  const key = `${cmd.id}:${cmd.ack_id}`;
  const callback = pendingServerAcks.get(key);
  if (!callback) {
    throw new Error(`unknown ack_id ${cmd.ack_id} for id ${cmd.id}`);
  }
  pendingServerAcks.delete(key);
  const args = Array.isArray(cmd.args) ? cmd.args : cmd.args == null ? [] : [cmd.args];
  callback(...args);
  out({ type: "replied", id: cmd.id, ack_id: cmd.ack_id });
}

function forgetServerAcks(id) {
  for (const key of pendingServerAcks.keys()) {
    if (key.startsWith(`${id}:`)) pendingServerAcks.delete(key);
  }
}

function doDisconnect(cmd) {
  const socket = getSocket(cmd);
  sockets.delete(cmd.id);
  forgetServerAcks(cmd.id);
  socket.disconnect();
  out({ type: "closed", id: cmd.id });
}

function doCloseTransport(cmd) {
  const socket = getSocket(cmd);
  const engine = socket.io && socket.io.engine;
  if (!engine) {
    throw new Error(`no engine for id ${cmd.id}`);
  }
  engine.close();
  out({ type: "transport_closed", id: cmd.id });
}

function shutdown(code) {
  if (exiting) return;
  exiting = true;
  for (const [id, socket] of sockets) {
    try {
      socket.disconnect();
    } catch (err) {
      diag(`disconnect of ${id} failed:`, err && err.message);
    }
  }
  sockets.clear();
  pendingServerAcks.clear();
  // Pipes are synchronous on Linux, so everything written so far is flushed.
  process.exit(code);
}

function doReconnect(cmd) {
  const socket = getSocket(cmd);
  if (socket.connected) {
    throw new Error(`id ${cmd.id} is connected`);
  }
  socket.connect();
  out({ type: "reconnecting", id: cmd.id });
}

const handlers = {
  connect: doConnect,
  emit: doEmit,
  ack_reply: doAckReply,
  disconnect: doDisconnect,
  close_transport: doCloseTransport,
  reconnect: doReconnect,
  exit: () => shutdown(0),
};

function handleLine(line) {
  const text = line.trim();
  if (text === "") return;
  let cmd;
  try {
    cmd = JSON.parse(text);
  } catch (err) {
    fail(`bad JSON: ${err.message}`);
    return;
  }
  if (cmd === null || typeof cmd !== "object" || Array.isArray(cmd)) {
    fail("command must be a JSON object");
    return;
  }
  const handler = handlers[cmd.op];
  if (!handler) {
    fail(`unknown op: ${cmd.op}`, cmd);
    return;
  }
  try {
    handler(cmd);
  } catch (err) {
    fail(err && err.message ? err.message : String(err), cmd);
  }
}

process.on("uncaughtException", (err) => {
  diag("uncaught exception:", err && err.stack ? err.stack : String(err));
  fail(`uncaught exception: ${err && err.message ? err.message : String(err)}`);
});
process.on("unhandledRejection", (reason) => {
  diag("unhandled rejection:", reason && reason.stack ? reason.stack : String(reason));
  fail(`unhandled rejection: ${reason && reason.message ? reason.message : String(reason)}`);
});
process.stdout.on("error", (err) => {
  // The reader went away (EPIPE): nobody is listening any more.
  diag("stdout error:", err && err.message);
  shutdown(0);
});
process.on("SIGTERM", () => shutdown(0));

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
rl.on("line", handleLine);
rl.on("close", () => shutdown(0));

out({ type: "ready", pid: process.pid, node: process.version, client: clientVersion });
