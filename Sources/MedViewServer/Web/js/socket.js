// The WebSocket's lifecycle: one socket at a time to `/v1/ws`.
//
// - Opens it with the token in the `medview.bearer.` subprotocol, and counts it as live only
//   once a `ping` command is acknowledged (the server serves commands only on authenticated
//   sockets, so the ack also proves the token was accepted).
// - Keeps it honest: a heartbeat `ping` every `heartbeatMs`; any command not acknowledged
//   within `ackTimeoutMs` (or a socket that neither opens nor closes in that time) means the
//   socket is dead, and it is given up at once, without waiting for a close handshake that a
//   dead network never finishes.
// - Sends commands and resolves them with their ack (acks.js), and hands a renewed token to the
//   open socket (`auth.refresh`).
//
// What happens after a close (reconnect, offline, SSE fallback) is not decided here: the close
// is reported to the owner, the connection manager (connection.js).

/**
 * @typedef {object} SocketCallbacks
 * @property {() => void} onLive                  the opening ping was acknowledged
 * @property {(event: any) => void} onEvent        every JSON message received on the live socket
 * @property {(code: number, wasLive: boolean) => void} onClosed  the socket closed or was given up
 */

export class SocketLink {
  /**
   * @param {{options: {ackTimeoutMs: number, heartbeatMs: number}, acks: import("./acks.js").Acks,
   *          stats: Record<string, number>} & SocketCallbacks} setup
   */
  constructor({ options, acks, stats, onLive, onEvent, onClosed }) {
    this.options = options;
    this.acks = acks;
    this.stats = stats;
    this.onLive = onLive;
    this.onEvent = onEvent;
    this.onClosed = onClosed;
    /** @type {WebSocket | null} the current socket, open or opening */
    this.ws = null;
    /** True once the current socket's opening ping was acknowledged. */
    this.live = false;
    this.heartbeatTimer = 0;
    this.pinging = false;
    this.commandCounter = 0;
  }

  /** Opens a socket with `token`. False when the browser refused to even create it (bad URL). */
  open(token) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let ws;
    this.stats.wsAttempts += 1;
    try {
      ws = new WebSocket(`${scheme}//${location.host}/v1/ws`, ["medview.v1", "medview.bearer." + token]);
    } catch {
      return false;
    }
    this.ws = ws;
    // A socket that neither opens nor closes in time (a black-holed network) is given up.
    const opening = setTimeout(() => {
      if (this.ws === ws && !this.live) this.abandon(ws, 4000);
    }, this.options.ackTimeoutMs);
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.command({ type: "ping" }, ws).then(
        () => {
          clearTimeout(opening);
          if (this.ws === ws) this.becameLive();
        },
        () => {}, // the close handler decides what happens next
      );
    };
    ws.onmessage = (message) => {
      if (this.ws !== ws || typeof message.data !== "string") return;
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      this.onEvent(event);
    };
    ws.onclose = (close) => {
      clearTimeout(opening);
      if (this.ws !== ws) return;
      this.closed(close.code);
    };
    ws.onerror = () => {}; // a close event always follows
    return true;
  }

  becameLive() {
    this.live = true;
    this.stats.wsLive += 1;
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => this.check(this.options.ackTimeoutMs), this.options.heartbeatMs);
    this.onLive();
  }

  /** Closes the socket on purpose (sign-out). Nothing is reported; pending commands are the caller's. */
  close() {
    clearInterval(this.heartbeatTimer);
    const ws = this.ws;
    this.ws = null;
    this.live = false;
    if (ws) {
      detach(ws);
      ws.close(1000);
    }
  }

  /** Gives up on `ws` at once (if it is still the current socket) and reports the close. */
  abandon(ws, code) {
    if (this.ws !== ws) return;
    detach(ws);
    try {
      ws.close(code === 1000 ? 1000 : 4000);
    } catch {
      // already closed
    }
    this.closed(code);
  }

  closed(code) {
    const wasLive = this.live;
    this.ws = null;
    this.live = false;
    clearInterval(this.heartbeatTimer);
    this.acks.failSocketCommands({ code: "closed" });
    this.onClosed(code, wasLive);
  }

  /** Sends an application ping; a live socket that does not answer within `timeoutMs` is dropped. */
  check(timeoutMs) {
    const ws = this.ws;
    if (!ws || !this.live || this.pinging) return;
    this.pinging = true;
    this.command({ type: "ping" }, ws, timeoutMs)
      .catch((error) => {
        if (error?.code === "timeout") this.abandon(ws, 4000);
      })
      .finally(() => {
        this.pinging = false;
      });
  }

  /**
   * Sends a command on `ws` and resolves with its ack; rejects with the error event, or
   * {code: "timeout"} / {code: "closed"}. The caller decides whether a timeout gives the socket up.
   */
  command(body, ws = this.ws, timeoutMs = this.options.ackTimeoutMs) {
    return new Promise((resolve, reject) => {
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        reject({ code: "closed" });
        return;
      }
      const id = body.id ?? `c${++this.commandCounter}-${Date.now().toString(36)}`;
      const timer = setTimeout(() => {
        this.acks.expire(id, timer);
        reject({ code: "timeout" });
      }, timeoutMs);
      this.acks.wait(id, { timer, ws, onAck: resolve, onError: reject });
      try {
        ws.send(JSON.stringify({ ...body, id }));
      } catch {
        clearTimeout(timer);
        this.acks.forget(id);
        reject({ code: "closed" });
      }
    });
  }

  /** Passes a renewed token to the live socket (`auth.refresh`); null when there is none. */
  async refreshToken(token) {
    const ws = this.ws;
    if (!ws || !this.live) return null;
    try {
      const ack = await this.command({ type: "auth.refresh", token }, ws);
      this.stats.authRefreshes += 1;
      this.stats.lastRefreshExpiresAt = ack.expiresAt ?? 0;
      return ack;
    } catch (error) {
      if (error?.code === "unauthorized") this.abandon(ws, 4000); // reconnects with the new token
      throw error;
    }
  }
}

function detach(ws) {
  ws.onopen = null;
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = null;
}
