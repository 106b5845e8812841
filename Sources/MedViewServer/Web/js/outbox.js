// The outbox: patient messages on their way, sent one at a time and in order.
//
// The next message goes out only after the previous one is acknowledged, so a second message
// typed offline into a new conversation goes into the conversation the first one creates (the
// messages of one conversation share one `{id}` object, filled in from the first ack). A message
// leaves the outbox only when the server acknowledges it (it is stored). After a drop it is sent
// again with the same id, so the server answers `duplicate: true` instead of asking twice. A
// message refused for now is retried later with the same id; one refused for good is dropped
// and reported.
//
// Which transport carries a message is not decided here: `sender()` (from connection.js) gives
// the function that sends one message now, or null while nothing can.

/** Error codes (without seq) after which the same message may be sent again later. */
const RETRY_LATER = new Set(["too_many_streams", "overloaded", "rate_limited", "storage_unavailable", "shutting_down", "token_expired", "internal"]);

/**
 * @typedef {object} Outgoing       a patient message on its way
 * @property {string} id            idempotency key (crypto.randomUUID(), see ids.js)
 * @property {string} text
 * @property {{id: string | null}} conversation  shared by the messages of one conversation, so
 *           a message queued behind the one that creates a conversation is sent into it
 * @property {"queued"|"sent"} phase
 * @property {number} tries
 *
 * @typedef {object} OutboxSetup
 * @property {() => ((item: Outgoing) => void) | null} sender  how to send a message now, if at all
 * @property {(item: Outgoing, ack: any) => void} onAccepted   the server stored it
 * @property {(item: Outgoing, error: any) => void} onDelayed  refused for now; will retry
 * @property {(item: Outgoing, error: any) => void} onFailed   refused for good (not retryable)
 */

export class Outbox {
  /** @param {OutboxSetup} setup */
  constructor({ sender, onAccepted, onDelayed, onFailed }) {
    this.sender = sender;
    this.onAccepted = onAccepted;
    this.onDelayed = onDelayed;
    this.onFailed = onFailed;
    /** @type {Outgoing[]} */
    this.items = [];
    /** @type {Outgoing | null} the message sent and not yet acknowledged or refused */
    this.inFlight = null;
    this.retryTimer = 0;
  }

  get length() {
    return this.items.length;
  }

  /** Queues a message (in order); it goes out when the head of the line is free. */
  add(/** @type {Outgoing} */ item) {
    this.items.push(item);
  }

  /** Removes a message that has not been sent yet. True if it was still waiting. */
  remove(id) {
    const index = this.items.findIndex((item) => item.id === id);
    if (index < 0 || this.items[index] === this.inFlight) return false;
    this.items.splice(index, 1);
    return true;
  }

  /** Drops every message (sign-out). */
  clear() {
    clearTimeout(this.retryTimer);
    this.items = [];
    this.inFlight = null;
  }

  /** Sends the first message, unless one is in flight or nothing can carry it now. */
  pump() {
    if (this.inFlight) return;
    const item = this.items[0];
    if (!item) return;
    const send = this.sender();
    if (!send) return;
    this.inFlight = item;
    item.phase = "sent";
    item.tries += 1;
    send(item);
  }

  /** The server stored the message: it leaves the outbox, and the next one may go. */
  accepted(item, ack) {
    this.discard(item);
    if (this.inFlight === item) this.inFlight = null;
    if (!item.conversation.id && typeof ack.conversationId === "string") item.conversation.id = ack.conversationId;
    this.onAccepted(item, ack);
    this.pump();
  }

  /** Sending failed with `error`: keep it first in line, retry it later, or drop it. */
  failed(item, error) {
    if (this.inFlight === item) this.inFlight = null;
    item.phase = "queued";
    const code = error?.code;
    if (code === "closed" || code === "timeout" || code === "network") {
      // The connection went away: the message stays first in line and is sent again, with
      // the same id, when the connection is back.
      return;
    }
    if (error?.retryable || RETRY_LATER.has(code)) {
      this.onDelayed(item, error);
      clearTimeout(this.retryTimer);
      // `rate_limited` says how long to wait (`retryAfter`, seconds); otherwise back off.
      const delay = Number.isInteger(error?.retryAfter) && error.retryAfter > 0
        ? error.retryAfter * 1000
        : Math.min(15_000, 1000 * 2 ** Math.min(item.tries, 4));
      this.retryTimer = setTimeout(() => this.pump(), delay);
      return;
    }
    this.discard(item);
    this.onFailed(item, error);
    this.pump();
  }

  discard(item) {
    const index = this.items.indexOf(item);
    if (index >= 0) this.items.splice(index, 1);
  }
}
