// A small graphql-transport-ws client (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md):
// connection_init with the token, subscribe/next/error/complete, ping/pong, and reconnects with back-off.
// Each subscription's variables are asked for again on every (re)connect, so a caller can resume with
// `after: <last sequence seen>`.

const PROTOCOL = "graphql-transport-ws";
const FATAL_CLOSE_CODES = new Set([4400, 4401, 4403, 4406]); // bad request, unauthorised, forbidden, protocol

export class LiveClient {
  /**
   * @param {object} options
   * @param {string} options.url           ws:// or wss:// URL of /graphql
   * @param {() => string|null} options.token
   * @param {(state: "connecting"|"live"|"reconnecting"|"closed", detail?: object) => void} [options.onState]
   * @param {(code: number, reason: string) => void} [options.onFatal]  authentication refused: do not retry
   */
  constructor({ url, token, onState = () => {}, onFatal = () => {} }) {
    this.url = url;
    this.token = token;
    this.onState = onState;
    this.onFatal = onFatal;
    this.socket = null;
    this.subscriptions = new Map(); // id -> { query, variables: () => object, sink }
    this.nextId = 1;
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
    this.acknowledged = false;
    this.connections = 0;
    this._online = () => this._reconnectNow();
    window.addEventListener("online", this._online);
  }

  /** Subscribe; `variables` is a function called on every (re)subscribe. Returns an unsubscribe function. */
  subscribe(query, variables, sink) {
    const id = String(this.nextId++);
    this.subscriptions.set(id, { query, variables, sink });
    if (this.acknowledged) this._send({ id, type: "subscribe", payload: { query, variables: variables() } });
    else this._connect();
    return () => {
      if (this.subscriptions.delete(id) && this.acknowledged) this._send({ id, type: "complete" });
    };
  }

  /** Re-send one subscription (after the server ended it with an error, e.g. a subscriber that fell behind). */
  resubscribe(id) {
    const entry = this.subscriptions.get(id);
    if (entry && this.acknowledged) {
      this._send({ id, type: "subscribe", payload: { query: entry.query, variables: entry.variables() } });
    }
  }

  close() {
    this.stopped = true;
    window.removeEventListener("online", this._online);
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000, "signed out");
    this.socket = null;
    this.onState("closed");
  }

  _connect() {
    if (this.stopped || this.socket) return;
    clearTimeout(this.timer);
    this.acknowledged = false;
    this.onState(this.connections === 0 ? "connecting" : "reconnecting");
    let socket;
    try {
      socket = new WebSocket(this.url, PROTOCOL);
    } catch {
      this._scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      const token = this.token();
      this._send({ type: "connection_init", payload: token ? { authorization: `Bearer ${token}` } : {} });
    };
    socket.onmessage = (event) => this._receive(event.data);
    socket.onclose = (event) => this._closed(socket, event);
  }

  _receive(raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch {
      this.socket?.close(4400, "invalid message");
      return;
    }
    const entry = message.id ? this.subscriptions.get(message.id) : null;
    switch (message.type) {
      case "connection_ack": {
        this.acknowledged = true;
        this.attempt = 0;
        const resumed = this.connections > 0;
        this.connections += 1;
        for (const [id, sub] of this.subscriptions) {
          this._send({ id, type: "subscribe", payload: { query: sub.query, variables: sub.variables() } });
        }
        this.onState("live", { resumed });
        break;
      }
      case "ping":
        this._send({ type: "pong" });
        break;
      case "next":
        if (entry) entry.sink.next(message.payload, message.id);
        break;
      case "error":
        if (entry) entry.sink.error(message.payload, message.id);
        break;
      case "complete":
        if (entry) {
          this.subscriptions.delete(message.id);
          if (entry.sink.complete) entry.sink.complete(message.id);
        }
        break;
      default:
        break; // pong and anything newer: nothing to do
    }
  }

  _closed(socket, event) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.acknowledged = false;
    if (this.stopped) return;
    if (FATAL_CLOSE_CODES.has(event.code)) {
      this.stopped = true;
      this.onState("closed", { code: event.code, reason: event.reason });
      this.onFatal(event.code, event.reason);
      return;
    }
    this._scheduleReconnect();
  }

  _scheduleReconnect() {
    this.onState("reconnecting", { attempt: this.attempt + 1 });
    // 0.5 s, 1 s, 2 s, ... up to 15 s, with jitter so many dashboards do not reconnect in step.
    const delay = Math.min(15000, 500 * 2 ** this.attempt) * (0.75 + Math.random() * 0.5);
    this.attempt += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this._connect(), delay);
  }

  _reconnectNow() {
    if (this.stopped || this.socket) return;
    this.attempt = 0;
    this._connect();
  }

  _send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }
}

export function graphqlWebSocketUrl(path) {
  const url = new URL(path, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}
