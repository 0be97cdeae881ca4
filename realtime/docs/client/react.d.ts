// React bindings of the realtime client (realtime-client/react); payload types come from the event maps that
// client.d.ts generates from the server's event registry.
import type { ReactElement, ReactNode } from "react";
import type {
  ConnectionState,
  PayloadOf,
  RealtimeClient,
  RealtimeError,
  ResultOf,
  ServerEventName,
  ServerEvents,
} from "./client.js";

/** A message of a room, as chat:new_message and the chat:join history carry it. */
export type RoomMessage = ServerEvents["chat:new_message"];

/** Someone else typing in a room. */
export interface TypingUser {
  readonly userId: string;
  readonly username: string;
}

/** idle before the join is sent, joining until its answer, then joined or failed (see error). */
export type RoomStatus = "idle" | "joining" | "joined" | "failed";

export interface RoomState {
  readonly status: RoomStatus;
  /** The join's history and every later message, oldest first, each once. */
  readonly messages: ReadonlyArray<RoomMessage>;
  /** Others typing now: until they stop, send a message, leave, or typingTimeout passes. */
  readonly typing: ReadonlyArray<TypingUser>;
  /** Why the join failed (FORBIDDEN, ROOM_LIMIT, CLOSED, ...), else null. */
  readonly error: RealtimeError | null;
}

export interface Room extends RoomState {
  /** Send a text (or a message with type and mediaUrl) to the room; resolves with the ack's data. */
  send(message: string | Omit<PayloadOf<"chat:message">, "roomId">): Promise<ResultOf<"chat:message">>;
  /** Tell the others whether you are typing. */
  setTyping(isTyping: boolean): Promise<ResultOf<"chat:typing">>;
}

/** A user's presence, as presence:check answers it and presence:update keeps it current. */
export type Presence = ResultOf<"presence:check">[number];

export interface RealtimeProviderProps {
  /** The client the hooks use; the app creates it (createClient) and closes it. */
  client: RealtimeClient;
  children?: ReactNode;
  /** Most messages a room keeps, newest kept (default 500). */
  messageLimit?: number;
  /** Milliseconds after which someone's isTyping: true with no news counts as stopped (default 8000). */
  typingTimeout?: number;
}

/** Make `client` available to the hooks below it. */
export declare function RealtimeProvider(props: RealtimeProviderProps): ReactElement;
/** The client given to the nearest RealtimeProvider. */
export declare function useRealtimeClient(): RealtimeClient;
/** The connection state; the component renders again on every change. */
export declare function useConnectionState(): ConnectionState;
/** Call handler(payload) for every `event` from the server while the component is mounted. */
export declare function useEvent<E extends ServerEventName>(event: E, handler: (payload: ServerEvents[E]) => void): void;
/** A chat room joined while the component is mounted (the last user of a room leaves it). */
export declare function useRoom(roomId: string): Room;
/** The presence of `userIds`, subscribed while the component is mounted; undefined until known. */
export declare function usePresence(userIds: ReadonlyArray<string>): Readonly<Record<string, Presence | undefined>>;
