// The connection manager (the plan's "useWebSocket hook"): one object that keeps the patient
// connected and delivers every event of every answer exactly once, whatever the network does.
//
// - WebSocket first (`/v1/ws`, token in the `medview.bearer.` subprotocol). A socket counts as
//   live once a `ping` command is acknowledged, which also proves the token was accepted.
// - Lost sockets are reopened with exponential backoff and full jitter (Backoff).
// - Messages go through an outbox, one at a time and in order; each keeps its idempotency id
//   until the server acknowledges it, so a resend after a drop re-attaches instead of asking
//   twice. Messages typed while offline simply wait in the outbox.
// - Each answer is followed by (streamId, lastSeq). Events with seq <= lastSeq are dropped, so a
//   replayed or resumed stream shows each chunk once. After a reconnect every unfinished stream
//   is resumed from its lastSeq (`stream.resume`, or `GET /v1/streams/{id}?after=` on SSE).
// - When the WebSocket cannot connect (but plain HTTP can) or keeps dropping, the manager falls
//   back to Server-Sent Events over fetch(), and tries the WebSocket again later.
//
// The connection state is one of: connecting, live, reconnecting, offline, fallback.

import { Backoff } from "./backoff.js";
import { readEventStream } from "./sse.js";
import { errorFrom, reachable } from "./api.js";
import { AuthError } from "./auth.js";
import { newId } from "./ids.js";

export const ConnectionState = Object.freeze({
  CONNECTING: "connecting",
  LIVE: "live",
  RECONNECTING: "reconnecting",
  OFFLINE: "offline",
  FALLBACK: "fallback",
});

/** Tunables. Tests and docs/WEB.md refer to these names. */
export const DEFAULT_OPTIONS = Object.freeze({
  /** Backoff: first ceiling, largest ceiling, and retries before waiting for the patient. */
  backoffBaseMs: 500,
  backoffCapMs: 15_000,
  maxAttempts: 20,
  /** Fall back to SSE after this many WebSocket attempts in a row that never got live... */
  wsFailuresBeforeFallback: 2,
  /** ...or after this many drops of a live socket within `dropWindowMs` (HTTP still fine). */
  dropsBeforeFallback: 3,
  dropWindowMs: 120_000,
  /** In fallback, try the WebSocket again after about this long (doubling, up to 10 minutes). */
  wsRetryMs: 60_000,
  /** Application ping on a live socket: proves it still works (phones lose sockets silently). */
  heartbeatMs: 25_000,
  /** A command not acknowledged within this time means the socket is dead. */
  ackTimeoutMs: 10_000,
});

const TERMINAL = (event) => event.type === "stream.end" || (event.type === "error" && typeof event.seq === "number");

/** Error codes (without seq) after which the same command may be sent again later. */
const RETRY_LATER = new Set(["too_many_streams", "storage_unavailable", "shutting_down", "token_expired", "internal"]);

/**
 * @typedef {object} Outgoing       a patient message on its way
 * @property {string} id            idempotency key (crypto.randomUUID(), see ids.js)
 * @property {string} text
 * @property {{id: string | null}} conversation  shared by the messages of one conversation, so
 *           a message queued behind the one that creates a conversation is sent into it
 * @property {"queued"|"sent"} phase
 * @property {number} tries
 *
 * @typedef {object} StreamRecord
 * @property {number} lastSeq
 * @property {boolean} done
 * @property {AbortController | null} sse   an open SSE response for this stream
 *
 * @typedef {object} Handlers
 * @property {(state: string, info: {manual: boolean}) => void} onState
 * @property {(event: any) => void} onEvent           acks of chat.send and stream events, once each
 * @property {(item: Outgoing, error: any) => void} onSendFailed   refused for good (not retryable)
 * @property {(item: Outgoing, error: any) => void} onSendDelayed  refused for now; will retry
 * @property {(item: Outgoing) => void} onConversationCreated      SSE path created it
 * @property {(streamId: string, error: any) => void} onStreamLost  cannot be resumed
 * @property {() => void} [onIdle]   the server closed the socket for inactivity (4408)
 */

export class ConnectionManager {
  /**
   * @param {{auth: import("./auth.js").Auth, api: import("./api.js").Api, options?: Partial<typeof DEFAULT_OPTIONS>, handlers: Handlers}} setup
   */
  constructor({ auth, api, options = {}, handlers }) {
    this.auth = auth;
    this.api = api;
    this.options = { ...DEFAULT_OPTIONS, ...options };
    this.handlers = handlers;
    this.state = ConnectionState.CONNECTING;
    /** "ws" or "sse": the transport new messages use. */
    this.mode = "ws";
    /** @type {WebSocket | null} */
    this.ws = null;
    this.wsLive = false;
    /** @type {Outgoing[]} */
    this.outbox = [];
    /** @type {Outgoing | null} */
    this.inFlight = null;
    /** @type {Map<string, StreamRecord>} */
    this.streams = new Map();
    /** Commands waiting for their ack: id → callbacks. */
    this.pending = new Map();
    /** Streams whose cancel could not be delivered yet. */
    this.pendingCancels = new Set();
    this.backoff = new Backoff({
      baseMs: this.options.backoffBaseMs,
      capMs: this.options.backoffCapMs,
      maxAttempts: this.options.maxAttempts,
    });
    this.retryTimer = 0;
    this.wsRetryTimer = 0;
    this.wsRetryDelay = this.options.wsRetryMs;
    this.heartbeatTimer = 0;
    this.sendRetryTimer = 0;
    this.wsFailures = 0;
    /** Sockets refused with 4401 in a row. */
    this.refusals = 0;
    /** @type {number[]} */
    this.drops = [];
    this.probing = false;
    this.manualOnly = false;
    this.reportedManual = false;
    this.stopped = true;
    this.commandCounter = 0;
    /** Counters for docs, debugging and the browser tests (exposed only with ?test=1). */
    this.stats = {
      wsAttempts: 0, wsLive: 0, drops: 0, fallbacks: 0, chatSends: 0, resumes: 0,
      sseSends: 0, sseResumes: 0, duplicatesDropped: 0, authRefreshes: 0, lastRefreshExpiresAt: 0,
    };

    this.onOnline = () => this.wake();
    this.onOffline = () => this.checkSocket(3000);
    this.onVisible = () => {
      if (document.visibilityState === "visible") this.wake();
    };
    auth.onRenewed((token) => {
      this.refreshSocketToken(token).catch(() => {});
    });
  }

  // ---------------------------------------------------------------- public API

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener("online", this.onOnline);
    window.addEventListener("offline", this.onOffline);
    document.addEventListener("visibilitychange", this.onVisible);
    this.setState(ConnectionState.CONNECTING);
    this.connectWs();
  }

  /** Closes everything (sign-out). Queued messages are dropped. */
  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("offline", this.onOffline);
    document.removeEventListener("visibilitychange", this.onVisible);
    clearTimeout(this.retryTimer);
    clearTimeout(this.wsRetryTimer);
    clearTimeout(this.sendRetryTimer);
    clearInterval(this.heartbeatTimer);
    const ws = this.ws;
    this.ws = null;
    this.wsLive = false;
    if (ws) {
      detach(ws);
      ws.close(1000);
    }
    for (const record of this.streams.values()) record.sse?.abort();
    this.streams.clear();
    this.failPending({ code: "closed" });
    this.outbox = [];
    this.inFlight = null;
  }

  /**
   * Queues a patient message and returns its idempotency id (a new UUID unless given).
   * @param {{id?: string, text: string, conversation: {id: string | null}}} message
   */
  send({ id = newId(), text, conversation }) {
    /** @type {Outgoing} */
    const item = { id, text, conversation, phase: "queued", tries: 0 };
    this.outbox.push(item);
    this.pump();
    if (this.manualOnly) this.reconnectNow();
    return item.id;
  }

  /** Removes a message that has not been sent yet. True if it was still waiting. */
  unqueue(id) {
    const index = this.outbox.findIndex((item) => item.id === id);
    if (index < 0 || this.outbox[index] === this.inFlight) return false;
    this.outbox.splice(index, 1);
    return true;
  }

  hasUnsent() {
    return this.outbox.length > 0;
  }

  /** Asks the server to stop an answer. Delivered later if the connection is down now. */
  cancel(streamId) {
    if (this.mode === "ws" && this.wsLive) {
      this.command({ type: "stream.cancel", streamId }).catch((error) => {
        if (error?.code === "closed" || error?.code === "timeout") this.pendingCancels.add(streamId);
      });
      return;
    }
    this.api.cancelStream(streamId).catch((error) => {
      if (error instanceof TypeError) this.pendingCancels.add(streamId);
    });
  }

  /** Follows a stream from `after` (e.g. an answer still streaming when a conversation opens). */
  follow(streamId, after = 0) {
    const existing = this.streams.get(streamId);
    if (existing && !existing.done) return;
    this.streams.set(streamId, { lastSeq: after, done: false, sse: null });
    this.resume(streamId);
  }

  /** Stops caring about a stream (its conversation was closed or deleted). */
  release(streamId) {
    const record = this.streams.get(streamId);
    if (!record) return;
    record.sse?.abort();
    this.streams.delete(streamId);
  }

  /** Feeds recorded events through the same path as network events (test hook). */
  inject(event) {
    if (typeof event?.streamId === "string" && !this.streams.has(event.streamId)) {
      this.streams.set(event.streamId, { lastSeq: 0, done: false, sse: null });
    }
    this.dispatch(event);
  }

  /** The patient asked to try now (or the network came back). */
  reconnectNow() {
    this.manualOnly = false;
    this.backoff.reset();
    clearTimeout(this.retryTimer);
    if (this.stopped) return;
    if (this.mode === "ws") {
      if (!this.ws) {
        this.setState(ConnectionState.RECONNECTING);
        this.connectWs();
      }
    } else {
      this.recoverFallback();
    }
  }

  /** Test hook: closes the socket from the client side, as a dropped network would. */
  debugDropSocket() {
    const ws = this.ws;
    if (ws) this.abandon(ws, 4000);
  }

  // ---------------------------------------------------------------- state

  setState(state) {
    if (this.state === state && this.reportedManual === this.manualOnly) return;
    this.state = state;
    this.reportedManual = this.manualOnly;
    this.handlers.onState(state, { manual: this.manualOnly });
  }

  // ---------------------------------------------------------------- WebSocket

  async connectWs() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.retryTimer);
    let token;
    try {
      token = await this.auth.bearer();
    } catch (error) {
      if (error instanceof AuthError || error?.name === "AuthError") return; // the session ended; the app shows sign-in
      this.wsAttemptFailed();
      return;
    }
    if (this.stopped || this.ws) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let ws;
    this.stats.wsAttempts += 1;
    try {
      ws = new WebSocket(`${scheme}//${location.host}/v1/ws`, ["medview.v1", "medview.bearer." + token]);
    } catch {
      this.wsAttemptFailed();
      return;
    }
    this.ws = ws;
    this.lastConnectionError = null;
    // A socket that neither opens nor closes in time (a black-holed network) is given up.
    const opening = setTimeout(() => {
      if (this.ws === ws && !this.wsLive) this.abandon(ws, 4000);
    }, this.options.ackTimeoutMs);
    ws.onopen = () => {
      if (this.ws !== ws) return;
      // The server serves commands only on authenticated sockets; the ack proves it.
      this.command({ type: "ping" }, ws).then(
        () => {
          clearTimeout(opening);
          if (this.ws === ws) this.onLive();
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
      this.dispatch(event);
    };
    ws.onclose = (close) => {
      clearTimeout(opening);
      if (this.ws !== ws) return;
      this.onWsClosed(close.code);
    };
    ws.onerror = () => {}; // a close event always follows
  }

  onLive() {
    this.wsLive = true;
    this.refusals = 0;
    this.stats.wsLive += 1;
    this.backoff.reset();
    this.wsFailures = 0;
    this.manualOnly = false;
    const wasFallback = this.mode === "sse";
    this.mode = "ws";
    clearTimeout(this.wsRetryTimer);
    this.wsRetryDelay = this.options.wsRetryMs;
    this.setState(ConnectionState.LIVE);
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => this.checkSocket(this.options.ackTimeoutMs), this.options.heartbeatMs);
    for (const streamId of this.pendingCancels) this.cancelLater(streamId);
    this.pendingCancels.clear();
    for (const [streamId, record] of this.streams) {
      // Streams still read over an SSE response (from fallback) finish there.
      if (!record.done && !record.sse) this.resume(streamId);
    }
    if (wasFallback && this.inFlight) return; // an SSE send is in progress; pump continues after it
    this.pump();
  }

  /** A WebSocket attempt failed before a socket existed (no token, bad URL). */
  wsAttemptFailed() {
    if (this.mode === "sse") this.scheduleWsRetry();
    else this.afterWsFailure(null, false);
  }

  cancelLater(streamId) {
    this.command({ type: "stream.cancel", streamId }).catch(() => {});
  }

  /** Sends an application ping; a socket that does not answer in time is dropped. */
  checkSocket(timeoutMs) {
    const ws = this.ws;
    if (!ws || !this.wsLive || this.pinging) return;
    this.pinging = true;
    this.command({ type: "ping" }, ws, timeoutMs)
      .catch((error) => {
        if (error?.code === "timeout" && this.ws === ws) this.abandon(ws, 4000);
      })
      .finally(() => {
        this.pinging = false;
      });
  }

  /** Gives up on a socket at once, without waiting for a close handshake a dead network never finishes. */
  abandon(ws, code) {
    if (this.ws !== ws) return;
    detach(ws);
    try {
      ws.close(code === 1000 ? 1000 : 4000);
    } catch {
      // already closed
    }
    this.onWsClosed(code);
  }

  async onWsClosed(code) {
    const wasLive = this.wsLive;
    this.ws = null;
    this.wsLive = false;
    clearInterval(this.heartbeatTimer);
    this.failPending({ code: "closed" });
    if (this.stopped) return;

    if (this.mode === "sse") {
      // A background retry of the WebSocket from fallback did not work out; try again later.
      this.scheduleWsRetry();
      return;
    }
    if (code === 4408) {
      // Idle logoff: nobody used this page for the server's idle timeout. Reconnecting on our
      // own would undo it; the app signs the patient out instead (docs/WEB.md).
      this.stop();
      this.handlers.onIdle?.();
      return;
    }
    if (code === 4401) {
      // The token was refused or ran out: renew it, then reconnect quickly. A server that keeps
      // refusing fresh tokens will not be argued with: the patient signs in again.
      this.refusals += 1;
      this.setState(ConnectionState.RECONNECTING);
      if (this.refusals >= 3) {
        this.auth.end("Your session could not be verified. Please sign in again.");
        return;
      }
      try {
        await this.auth.renew();
      } catch (error) {
        if (error instanceof AuthError || error?.name === "AuthError") return;
      }
      this.scheduleReconnect();
      return;
    }
    this.afterWsFailure(code, wasLive);
  }

  /** Decides between reconnecting, offline and fallback after a socket failed or dropped. */
  async afterWsFailure(code, wasLive) {
    if (this.stopped || this.mode !== "ws") return;
    this.setState(navigator.onLine === false ? ConnectionState.OFFLINE : ConnectionState.RECONNECTING);
    const httpWorks = navigator.onLine !== false && (await reachable());
    if (this.stopped || this.ws || this.mode !== "ws") return;
    if (!httpWorks) {
      this.setState(ConnectionState.OFFLINE);
      this.scheduleReconnect();
      return;
    }
    const now = Date.now();
    if (wasLive) {
      this.stats.drops += 1;
      this.drops = this.drops.filter((at) => now - at < this.options.dropWindowMs);
      this.drops.push(now);
    } else if (code !== 4429) {
      // 4429 (too many connections) says nothing about whether WebSockets work here.
      this.wsFailures += 1;
    }
    const cannotConnect = this.wsFailures >= this.options.wsFailuresBeforeFallback;
    const keepsDropping = this.drops.length >= this.options.dropsBeforeFallback;
    if (cannotConnect || keepsDropping) {
      this.enterFallback();
      return;
    }
    this.setState(ConnectionState.RECONNECTING);
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    clearTimeout(this.retryTimer);
    if (this.stopped) return;
    if (this.backoff.exhausted()) {
      // Stop retrying on our own; the patient's "Try again", a send, or the network coming
      // back restarts it.
      this.manualOnly = true;
      this.setState(ConnectionState.OFFLINE);
      return;
    }
    const delay = this.backoff.next();
    this.retryTimer = setTimeout(() => this.connectWs(), delay);
  }

  wake() {
    if (this.stopped) return;
    if (this.mode === "ws") {
      if (this.ws && this.wsLive) this.checkSocket(3000);
      else if (!this.ws) this.reconnectNow();
    } else if (this.state === ConnectionState.OFFLINE) {
      this.recoverFallback();
    }
  }

  /**
   * Sends a command on the socket and resolves with its ack; rejects with the error event, or
   * {code: "timeout"} / {code: "closed"}.
   */
  command(body, ws = this.ws, timeoutMs = this.options.ackTimeoutMs) {
    return new Promise((resolve, reject) => {
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        reject({ code: "closed" });
        return;
      }
      const id = body.id ?? `c${++this.commandCounter}-${Date.now().toString(36)}`;
      const timer = setTimeout(() => {
        if (this.pending.get(id)?.timer === timer) this.pending.delete(id);
        reject({ code: "timeout" });
      }, timeoutMs);
      this.pending.set(id, { timer, ws, onAck: resolve, onError: reject });
      try {
        ws.send(JSON.stringify({ ...body, id }));
      } catch {
        clearTimeout(timer);
        this.pending.delete(id);
        reject({ code: "closed" });
      }
    });
  }

  failPending(reason) {
    for (const [id, entry] of this.pending) {
      if (entry.ws === undefined) continue; // SSE sends are settled by their own response
      clearTimeout(entry.timer);
      this.pending.delete(id);
      entry.onError(reason);
    }
  }

  /** Passes a renewed token to the open socket (`auth.refresh`). */
  async refreshSocketToken(token) {
    const ws = this.ws;
    if (!ws || !this.wsLive) return null;
    try {
      const ack = await this.command({ type: "auth.refresh", token }, ws);
      this.stats.authRefreshes += 1;
      this.stats.lastRefreshExpiresAt = ack.expiresAt ?? 0;
      return ack;
    } catch (error) {
      if (error?.code === "unauthorized" && this.ws === ws) this.abandon(ws, 4000); // reconnects with the new token
      throw error;
    }
  }

  // ---------------------------------------------------------------- events

  dispatch(event) {
    if (!event || typeof event !== "object" || typeof event.type !== "string") return;
    if (event.type === "ack") {
      const entry = typeof event.id === "string" ? this.pending.get(event.id) : undefined;
      if (entry) {
        this.pending.delete(event.id);
        clearTimeout(entry.timer);
        entry.onAck(event);
      }
      return;
    }
    if (event.type === "error" && typeof event.seq !== "number") {
      const entry = typeof event.id === "string" ? this.pending.get(event.id) : undefined;
      if (entry) {
        this.pending.delete(event.id);
        clearTimeout(entry.timer);
        entry.onError(event);
      } else {
        this.lastConnectionError = event; // e.g. token_expired or idle_timeout before a close
      }
      return;
    }
    if (typeof event.streamId !== "string" || typeof event.seq !== "number") return;
    const record = this.streams.get(event.streamId);
    if (!record) return; // a stream nobody follows any more
    if (event.seq <= record.lastSeq) {
      this.stats.duplicatesDropped += 1;
      return;
    }
    record.lastSeq = event.seq;
    if (TERMINAL(event)) record.done = true;
    this.handlers.onEvent(event);
  }

  // ---------------------------------------------------------------- outbox

  pump() {
    if (this.stopped || this.inFlight) return;
    const item = this.outbox[0];
    if (!item) return;
    if (this.mode === "ws") {
      if (!this.wsLive) return;
      this.inFlight = item;
      this.sendWs(item);
    } else if (this.state === ConnectionState.FALLBACK) {
      this.inFlight = item;
      this.sendSse(item);
    }
  }

  sendWs(item) {
    item.phase = "sent";
    item.tries += 1;
    this.stats.chatSends += 1;
    const command = { type: "chat.send", id: item.id, text: item.text };
    if (item.conversation.id) command.conversationId = item.conversation.id;
    const ws = this.ws;
    this.command(command, ws).then(
      (ack) => this.accepted(item, ack),
      (error) => {
        if (error?.code === "timeout" && this.ws === ws) this.abandon(ws, 4000);
        this.sendFailed(item, error);
      },
    );
  }

  /** The server stored the message: it leaves the outbox, its stream is followed. */
  accepted(item, ack) {
    const index = this.outbox.indexOf(item);
    if (index >= 0) this.outbox.splice(index, 1);
    if (this.inFlight === item) this.inFlight = null;
    if (!item.conversation.id && typeof ack.conversationId === "string") item.conversation.id = ack.conversationId;
    if (typeof ack.streamId === "string" && !this.streams.has(ack.streamId)) {
      this.streams.set(ack.streamId, { lastSeq: 0, done: false, sse: null });
    }
    this.handlers.onEvent(ack);
    this.pump();
  }

  sendFailed(item, error) {
    if (this.inFlight === item) this.inFlight = null;
    item.phase = "queued";
    const code = error?.code;
    if (code === "closed" || code === "timeout" || code === "network") {
      // The connection went away: the message stays first in line and is sent again, with
      // the same id, when the connection is back.
      return;
    }
    if (error?.retryable || RETRY_LATER.has(code)) {
      this.handlers.onSendDelayed(item, error);
      clearTimeout(this.sendRetryTimer);
      const delay = Math.min(15_000, 1000 * 2 ** Math.min(item.tries, 4));
      this.sendRetryTimer = setTimeout(() => this.pump(), delay);
      return;
    }
    const index = this.outbox.indexOf(item);
    if (index >= 0) this.outbox.splice(index, 1);
    this.handlers.onSendFailed(item, error);
    this.pump();
  }

  resume(streamId) {
    const record = this.streams.get(streamId);
    if (!record || record.done || this.stopped) return;
    if (this.mode === "ws") {
      if (!this.wsLive) return; // resumed when the socket is live again
      this.stats.resumes += 1;
      const ws = this.ws;
      this.command({ type: "stream.resume", streamId, after: record.lastSeq }, ws).catch((error) => {
        if (error?.code === "not_found") this.lost(streamId, error);
        else if (error?.code === "timeout" && this.ws === ws) this.abandon(ws, 4000);
        else if (error?.retryable) setTimeout(() => this.resume(streamId), 2000);
      });
    } else if (this.state === ConnectionState.FALLBACK && !record.sse) {
      this.resumeSse(streamId);
    }
  }

  lost(streamId, error) {
    const record = this.streams.get(streamId);
    if (record) {
      record.done = true;
      record.sse?.abort();
    }
    this.handlers.onStreamLost(streamId, error);
  }

  // ---------------------------------------------------------------- SSE fallback

  enterFallback() {
    if (this.stopped) return;
    this.stats.fallbacks += 1;
    this.mode = "sse";
    this.backoff.reset();
    this.setState(ConnectionState.FALLBACK);
    for (const streamId of this.pendingCancels) this.api.cancelStream(streamId).catch(() => {});
    this.pendingCancels.clear();
    for (const [streamId, record] of this.streams) {
      if (!record.done) this.resume(streamId);
    }
    this.pump();
    this.scheduleWsRetry();
  }

  scheduleWsRetry() {
    clearTimeout(this.wsRetryTimer);
    if (this.stopped) return;
    const delay = this.wsRetryDelay * (0.5 + Math.random() * 0.5);
    this.wsRetryDelay = Math.min(this.wsRetryDelay * 2, 600_000);
    this.wsRetryTimer = setTimeout(() => {
      if (this.mode === "sse" && !this.ws && this.state === ConnectionState.FALLBACK) this.connectWs();
      else if (this.mode === "sse") this.scheduleWsRetry();
    }, delay);
  }

  async sendSse(item) {
    item.phase = "sent";
    item.tries += 1;
    this.stats.sseSends += 1;
    let record = null;
    const controller = new AbortController();
    try {
      if (!item.conversation.id) {
        const created = await this.api.createConversation(titleFrom(item.text));
        if (!item.conversation.id) {
          item.conversation.id = created.id;
          this.handlers.onConversationCreated(item);
        }
      }
      let acked = false;
      this.pending.set(item.id, {
        timer: 0,
        onAck: (ack) => {
          acked = true;
          this.accepted(item, ack);
        },
        onError: () => {},
      });
      const response = await this.api.request(`/v1/conversations/${encodeURIComponent(item.conversation.id)}/messages`, {
        method: "POST",
        headers: { Accept: "text/event-stream", "Content-Type": "application/json" },
        body: JSON.stringify({ id: item.id, text: item.text }),
        signal: controller.signal,
      });
      if (!response.ok) {
        this.pending.delete(item.id);
        const error = await errorFrom(response);
        this.sendFailed(item, { type: "error", code: error.code, message: error.message, retryable: error.retryable });
        return;
      }
      const streamId = response.headers.get("X-Stream-Id");
      if (streamId) {
        record = this.streams.get(streamId) ?? { lastSeq: 0, done: false, sse: null };
        this.streams.set(streamId, record);
        record.sse = controller;
      }
      await readEventStream(response, (event) => this.dispatch(event));
      this.pending.delete(item.id);
      if (record) record.sse = null;
      if (!acked) {
        this.sendFailed(item, { code: "network" });
        this.sseTrouble();
      } else if (record && !record.done && streamId) {
        this.resume(streamId); // the response ended early: pick up where it stopped
      }
    } catch (error) {
      this.pending.delete(item.id);
      if (record) record.sse = null;
      if (controller.signal.aborted) return;
      if (error?.name === "ApiError" && !error.retryable) {
        this.sendFailed(item, { type: "error", code: error.code, message: error.message, retryable: false });
        return;
      }
      if (error instanceof AuthError || error?.name === "AuthError") return;
      if (this.inFlight === item) this.sendFailed(item, { code: "network" });
      this.sseTrouble();
    }
  }

  async resumeSse(streamId) {
    const record = this.streams.get(streamId);
    if (!record || record.done || record.sse) return;
    const controller = new AbortController();
    record.sse = controller;
    this.stats.sseResumes += 1;
    try {
      const response = await this.api.request(`/v1/streams/${encodeURIComponent(streamId)}?after=${record.lastSeq}`, {
        headers: { Accept: "text/event-stream", "Last-Event-ID": String(record.lastSeq) },
        signal: controller.signal,
      });
      if (!response.ok) {
        record.sse = null;
        const error = await errorFrom(response);
        if (error.code === "not_found") this.lost(streamId, error);
        else setTimeout(() => this.resume(streamId), 2000);
        return;
      }
      await readEventStream(response, (event) => this.dispatch(event));
      record.sse = null;
      if (!record.done) this.resume(streamId);
    } catch {
      record.sse = null;
      if (controller.signal.aborted || record.done) return;
      this.sseTrouble();
    }
  }

  /** An SSE request failed at the network level: find out whether we are offline. */
  async sseTrouble() {
    if (this.probing || this.stopped || this.mode !== "sse") return;
    this.probing = true;
    try {
      if (navigator.onLine !== false && (await reachable())) {
        // The server is there; retry what was interrupted after a short, jittered pause.
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.recoverFallback(), this.backoff.next());
        return;
      }
      this.setState(ConnectionState.OFFLINE);
      clearTimeout(this.retryTimer);
      if (this.backoff.exhausted()) {
        this.manualOnly = true;
        this.setState(ConnectionState.OFFLINE);
        return;
      }
      this.retryTimer = setTimeout(() => this.recoverFallback(), this.backoff.next());
    } finally {
      this.probing = false;
    }
  }

  async recoverFallback() {
    if (this.stopped || this.mode !== "sse") return;
    if (!(await reachable())) {
      this.sseTrouble();
      return;
    }
    const wasOffline = this.state === ConnectionState.OFFLINE;
    this.manualOnly = false;
    this.backoff.reset();
    this.setState(ConnectionState.FALLBACK);
    for (const [streamId, record] of this.streams) {
      if (!record.done && !record.sse) this.resume(streamId);
    }
    this.pump();
    // Back from offline, the network may have changed: the WebSocket may work now.
    if (wasOffline && !this.ws) this.connectWs();
  }
}

function detach(ws) {
  ws.onopen = null;
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = null;
}

/** A conversation title like the server's: whitespace collapsed, at most 60 characters. */
export function titleFrom(text) {
  const collapsed = text.replace(/\s+/g, " ").trim();
  const characters = Array.from(collapsed);
  return characters.length <= 60 ? collapsed : characters.slice(0, 59).join("") + "…";
}
