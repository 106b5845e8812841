// The connection manager (the plan's "useWebSocket hook"): keeps the patient connected and
// delivers every event of every answer exactly once, whatever the network does. It decides
// which transport is used and what happens when one fails; the work itself is done by:
//
// - socket.js        the WebSocket's lifecycle: open with the token, live after an acked ping,
//                    heartbeat, commands with ack timeouts, `auth.refresh`.
// - outbox.js        patient messages, one at a time and in order, each keeping its idempotency
//                    id until the server acknowledges it (acks.js matches acks to commands).
// - streams.js       (streamId, lastSeq) of every answer followed; duplicates are dropped.
// - sse-fallback.js  messages and resumes over Server-Sent Events when the WebSocket does not work.
//
// The rules it follows (docs/WEB.md, "The connection manager"):
// - WebSocket first. Lost sockets are reopened with exponential backoff and full jitter
//   (backoff.js); `fetch("/v1/client-config")` tells "WebSocket blocked" from "network down".
// - When the WebSocket cannot connect (but plain HTTP can) or keeps dropping, fall back to SSE,
//   and try the WebSocket again later.
// - After any reconnect, every unfinished answer is resumed from its lastSeq, and the outbox
//   sends its first message again (same id).
//
// The connection state is one of: connecting, live, reconnecting, offline, fallback.

import { Backoff } from "./backoff.js";
import { reachable } from "./api.js";
import { AuthError } from "./auth.js";
import { newId } from "./ids.js";
import { Acks } from "./acks.js";
import { SocketLink } from "./socket.js";
import { Outbox } from "./outbox.js";
import { Streams } from "./streams.js";
import { SseTransport } from "./sse-fallback.js";

export { titleFrom } from "./sse-fallback.js";

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

/**
 * @typedef {import("./outbox.js").Outgoing} Outgoing
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
    /** Counters for docs, debugging and the browser tests (exposed only with ?test=1). */
    this.stats = {
      wsAttempts: 0, wsLive: 0, drops: 0, fallbacks: 0, chatSends: 0, resumes: 0,
      sseSends: 0, sseResumes: 0, duplicatesDropped: 0, authRefreshes: 0, lastRefreshExpiresAt: 0,
    };
    this.acks = new Acks();
    this.streams = new Streams(this.stats);
    this.socket = new SocketLink({
      options: this.options,
      acks: this.acks,
      stats: this.stats,
      onLive: () => this.onLive(),
      onEvent: (event) => this.dispatch(event),
      onClosed: (code, wasLive) => this.onWsClosed(code, wasLive),
    });
    this.outbox = new Outbox({
      sender: () => this.sender(),
      onAccepted: (item, ack) => {
        if (typeof ack.streamId === "string") this.streams.ensure(ack.streamId);
        this.handlers.onEvent(ack);
      },
      onDelayed: (item, error) => this.handlers.onSendDelayed(item, error),
      onFailed: (item, error) => this.handlers.onSendFailed(item, error),
    });
    this.sse = new SseTransport({
      api,
      acks: this.acks,
      streams: this.streams,
      outbox: this.outbox,
      stats: this.stats,
      dispatch: (event) => this.dispatch(event),
      resume: (streamId) => this.resume(streamId),
      lost: (streamId, error) => this.lost(streamId, error),
      conversationCreated: (item) => this.handlers.onConversationCreated(item),
      trouble: () => this.sseTrouble(),
    });
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
    this.wsFailures = 0;
    /** Sockets refused with 4401 in a row. */
    this.refusals = 0;
    /** @type {number[]} */
    this.drops = [];
    this.probing = false;
    this.manualOnly = false;
    this.reportedManual = false;
    this.stopped = true;

    this.onOnline = () => this.wake();
    this.onOffline = () => this.socket.check(3000);
    this.onVisible = () => {
      if (document.visibilityState === "visible") this.wake();
    };
    auth.onRenewed((token) => {
      this.socket.refreshToken(token).catch(() => {});
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
    this.socket.close();
    this.streams.clear();
    this.acks.failSocketCommands({ code: "closed" });
    this.outbox.clear();
  }

  /**
   * Queues a patient message and returns its idempotency id (a new UUID unless given).
   * @param {{id?: string, text: string, conversation: {id: string | null}}} message
   */
  send({ id = newId(), text, conversation }) {
    this.outbox.add({ id, text, conversation, phase: "queued", tries: 0 });
    this.outbox.pump();
    if (this.manualOnly) this.reconnectNow();
    return id;
  }

  /** Removes a message that has not been sent yet. True if it was still waiting. */
  unqueue(id) {
    return this.outbox.remove(id);
  }

  hasUnsent() {
    return this.outbox.length > 0;
  }

  /** Asks the server to stop an answer. Delivered later if the connection is down now. */
  cancel(streamId) {
    if (this.mode === "ws" && this.socket.live) {
      this.socket.command({ type: "stream.cancel", streamId }).catch((error) => {
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
    this.streams.follow(streamId, after);
    this.resume(streamId);
  }

  /** Stops caring about a stream (its conversation was closed or deleted). */
  release(streamId) {
    this.streams.release(streamId);
  }

  /** Feeds recorded events through the same path as network events (test hook). */
  inject(event) {
    if (typeof event?.streamId === "string") this.streams.ensure(event.streamId);
    this.dispatch(event);
  }

  /** The patient asked to try now (or the network came back). */
  reconnectNow() {
    this.manualOnly = false;
    this.backoff.reset();
    clearTimeout(this.retryTimer);
    if (this.stopped) return;
    if (this.mode === "ws") {
      if (!this.socket.ws) {
        this.setState(ConnectionState.RECONNECTING);
        this.connectWs();
      }
    } else {
      this.recoverFallback();
    }
  }

  /** Test hook: closes the socket from the client side, as a dropped network would. */
  debugDropSocket() {
    const ws = this.socket.ws;
    if (ws) this.socket.abandon(ws, 4000);
  }

  // ---------------------------------------------------------------- state and routing

  setState(state) {
    if (this.state === state && this.reportedManual === this.manualOnly) return;
    this.state = state;
    this.reportedManual = this.manualOnly;
    this.handlers.onState(state, { manual: this.manualOnly });
  }

  /** Every event from either transport: acks settle commands, stream events go out once each. */
  dispatch(event) {
    if (!event || typeof event !== "object" || typeof event.type !== "string") return;
    if (this.acks.settle(event)) return;
    if (this.streams.accept(event)) this.handlers.onEvent(event);
  }

  /** The outbox's transport right now, or null while no transport can send. */
  sender() {
    if (this.stopped) return null;
    if (this.mode === "ws") return this.socket.live ? (item) => this.sendWs(item) : null;
    return this.state === ConnectionState.FALLBACK ? (item) => this.sse.send(item) : null;
  }

  sendWs(item) {
    this.stats.chatSends += 1;
    const command = { type: "chat.send", id: item.id, text: item.text };
    if (item.conversation.id) command.conversationId = item.conversation.id;
    const ws = this.socket.ws;
    this.socket.command(command, ws).then(
      (ack) => this.outbox.accepted(item, ack),
      (error) => {
        if (error?.code === "timeout") this.socket.abandon(ws, 4000);
        this.outbox.failed(item, error);
      },
    );
  }

  /** Resumes an unfinished answer from its lastSeq on the transport in use. */
  resume(streamId) {
    const record = this.streams.get(streamId);
    if (!record || record.done || this.stopped) return;
    if (this.mode === "ws") {
      if (!this.socket.live) return; // resumed when the socket is live again
      this.stats.resumes += 1;
      const ws = this.socket.ws;
      this.socket.command({ type: "stream.resume", streamId, after: record.lastSeq }, ws).catch((error) => {
        if (error?.code === "not_found") this.lost(streamId, error);
        else if (error?.code === "timeout") this.socket.abandon(ws, 4000);
        else if (error?.retryable) setTimeout(() => this.resume(streamId), 2000);
      });
    } else if (this.state === ConnectionState.FALLBACK && !record.sse) {
      this.sse.resume(streamId);
    }
  }

  lost(streamId, error) {
    this.streams.end(streamId);
    this.handlers.onStreamLost(streamId, error);
  }

  // ---------------------------------------------------------------- WebSocket

  async connectWs() {
    if (this.stopped || this.socket.ws) return;
    clearTimeout(this.retryTimer);
    let token;
    try {
      token = await this.auth.bearer();
    } catch (error) {
      if (error instanceof AuthError || error?.name === "AuthError") return; // the session ended; the app shows sign-in
      this.wsAttemptFailed();
      return;
    }
    if (this.stopped || this.socket.ws) return;
    if (!this.socket.open(token)) this.wsAttemptFailed();
  }

  /** The socket is live: back to the WebSocket, and catch up on everything that waited. */
  onLive() {
    this.refusals = 0;
    this.backoff.reset();
    this.wsFailures = 0;
    this.manualOnly = false;
    const wasFallback = this.mode === "sse";
    this.mode = "ws";
    clearTimeout(this.wsRetryTimer);
    this.wsRetryDelay = this.options.wsRetryMs;
    this.setState(ConnectionState.LIVE);
    for (const streamId of this.pendingCancels) this.socket.command({ type: "stream.cancel", streamId }).catch(() => {});
    this.pendingCancels.clear();
    for (const [streamId, record] of this.streams.unfinished()) {
      // Streams still read over an SSE response (from fallback) finish there.
      if (!record.sse) this.resume(streamId);
    }
    if (wasFallback && this.outbox.inFlight) return; // an SSE send is in progress; pump continues after it
    this.outbox.pump();
  }

  /** A WebSocket attempt failed before a socket existed (no token, bad URL). */
  wsAttemptFailed() {
    if (this.mode === "sse") this.scheduleWsRetry();
    else this.afterWsFailure(null, false);
  }

  async onWsClosed(code, wasLive) {
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
    if (this.stopped || this.socket.ws || this.mode !== "ws") return;
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

  /** The network came back or the tab became visible: check the socket, or reconnect now. */
  wake() {
    if (this.stopped) return;
    if (this.mode === "ws") {
      if (this.socket.ws && this.socket.live) this.socket.check(3000);
      else if (!this.socket.ws) this.reconnectNow();
    } else if (this.state === ConnectionState.OFFLINE) {
      this.recoverFallback();
    }
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
    for (const [streamId] of this.streams.unfinished()) this.resume(streamId);
    this.outbox.pump();
    this.scheduleWsRetry();
  }

  /** In fallback, tries the WebSocket again after about wsRetryMs (jittered, doubling to 10 minutes). */
  scheduleWsRetry() {
    clearTimeout(this.wsRetryTimer);
    if (this.stopped) return;
    const delay = this.wsRetryDelay * (0.5 + Math.random() * 0.5);
    this.wsRetryDelay = Math.min(this.wsRetryDelay * 2, 600_000);
    this.wsRetryTimer = setTimeout(() => {
      if (this.mode === "sse" && !this.socket.ws && this.state === ConnectionState.FALLBACK) this.connectWs();
      else if (this.mode === "sse") this.scheduleWsRetry();
    }, delay);
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
    for (const [streamId, record] of this.streams.unfinished()) {
      if (!record.sse) this.resume(streamId);
    }
    this.outbox.pump();
    // Back from offline, the network may have changed: the WebSocket may work now.
    if (wasOffline && !this.socket.ws) this.connectWs();
  }
}
