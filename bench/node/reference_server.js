#!/usr/bin/env node
/*
 * Reference server for the side-by-side benchmark: stock Socket.IO 4.8 + @socket.io/redis-adapter with the
 * same JWT + chat contract as realtime, so that bench/side_by_side.py can drive both with the same clients.
 *
 *   PORT=… REDIS_URL=redis://127.0.0.1:…/0 JWT_SECRET=… [KEY_PREFIX=rt:] [CHANNEL=socket.io-bench]
 *   [TRANSPORTS=websocket] [HISTORY=50] node bench/node/reference_server.js
 *
 * Contract (what realtime does for these events, as a plain Socket.IO app would write it):
 *   handshake  auth.token: a JWT (HS256, JWT_SECRET) with sub, sid, exp, iat; the session hash
 *              {KEY_PREFIX}session:{sid} must exist with userId === sub (one HGET); otherwise
 *              connect_error with data {code: INVALID_TOKEN | TOKEN_EXPIRED | SESSION_REVOKED | AUTH_REQUIRED}.
 *   chat:join  {roomId} → socket joins group:{roomId}; the last HISTORY messages of the room's stream
 *              (XREVRANGE) in the ack {ok: true, data: {roomId, messages}} and in chat:history to the
 *              joiner; chat:user_joined {userId, roomId, timestamp} to the others in the room.
 *   chat:message {roomId, content, clientId?} → NOT_IN_ROOM unless joined; XADD (MAXLEN ~ 1000) to the
 *              room's stream; chat:new_message {id, roomId, senderId, sender, content, type, mediaUrl,
 *              clientId, createdAt} to the whole room (sender included); ack {ok: true, data: {id, duplicate}}.
 *   GET /healthz → 200 "ok".
 * Several processes share rooms through the Redis adapter (pub/sub on CHANNEL), as realtime's workers do.
 */
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");
const jwt = require("jsonwebtoken");

const PORT = Number(process.env.PORT || 5100);
const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379/0";
const SECRET = process.env.JWT_SECRET;
const PREFIX = process.env.KEY_PREFIX || "rt:";
const CHANNEL = process.env.CHANNEL || "socket.io-bench";
const TRANSPORTS = (process.env.TRANSPORTS || "websocket").split(",");
const HISTORY = Number(process.env.HISTORY || 50);
const ROOM_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

if (!SECRET) {
  process.stderr.write("[reference] JWT_SECRET is not set: pass the secret the tokens were signed with\n");
  process.exit(2);
}

function fail(code, message) {
  return { ok: false, error: { code, message } };
}

function refusal(code, message) {
  const err = new Error(message);
  err.data = { code, message };
  return err;
}

async function main() {
  const redis = createClient({ url: REDIS_URL });
  const pub = redis.duplicate();
  const sub = redis.duplicate();
  for (const client of [redis, pub, sub]) {
    client.on("error", (err) => process.stderr.write(`[reference] redis: ${err.message}\n`));
  }
  await Promise.all([redis.connect(), pub.connect(), sub.connect()]);

  const httpServer = http.createServer((req, res) => {
    if (req.url === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain", connection: "close" });
      res.end("ok");
    }
  });
  const io = new Server(httpServer, { transports: TRANSPORTS, serveClient: false });
  io.adapter(createAdapter(pub, sub, { key: CHANNEL }));

  io.use(async (socket, next) => {
    const token = socket.handshake.auth && socket.handshake.auth.token;
    if (typeof token !== "string" || !token) {
      next(refusal("AUTH_REQUIRED", "Pass a token in auth.token."));
      return;
    }
    let claims;
    try {
      claims = jwt.verify(token, SECRET, { algorithms: ["HS256"] });
    } catch (err) {
      const expired = err.name === "TokenExpiredError";
      next(refusal(expired ? "TOKEN_EXPIRED" : "INVALID_TOKEN", expired ? "Token expired." : "Invalid token."));
      return;
    }
    if (typeof claims.sub !== "string" || typeof claims.sid !== "string" || !claims.iat || !claims.exp) {
      next(refusal("INVALID_TOKEN", "The token lacks sub, sid, iat or exp."));
      return;
    }
    try {
      const owner = await redis.hGet(`${PREFIX}session:${claims.sid}`, "userId");
      if (owner !== claims.sub) {
        next(refusal("SESSION_REVOKED", "Session revoked."));
        return;
      }
    } catch (err) {
      next(refusal("UNAVAILABLE", "Session store unreachable; retry shortly."));
      return;
    }
    socket.data.userId = claims.sub;
    next();
  });

  io.on("connection", (socket) => {
    const userId = socket.data.userId;

    socket.on("chat:join", async (data, ack) => {
      const reply = typeof ack === "function" ? ack : () => {};
      const roomId = data && data.roomId;
      if (typeof roomId !== "string" || !ROOM_ID.test(roomId)) {
        reply(fail("VALIDATION_ERROR", "roomId: an identifier."));
        return;
      }
      const room = `group:${roomId}`;
      try {
        const entries = HISTORY > 0 ? await redis.xRevRange(`${PREFIX}nodebench:chat:${roomId}`, "+", "-", { COUNT: HISTORY }) : [];
        const recent = { roomId, messages: entries.map((e) => ({ id: e.id, ...JSON.parse(e.message.m) })) };
        const joined = socket.rooms.has(room);
        socket.join(room);
        socket.emit("chat:history", recent);
        if (!joined) {
          socket.to(room).emit("chat:user_joined", { userId, roomId, timestamp: new Date().toISOString() });
        }
        reply({ ok: true, data: recent });
      } catch (err) {
        reply(fail("UNAVAILABLE", "History store unreachable; retry shortly."));
      }
    });

    socket.on("chat:message", async (data, ack) => {
      const reply = typeof ack === "function" ? ack : () => {};
      const roomId = data && data.roomId;
      const content = data && data.content;
      if (typeof roomId !== "string" || !ROOM_ID.test(roomId)) {
        reply(fail("VALIDATION_ERROR", "roomId: an identifier."));
        return;
      }
      if (typeof content !== "string" || content.length < 1 || content.length > 4000) {
        reply(fail("VALIDATION_ERROR", "content: 1 to 4000 characters."));
        return;
      }
      const room = `group:${roomId}`;
      if (!socket.rooms.has(room)) {
        reply(fail("NOT_IN_ROOM", `Join chat room '${roomId}' first.`));
        return;
      }
      const body = {
        roomId,
        senderId: userId,
        sender: { id: userId, username: userId, avatarUrl: null },
        content,
        type: "TEXT",
        mediaUrl: null,
        clientId: typeof data.clientId === "string" ? data.clientId : null,
        createdAt: new Date().toISOString(),
      };
      try {
        const id = await redis.xAdd(`${PREFIX}nodebench:chat:${roomId}`, "*", { m: JSON.stringify(body) }, {
          TRIM: { strategy: "MAXLEN", strategyModifier: "~", threshold: 1000 },
        });
        io.to(room).emit("chat:new_message", { id, ...body });
        reply({ ok: true, data: { id, duplicate: false } });
      } catch (err) {
        reply(fail("UNAVAILABLE", "Message store unreachable; retry shortly."));
      }
    });
  });

  httpServer.listen(PORT, "127.0.0.1", () => {
    process.stderr.write(`[reference] socket.io ${require("socket.io/package.json").version} on 127.0.0.1:${PORT}\n`);
  });

  const stop = () => {
    io.close();
    Promise.allSettled([redis.quit(), pub.quit(), sub.quit()]).finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  process.stderr.write(`[reference] ${err.stack || err}\n`);
  process.exit(1);
});
