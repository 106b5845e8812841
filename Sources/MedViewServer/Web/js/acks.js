// Commands waiting for their ack. Every command the page sends carries an `id`; the server
// answers it with `{"type": "ack", "id": …}` or with an `error` that has the same `id` and no
// `seq` (PROTOCOL.md). This registry matches those answers to whoever is waiting.
//
// Both transports use it: WebSocket commands (socket.js, which also times them out), and a
// message sent over SSE (sse-fallback.js), whose ack arrives in its own response body.

/**
 * @typedef {object} Waiting
 * @property {number} timer                   the ack timeout (0: none)
 * @property {WebSocket} [ws]                 the socket the command went out on; absent for an
 *           SSE send, which its own response settles (a closing socket does not fail it)
 * @property {(ack: any) => void} onAck
 * @property {(error: any) => void} onError
 */

export class Acks {
  constructor() {
    /** @type {Map<string, Waiting>} */
    this.waiting = new Map();
  }

  /** Waits for the answer to command `id`. */
  wait(id, /** @type {Waiting} */ entry) {
    this.waiting.set(id, entry);
  }

  /** Stops waiting for `id` (without settling it). */
  forget(id) {
    this.waiting.delete(id);
  }

  /** A command's ack timeout fired: forgets it, unless `id` was reused for a newer wait. */
  expire(id, timer) {
    if (this.waiting.get(id)?.timer === timer) this.waiting.delete(id);
  }

  /**
   * Settles a waiting command with `event` if `event` is an ack or a command error (an `error`
   * without `seq`). True when it was one of those, whether or not anyone still waited for it;
   * false for stream events, which the caller handles.
   */
  settle(event) {
    const isAck = event.type === "ack";
    if (!isAck && !(event.type === "error" && typeof event.seq !== "number")) return false;
    const entry = typeof event.id === "string" ? this.waiting.get(event.id) : undefined;
    if (entry) {
      this.waiting.delete(event.id);
      clearTimeout(entry.timer);
      if (isAck) entry.onAck(event);
      else entry.onError(event);
    }
    // A command error nobody waits for (e.g. token_expired or idle_timeout just before a
    // close) needs nothing: the close that follows says what to do.
    return true;
  }

  /** The socket went away: every command sent on a socket fails with `reason`. */
  failSocketCommands(reason) {
    for (const [id, entry] of this.waiting) {
      if (entry.ws === undefined) continue; // SSE sends are settled by their own response
      clearTimeout(entry.timer);
      this.waiting.delete(id);
      entry.onError(reason);
    }
  }
}
