// The answers the page follows, each by (streamId, lastSeq), so that every event of every answer
// is shown exactly once: an event with seq <= lastSeq (a replay after a resend, or the overlap
// of a resume) is dropped. After a reconnect the connection manager resumes every unfinished
// answer from its lastSeq, on whichever transport works.

/** The last event of an answer: its end, or an error inside the stream. */
const TERMINAL = (event) => event.type === "stream.end" || (event.type === "error" && typeof event.seq === "number");

/**
 * @typedef {object} StreamRecord
 * @property {number} lastSeq
 * @property {boolean} done                 the terminal event was seen, or it cannot be resumed
 * @property {AbortController | null} sse   an open SSE response for this stream
 */

export class Streams {
  /** @param {{duplicatesDropped: number}} stats */
  constructor(stats) {
    this.stats = stats;
    /** @type {Map<string, StreamRecord>} */
    this.records = new Map();
  }

  get(streamId) {
    return this.records.get(streamId);
  }

  /** Starts following `streamId` from `after` (a new record, replacing any old one). */
  follow(streamId, after = 0) {
    const record = { lastSeq: after, done: false, sse: null };
    this.records.set(streamId, record);
    return record;
  }

  /** The record of `streamId`, following it from the start if it was not followed yet. */
  ensure(streamId) {
    return this.records.get(streamId) ?? this.follow(streamId, 0);
  }

  /** Stops following `streamId` (and closes its SSE response). */
  release(streamId) {
    const record = this.records.get(streamId);
    if (!record) return;
    record.sse?.abort();
    this.records.delete(streamId);
  }

  /** Stops following everything (sign-out). */
  clear() {
    for (const record of this.records.values()) record.sse?.abort();
    this.records.clear();
  }

  /** The stream cannot be resumed: it is finished for us. */
  end(streamId) {
    const record = this.records.get(streamId);
    if (!record) return;
    record.done = true;
    record.sse?.abort();
  }

  /** Streams not finished yet, as [streamId, record]. */
  *unfinished() {
    for (const entry of this.records) {
      if (!entry[1].done) yield entry;
    }
  }

  /**
   * True when `event` is the next event of a followed stream (it is then counted as seen); false
   * for anything else: not a stream event, a stream nobody follows any more, or a duplicate.
   */
  accept(event) {
    if (typeof event.streamId !== "string" || typeof event.seq !== "number") return false;
    const record = this.records.get(event.streamId);
    if (!record) return false;
    if (event.seq <= record.lastSeq) {
      this.stats.duplicatesDropped += 1;
      return false;
    }
    record.lastSeq = event.seq;
    if (TERMINAL(event)) record.done = true;
    return true;
  }
}
