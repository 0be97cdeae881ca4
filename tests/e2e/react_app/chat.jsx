// The React page of tests/e2e/test_client_react.py: a chat room built from the realtime-client hooks only.
// The test sets window.chatConfig = { url, token, roomId, watch, typingTimeout } before this bundle runs, reads
// the page through its data- attributes, and acts through window.chat (send, setTyping, leave).
import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { createClient } from "realtime-client";
import { RealtimeProvider, useConnectionState, useEvent, usePresence, useRoom } from "realtime-client/react";

function Room({ roomId }) {
  const room = useRoom(roomId);
  useEffect(() => {
    window.chat.send = room.send;
    window.chat.setTyping = room.setTyping;
  }, [room.send, room.setTyping]);
  return (
    <section>
      <h1 id="room" data-status={room.status}>{roomId}</h1>
      <ul id="messages">
        {room.messages.map((message) => (
          <li key={message.id} data-id={message.id} data-sender={message.senderId}>
            <b>{message.sender.username}</b> {message.content}
          </li>
        ))}
      </ul>
      <p id="typing" data-users={room.typing.map((user) => user.userId).join(" ")}>
        {room.typing.length ? room.typing.map((user) => user.username).join(", ") + " typing" : ""}
      </p>
    </section>
  );
}

function Chat({ roomId, watch }) {
  const connection = useConnectionState();
  const presence = usePresence(watch);
  const [inRoom, setInRoom] = useState(true);
  const [joined, setJoined] = useState([]);
  const [left, setLeft] = useState([]);
  useEvent("chat:user_joined", (event) => {
    if (event.roomId === roomId) setJoined((seen) => [...seen, event.userId]);
  });
  useEvent("chat:user_left", (event) => {
    if (event.roomId === roomId) setLeft((seen) => [...seen, event.userId]);
  });
  useEffect(() => {
    window.chat.leave = () => setInRoom(false);
  }, []);
  return (
    <main>
      <p id="connection" data-status={connection.status}>{connection.status}</p>
      {inRoom ? <Room roomId={roomId} /> : <p id="room" data-status="left">left {roomId}</p>}
      <ul id="presence">
        {watch.map((userId) => (
          <li key={userId} data-user={userId} data-online={presence[userId] ? String(presence[userId].isOnline) : "unknown"}>
            {userId}: {presence[userId] ? presence[userId].status : "unknown"}
          </li>
        ))}
      </ul>
      <p id="joined" data-users={joined.join(" ")} />
      <p id="left" data-users={left.join(" ")} />
    </main>
  );
}

const config = window.chatConfig;
const client = createClient(config.url, { token: config.token, backoff: { minMs: 300, maxMs: 1000, jitter: 0 } });
window.chat = {};
const root = document.createElement("div");
document.body.replaceChildren(root);
// StrictMode mounts every component twice in development: a room must still be joined once.
createRoot(root).render(
  <StrictMode>
    <RealtimeProvider client={client} typingTimeout={config.typingTimeout}>
      <Chat roomId={config.roomId} watch={config.watch} />
    </RealtimeProvider>
  </StrictMode>
);
