// Amazon Cognito Hosted UI sign-in: OAuth 2.0 authorization code flow with PKCE (RFC 7636),
// for a public client (no client secret in the page).
//
// The server publishes the settings in /v1/client-config when it runs in production:
//   {"auth": "cognito", "cognito": {"domain": "https://auth.example.com", "clientId": "…",
//    "redirectUri": "https://app.example.com/", "scopes": "openid email", "tokenUse": "access"}}
// Tested end to end in Chromium against a Hosted UI stand-in (Tests/python/test_browser_cognito.py).
// See docs/WEB.md.

const PENDING_KEY = "medview.pkce";

/** @param {Uint8Array} bytes */
function base64url(bytes) {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(byteCount) {
  return base64url(crypto.getRandomValues(new Uint8Array(byteCount)));
}

/** The S256 code challenge of a verifier. */
export async function challengeFor(verifier) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

/**
 * @typedef {object} CognitoSettings
 * @property {string} domain       Hosted UI base URL, e.g. https://auth.example.com
 * @property {string} clientId     app client id (public client, no secret)
 * @property {string} redirectUri  this page's URL as registered with the app client
 * @property {string} [scopes]     space-separated, default "openid"
 * @property {"access"|"id"} [tokenUse]  which token the API expects, default "access"
 */

/** @param {any} raw @returns {CognitoSettings | null} */
export function cognitoSettings(raw) {
  if (!raw || typeof raw !== "object") return null;
  const { domain, clientId } = raw;
  if (typeof domain !== "string" || typeof clientId !== "string" || !clientId) return null;
  // Without a configured redirect URI, come back to this page's own address.
  const redirectUri = typeof raw.redirectUri === "string" && raw.redirectUri ? raw.redirectUri : location.origin + "/";
  let base;
  try {
    base = new URL(domain.includes("://") ? domain : "https://" + domain);
  } catch {
    return null;
  }
  // Tokens never travel in clear text, except to a Hosted UI on this machine (tests, local stand-ins).
  if (base.protocol !== "https:" && !(base.protocol === "http:" && isLoopback(base.hostname))) return null;
  return {
    domain: base.origin,
    clientId,
    redirectUri,
    scopes: typeof raw.scopes === "string" && raw.scopes ? raw.scopes : "openid",
    tokenUse: raw.tokenUse === "id" ? "id" : "access",
  };
}

function isLoopback(hostname) {
  return hostname === "127.0.0.1" || hostname === "localhost" || hostname === "[::1]";
}

/** Sends the browser to the Hosted UI. The verifier and state wait in sessionStorage. */
export async function beginSignIn(/** @type {CognitoSettings} */ settings) {
  const verifier = randomString(48); // 64 characters, within RFC 7636's 43..128
  const state = randomString(24);
  sessionStorage.setItem(PENDING_KEY, JSON.stringify({ verifier, state, at: Date.now() }));
  const url = new URL("/oauth2/authorize", settings.domain);
  url.searchParams.set("response_type", "code");
  url.searchParams.set("client_id", settings.clientId);
  url.searchParams.set("redirect_uri", settings.redirectUri);
  url.searchParams.set("scope", settings.scopes || "openid");
  url.searchParams.set("state", state);
  url.searchParams.set("code_challenge", await challengeFor(verifier));
  url.searchParams.set("code_challenge_method", "S256");
  location.assign(url.toString());
}

/**
 * @typedef {object} TokenSet
 * @property {string} token         the bearer token the API gets
 * @property {number} expiresAt     seconds since 1970
 * @property {string} [refreshToken]
 */

/** Reads `exp` from a JWT's payload (for scheduling only: the server verifies the token). */
export function jwtExpiry(jwt) {
  try {
    const payload = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = payload + "=".repeat((4 - (payload.length % 4)) % 4);
    const exp = JSON.parse(atob(padded)).exp;
    return typeof exp === "number" ? exp : null;
  } catch {
    return null;
  }
}

async function tokenRequest(settings, params) {
  const response = await fetch(new URL("/oauth2/token", settings.domain), {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(params).toString(),
    cache: "no-store",
    credentials: "omit",
  });
  if (!response.ok) {
    const error = new Error("The sign-in service refused the request.");
    error.name = response.status >= 500 ? "NetworkError" : "AuthError";
    throw error;
  }
  const body = await response.json();
  const token = settings.tokenUse === "id" ? body.id_token : body.access_token;
  if (typeof token !== "string") throw Object.assign(new Error("No token in the answer."), { name: "AuthError" });
  const expiresAt = jwtExpiry(token) ?? Date.now() / 1000 + (Number(body.expires_in) || 3600);
  return { token, expiresAt, refreshToken: typeof body.refresh_token === "string" ? body.refresh_token : undefined };
}

/**
 * Finishes a sign-in when this page load is the Hosted UI's redirect (`?code=…&state=…`).
 * Removes the code from the address bar at once. Returns null when there is nothing to finish.
 * @returns {Promise<TokenSet | null>}
 */
export async function completeSignIn(/** @type {CognitoSettings} */ settings) {
  const params = new URLSearchParams(location.search);
  const code = params.get("code");
  const state = params.get("state");
  const failure = params.get("error");
  if (!code && !failure) return null;
  // The code is single-use and bound to our verifier, but keep it out of history anyway.
  const clean = new URL(location.href);
  for (const key of ["code", "state", "error", "error_description"]) clean.searchParams.delete(key);
  history.replaceState(null, "", clean.pathname + clean.search + clean.hash);
  const pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) || "null");
  sessionStorage.removeItem(PENDING_KEY);
  if (failure) throw Object.assign(new Error("Sign-in was not completed."), { name: "AuthError" });
  if (!pending || pending.state !== state) {
    throw Object.assign(new Error("The sign-in answer did not match this page; please sign in again."), { name: "AuthError" });
  }
  return tokenRequest(settings, {
    grant_type: "authorization_code",
    client_id: settings.clientId,
    code,
    redirect_uri: settings.redirectUri,
    code_verifier: pending.verifier,
  });
}

/** A new access (or id) token from the refresh token. Cognito keeps the same refresh token. */
export async function refreshTokens(/** @type {CognitoSettings} */ settings, refreshToken) {
  const set = await tokenRequest(settings, {
    grant_type: "refresh_token",
    client_id: settings.clientId,
    refresh_token: refreshToken,
  });
  return { ...set, refreshToken: set.refreshToken || refreshToken };
}

/** The Hosted UI's logout URL, which also ends the Cognito session cookie. */
export function signOutUrl(/** @type {CognitoSettings} */ settings) {
  const url = new URL("/logout", settings.domain);
  url.searchParams.set("client_id", settings.clientId);
  url.searchParams.set("logout_uri", settings.redirectUri);
  return url.toString();
}
