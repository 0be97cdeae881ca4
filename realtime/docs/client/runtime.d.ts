// The client runtime's API; RequestEvents, ServerEvents, ErrorCode and the payload interfaces above it are
// generated from the server's event registry.

/** Failure codes the client itself produces, next to the server's ErrorCode. */
export type ClientErrorCode = "TIMEOUT" | "DISCONNECTED" | "OUTBOX_FULL" | "CLOSED";

/** A failed request: the server's error envelope, or one of the ClientErrorCode failures. */
export declare class RealtimeError extends Error {
  constructor(code: ErrorCode | ClientErrorCode, message: string, fields?: Record<string, unknown> | null, event?: string | null);
  readonly code: ErrorCode | ClientErrorCode;
  /** Per-field messages of a VALIDATION_ERROR, else null. */
  readonly fields: Record<string, unknown> | null;
  /** The event of the failed request, else null. */
  readonly event: string | null;
}

/** Every client->server event name. */
export type RequestName = keyof RequestEvents;
/** The payload of a client->server event. */
export type PayloadOf<E extends RequestName> = RequestEvents[E]["payload"];
/** The `data` of the ack of a client->server event. */
export type ResultOf<E extends RequestName> = RequestEvents[E]["result"];
/** Every server->client event name. */
export type ServerEventName = keyof ServerEvents;

export type ConnectionStatus = "connecting" | "connected" | "reconnecting" | "offline" | "closed";

export interface ConnectionState {
  readonly status: ConnectionStatus;
  /** After a reconnect: whether the server restored the session (rooms and missed broadcasts). */
  readonly recovered: boolean;
  /** Why the client closed: a force_logout reason (revoked, duplicate_login), "closed", or a refusal code. */
  readonly reason: string | null;
  readonly error: RealtimeError | null;
}

export interface BackoffOptions {
  /** First reconnection delay (default 1000 ms); it doubles up to maxMs. */
  minMs?: number;
  /** Longest reconnection delay (default 10000 ms). */
  maxMs?: number;
  /** Randomization factor between 0 and 1 (default 0.5). */
  jitter?: number;
}

/** Where the outbox is persisted: window.localStorage, or anything with the same three methods. */
export interface OutboxStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

interface CommonOptions {
  /** socket.io-client's io(); defaults to window.io (its browser bundle). */
  io?: (url: string, options?: Record<string, unknown>) => unknown;
  /** Milliseconds to wait for an ack once a request is on the wire (default 10000). */
  timeout?: number;
  /** Most requests queued while not connected (default 100); more reject with OUTBOX_FULL. */
  outboxLimit?: number;
  /** Persist queued requests here (e.g. window.localStorage); they are sent again by the next client. */
  storage?: OutboxStorage | null;
  /** The storage key of the outbox (default "realtime:outbox"). */
  storageKey?: string;
  backoff?: BackoffOptions;
  /** Further socket.io-client options (transports, path, ...). */
  socketOptions?: Record<string, unknown>;
}

export type TokenSource = () => string | Promise<string>;

export type ClientOptions = CommonOptions &
  ({ token: string; getToken?: TokenSource } | { token?: string; getToken: TokenSource });

export interface RequestOptions {
  /** Milliseconds to wait for the ack once sent; queued time does not count. */
  timeout?: number;
}

/** A request restored from storage at start-up and sent again. */
export interface RestoredRequest {
  readonly event: RequestName;
  readonly payload: unknown;
  readonly result: Promise<unknown>;
}

export interface RealtimeClient {
  readonly state: ConnectionState;
  /** The underlying socket.io-client Socket. */
  readonly socket: unknown;
  readonly restored: ReadonlyArray<RestoredRequest>;
  /** Call listener on every state change; returns the function that stops it. */
  subscribe(listener: (state: ConnectionState) => void): () => void;
  /** Requests waiting for a connection, oldest first. */
  pending(): Array<{ event: RequestName; payload: unknown }>;
  /** Send an event; resolves with the ack's data, rejects with a RealtimeError. */
  request<E extends RequestName>(event: E, payload: PayloadOf<E>, options?: RequestOptions): Promise<ResultOf<E>>;
  on<E extends ServerEventName>(event: E, handler: (payload: ServerEvents[E]) => void): this;
  off<E extends ServerEventName>(event: E, handler?: (payload: ServerEvents[E]) => void): this;
  once<E extends ServerEventName>(event: E, handler: (payload: ServerEvents[E]) => void): this;
  /** Connect again after "offline" or "closed". */
  connect(): void;
  /** Disconnect for good; waiting requests reject with CLOSED. */
  close(): void;
}

export declare const CLIENT_ERROR_CODES: ReadonlyArray<ClientErrorCode>;
/** The schema version of the registry this client was generated from. */
export declare const SCHEMA_VERSION: string;
/** A fresh clientId: what chat:message gets when the payload has none. */
export declare function newClientId(): string;
/** Create a client; it connects at once. */
export declare function createClient(url: string, options: ClientOptions): RealtimeClient;
