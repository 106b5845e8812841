// The SSE fallback transport, for networks where the WebSocket does not work but plain HTTP
// does: a message is `POST /v1/conversations/{id}/messages` with `Accept: text/event-stream`
// (the conversation is created first if there is none yet), and an answer is resumed with
// `GET /v1/streams/{id}?after=N` and `Last-Event-ID`. Both responses are read with fetch() and
// sse.js; their events go through the connection manager's dispatch like WebSocket events.
//
// When to use it, and what to do when a request fails at the network level, is decided by the
// connection manager (connection.js); this module reports such failures with `trouble()`.

import { readEventStream } from "./sse.js";
import { errorFrom } from "./api.js";
import { AuthError } from "./auth.js";

/**
 * @typedef {object} SseSetup
 * @property {import("./api.js").Api} api
 * @property {import("./acks.js").Acks} acks
 * @property {import("./streams.js").Streams} streams
 * @property {import("./outbox.js").Outbox} outbox
 * @property {Record<string, number>} stats
 * @property {(event: any) => void} dispatch            every event read from a response
 * @property {(streamId: string) => void} resume         resume an answer on whichever transport works now
 * @property {(streamId: string, error: any) => void} lost  the answer cannot be resumed
 * @property {(item: import("./outbox.js").Outgoing) => void} conversationCreated
 * @property {() => void} trouble                        a request failed at the network level
 */

export class SseTransport {
  /** @param {SseSetup} setup */
  constructor(setup) {
    this.api = setup.api;
    this.acks = setup.acks;
    this.streams = setup.streams;
    this.outbox = setup.outbox;
    this.stats = setup.stats;
    this.setup = setup;
  }

  /** Sends the outbox's message `item` and reads its answer from the response. */
  async send(item) {
    this.stats.sseSends += 1;
    const { acks, outbox } = this;
    let record = null;
    const controller = new AbortController();
    try {
      if (!item.conversation.id) {
        const created = await this.api.createConversation(titleFrom(item.text));
        if (!item.conversation.id) {
          item.conversation.id = created.id;
          this.setup.conversationCreated(item);
        }
      }
      let acked = false;
      // The ack arrives as the first event of the response.
      acks.wait(item.id, {
        timer: 0,
        onAck: (ack) => {
          acked = true;
          outbox.accepted(item, ack);
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
        acks.forget(item.id);
        const error = await errorFrom(response);
        outbox.failed(item, { type: "error", code: error.code, message: error.message, retryable: error.retryable });
        return;
      }
      const streamId = response.headers.get("X-Stream-Id");
      if (streamId) {
        record = this.streams.ensure(streamId);
        record.sse = controller;
      }
      await readEventStream(response, (event) => this.setup.dispatch(event));
      acks.forget(item.id);
      if (record) record.sse = null;
      if (!acked) {
        outbox.failed(item, { code: "network" });
        this.setup.trouble();
      } else if (record && !record.done && streamId) {
        this.setup.resume(streamId); // the response ended early: pick up where it stopped
      }
    } catch (error) {
      acks.forget(item.id);
      if (record) record.sse = null;
      if (controller.signal.aborted) return;
      if (error?.name === "ApiError" && !error.retryable) {
        outbox.failed(item, { type: "error", code: error.code, message: error.message, retryable: false });
        return;
      }
      if (error instanceof AuthError || error?.name === "AuthError") return;
      if (outbox.inFlight === item) outbox.failed(item, { code: "network" });
      this.setup.trouble();
    }
  }

  /** Reads the rest of answer `streamId` after its lastSeq. */
  async resume(streamId) {
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
        if (error.code === "not_found") this.setup.lost(streamId, error);
        else setTimeout(() => this.setup.resume(streamId), 2000);
        return;
      }
      await readEventStream(response, (event) => this.setup.dispatch(event));
      record.sse = null;
      if (!record.done) this.setup.resume(streamId);
    } catch {
      record.sse = null;
      if (controller.signal.aborted || record.done) return;
      this.setup.trouble();
    }
  }
}

/** A conversation title like the server's: whitespace collapsed, at most 60 characters. */
export function titleFrom(text) {
  const collapsed = text.replace(/\s+/g, " ").trim();
  const characters = Array.from(collapsed);
  return characters.length <= 60 ? collapsed : characters.slice(0, 59).join("") + "…";
}
