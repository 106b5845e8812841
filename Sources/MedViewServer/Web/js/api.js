// REST calls to the MedView server. Every call sends the current bearer token in the
// Authorization header (never in the URL). A typed error body becomes an ApiError; a network
// failure stays a TypeError from fetch(), so callers can tell "the server said no" from "the
// network is down".

export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {{code?: string, message?: string, retryable?: boolean, retryAfter?: number}} body
   */
  constructor(status, body) {
    super(body.message || `The server answered ${status}.`);
    this.name = "ApiError";
    this.status = status;
    this.code = body.code || "http_" + status;
    this.retryable = body.retryable ?? status >= 500;
    /** Seconds to wait before retrying (`rate_limited`), when the server said. */
    if (Number.isInteger(body.retryAfter)) this.retryAfter = body.retryAfter;
  }
}

/** Reads the protocol's error body, `{"error": {...}}`, when there is one. */
export async function errorFrom(response) {
  let body = {};
  try {
    const parsed = await response.json();
    if (parsed && typeof parsed.error === "object") body = parsed.error;
  } catch {
    // empty or not JSON (e.g. 404 for an unknown path)
  }
  return new ApiError(response.status, body);
}

export class Api {
  /** @param {{ bearer: () => Promise<string>, renew: () => Promise<void> }} auth */
  constructor(auth) {
    this.auth = auth;
  }

  /**
   * fetch() with the bearer token. One automatic retry with a fresh token after a 401
   * (`token_expired`, or `unauthorized` when the server no longer accepts the saved token).
   * @param {string} path
   * @param {RequestInit} [init]
   */
  async request(path, init = {}) {
    for (let attempt = 0; ; attempt += 1) {
      const headers = new Headers(init.headers || {});
      headers.set("Authorization", "Bearer " + (await this.auth.bearer()));
      const response = await fetch(path, { cache: "no-store", credentials: "omit", ...init, headers });
      if (response.status === 401 && attempt === 0) {
        await this.auth.renew();
        continue;
      }
      return response;
    }
  }

  async json(path, init) {
    const response = await this.request(path, init);
    if (!response.ok) throw await errorFrom(response);
    return response.status === 204 ? null : response.json();
  }

  listConversations() {
    return this.json("/v1/conversations");
  }

  /** @param {string} [title] */
  createConversation(title) {
    return this.json("/v1/conversations", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(title ? { title } : {}),
    });
  }

  /** @param {string} id */
  messages(id) {
    return this.json(`/v1/conversations/${encodeURIComponent(id)}/messages`);
  }

  /** @param {string} id */
  async deleteConversation(id) {
    await this.json(`/v1/conversations/${encodeURIComponent(id)}`, { method: "DELETE" });
  }

  /** @param {string} streamId */
  async cancelStream(streamId) {
    const response = await this.request(`/v1/streams/${encodeURIComponent(streamId)}/cancel`, { method: "POST" });
    if (!response.ok) throw await errorFrom(response);
  }
}

/** True when the server answers plain HTTP at all: tells "WebSocket blocked" from "offline". */
export async function reachable(timeoutMs = 5000) {
  try {
    const response = await fetch("/v1/client-config", {
      cache: "no-store",
      credentials: "omit",
      signal: AbortSignal.timeout(timeoutMs),
    });
    return response.ok;
  } catch {
    return false;
  }
}
