// Who the patient is, and a fresh bearer token for every request.
//
// The tokens (and, with Cognito, the refresh token) live in memory and in sessionStorage, so that
// a reload of the tab, or the Hosted UI's redirect back to it, does not sign the patient out.
// sessionStorage belongs to this tab only and is emptied when the tab closes; sign-out and idle
// logoff empty it at once. Never localStorage (shared by every tab, kept for ever), never a cookie
// (sent with requests we do not make, so CSRF), never a URL. What guards it is the page's strict
// Content-Security-Policy: scripts from this origin only, no inline script, no eval.
// A timer renews the token ahead of expiry; listeners (the connection manager) then pass the new
// token to the open WebSocket with `auth.refresh`.

import * as pkce from "./pkce.js";

const SESSION_KEY = "medview.session";
/** Why the last session ended, shown on the sign-in screen (survives the Hosted UI logout redirect). */
const NOTICE_KEY = "medview.signedOut";

/** Renew this long before expiry (or a quarter of the lifetime, if shorter). */
const RENEW_LEAD_MS = 120_000;

export class AuthError extends Error {
  constructor(message) {
    super(message);
    this.name = "AuthError";
  }
}

/**
 * @typedef {object} Session
 * @property {"development"|"cognito"} mode
 * @property {string} user
 * @property {string} token
 * @property {number} expiresAt   seconds since 1970
 * @property {number} issuedAt    milliseconds since 1970 (client clock)
 * @property {string} [refreshToken]
 */

export class Auth {
  /** @param {{auth: string, cognito?: any}} config */
  constructor(config) {
    this.mode = config.auth === "cognito" ? "cognito" : "development";
    this.cognito = this.mode === "cognito" ? pkce.cognitoSettings(config.cognito) : null;
    /** @type {Session | null} */
    this.session = null;
    /** @type {Promise<void> | null} */
    this.renewing = null;
    this.timer = 0;
    /** @type {Set<(token: string) => void>} */
    this.renewedListeners = new Set();
    /** @type {Set<(reason: string) => void>} */
    this.endedListeners = new Set();
    document.addEventListener("visibilitychange", () => {
      // Timers do not run while a phone sleeps: check on wake-up.
      if (document.visibilityState === "visible" && this.session) this.schedule();
    });
  }

  get user() {
    return this.session?.user ?? "";
  }

  /** Restores the tab's session, if it has one that can still be used or renewed. */
  restore() {
    let saved = null;
    try {
      saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
    } catch {
      saved = null;
    }
    if (!saved || saved.mode !== this.mode || typeof saved.token !== "string" || typeof saved.user !== "string") {
      return false;
    }
    const expired = saved.expiresAt * 1000 <= Date.now() + 5000;
    if (expired && !(this.mode === "development" || saved.refreshToken)) return false;
    this.session = saved;
    this.schedule();
    return true;
  }

  /** Development mode: a token from the server's development issuer. */
  async signInDevelopment(user) {
    const answer = await this.devToken(user);
    this.adopt({ mode: "development", user, token: answer.token, expiresAt: answer.expiresAt, issuedAt: Date.now() });
  }

  async devToken(user) {
    const response = await fetch("/v1/dev/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user }),
      cache: "no-store",
      credentials: "omit",
    });
    if (!response.ok) {
      let message = "Could not sign in.";
      try {
        message = (await response.json()).error?.message || message;
      } catch {
        // keep the generic message
      }
      throw new AuthError(message);
    }
    const body = await response.json();
    if (typeof body.token !== "string" || typeof body.expiresAt !== "number") throw new AuthError("Unexpected answer.");
    return body;
  }

  /** Cognito: go to the Hosted UI. */
  async beginCognito() {
    if (!this.cognito) throw new AuthError("Sign-in is not configured on this server yet.");
    await pkce.beginSignIn(this.cognito);
  }

  /** Cognito: finish the redirect back from the Hosted UI, if this load is one. */
  async completeCognito() {
    if (!this.cognito) return false;
    const set = await pkce.completeSignIn(this.cognito);
    if (!set) return false;
    const payload = decodePayload(set.token);
    const user = String(payload?.email || payload?.username || payload?.["cognito:username"] || payload?.sub || "");
    this.adopt({ mode: "cognito", user, token: set.token, expiresAt: set.expiresAt, refreshToken: set.refreshToken, issuedAt: Date.now() });
    return true;
  }

  /** @param {Session} session */
  adopt(session) {
    this.session = session;
    this.save();
    this.schedule();
  }

  save() {
    try {
      if (this.session) sessionStorage.setItem(SESSION_KEY, JSON.stringify(this.session));
      else sessionStorage.removeItem(SESSION_KEY);
    } catch {
      // storage full or disabled: the session still works in memory for this page
    }
  }

  /** Seconds of validity left on the current token. */
  remainingSeconds() {
    return this.session ? this.session.expiresAt - Date.now() / 1000 : 0;
  }

  /** The current token, renewed first if it expires soon (within a minute, or a quarter of its lifetime). */
  async bearer() {
    if (!this.session) throw new AuthError("Not signed in.");
    const lifetime = Math.max(0, this.session.expiresAt - this.session.issuedAt / 1000);
    if (this.remainingSeconds() < Math.min(60, lifetime / 4)) await this.renew();
    if (!this.session) throw new AuthError("Not signed in.");
    return this.session.token;
  }

  /**
   * A new token now. Concurrent callers share one request. Network failures reject with a
   * TypeError (try again later); a refusal ends the session (AuthError).
   */
  renew() {
    if (!this.renewing) {
      this.renewing = this.doRenew().finally(() => {
        this.renewing = null;
      });
    }
    return this.renewing;
  }

  async doRenew() {
    const session = this.session;
    if (!session) throw new AuthError("Not signed in.");
    let next;
    try {
      if (session.mode === "development") {
        const answer = await this.devToken(session.user);
        next = { ...session, token: answer.token, expiresAt: answer.expiresAt, issuedAt: Date.now() };
      } else {
        if (!this.cognito || !session.refreshToken) throw new AuthError("Please sign in again.");
        const set = await pkce.refreshTokens(this.cognito, session.refreshToken);
        next = { ...session, ...set, issuedAt: Date.now() };
      }
    } catch (error) {
      if (error instanceof AuthError || error?.name === "AuthError") {
        this.end("Your session ended. Please sign in again.");
      } else {
        this.schedule(15_000); // offline: try again soon
      }
      throw error;
    }
    if (this.session !== session) return; // signed out meanwhile
    this.adopt(next);
    for (const listener of this.renewedListeners) listener(next.token);
  }

  /** Arms the renewal timer: a while before expiry, or after `delayMs`. */
  schedule(delayMs) {
    clearTimeout(this.timer);
    if (!this.session) return;
    let delay = delayMs;
    if (delay === undefined) {
      const lifetimeMs = Math.max(0, this.session.expiresAt * 1000 - this.session.issuedAt);
      const lead = Math.min(RENEW_LEAD_MS, lifetimeMs / 4);
      delay = this.session.expiresAt * 1000 - lead - Date.now();
    }
    delay = Math.min(Math.max(delay, 0), 2 ** 31 - 1);
    this.timer = setTimeout(() => {
      this.renew().catch(() => {});
    }, delay);
  }

  onRenewed(listener) {
    this.renewedListeners.add(listener);
  }

  onEnded(listener) {
    this.endedListeners.add(listener);
  }

  /** Ends the session because the server or the identity provider refused it. */
  end(reason) {
    this.clear();
    for (const listener of this.endedListeners) listener(reason);
  }

  clear() {
    clearTimeout(this.timer);
    this.session = null;
    this.save();
  }

  /**
   * Signs out; with Cognito also ends the Hosted UI session (its cookie would otherwise sign the
   * next person at this computer straight back in). `notice` is shown on the sign-in screen,
   * also after the Hosted UI's logout redirect brings the browser back.
   * Returns true when the browser is leaving for the Hosted UI.
   */
  signOut(notice = "") {
    const wasCognito = this.session?.mode === "cognito" && this.cognito;
    this.clear();
    try {
      if (notice) sessionStorage.setItem(NOTICE_KEY, notice);
    } catch {
      // storage disabled: the notice is shown only if we stay on this page
    }
    if (wasCognito) {
      location.assign(pkce.signOutUrl(this.cognito));
      return true;
    }
    return false;
  }

  /** The notice a previous sign-out left for the sign-in screen, once. */
  takeNotice() {
    try {
      const notice = sessionStorage.getItem(NOTICE_KEY) || "";
      sessionStorage.removeItem(NOTICE_KEY);
      return notice;
    } catch {
      return "";
    }
  }
}

function decodePayload(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
  } catch {
    return null;
  }
}
