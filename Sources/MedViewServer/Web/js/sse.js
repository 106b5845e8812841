// A small Server-Sent Events reader over fetch(). EventSource cannot POST or send an
// Authorization header, so the page reads the response body itself and parses the
// text/event-stream format: `field: value` lines, events ended by a blank line, comment lines
// starting with ':' (the server's keep-alives) ignored.

/**
 * Reads `response.body` as an event stream and calls `onEvent` with each event's parsed JSON
 * `data`. Resolves when the body ends; rejects when the connection breaks or `signal` aborts.
 *
 * @param {Response} response
 * @param {(event: any, lastEventId: string) => void} onEvent
 */
export async function readEventStream(response, onEvent) {
  if (!response.body) throw new TypeError("The response has no body.");
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  /** @type {string[]} */
  let data = [];
  let lastEventId = "";

  const dispatch = () => {
    if (data.length === 0) return;
    const text = data.join("\n");
    data = [];
    let event;
    try {
      event = JSON.parse(text);
    } catch {
      return; // not one of ours; the protocol always sends one JSON object per data line
    }
    if (event && typeof event === "object") onEvent(event, lastEventId);
  };

  const line = (/** @type {string} */ raw) => {
    if (raw === "") {
      dispatch();
      return;
    }
    if (raw.startsWith(":")) return; // comment, e.g. ": keep-alive"
    const colon = raw.indexOf(":");
    const field = colon < 0 ? raw : raw.slice(0, colon);
    let value = colon < 0 ? "" : raw.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    else if (field === "id" && !value.includes("\0")) lastEventId = value;
    // `event` and `retry` are not needed: the JSON carries its own `type`.
  };

  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    for (;;) {
      const match = /\r\n|\r|\n/.exec(buffer);
      if (!match) break;
      // A lone '\r' at the very end may be the first half of "\r\n": wait for more input.
      if (match[0] === "\r" && match.index === buffer.length - 1) break;
      line(buffer.slice(0, match.index));
      buffer = buffer.slice(match.index + match[0].length);
    }
  }
  // A stream that ends without a final blank line: the spec drops the unfinished event.
}
