"""A stand-in for the Amazon Cognito Hosted UI on a loopback port, for the browser sign-in tests.

What it implements, shaped like Cognito's (docs.aws.amazon.com, "User pool endpoints"):

- `GET /oauth2/authorize` (response_type=code, client_id, redirect_uri, state, code_challenge,
  code_challenge_method=S256): a tiny login form; submitting it redirects to redirect_uri with
  `code` and the unchanged `state`.
- `POST /oauth2/token` (form-encoded, CORS for the page's origin):
  `grant_type=authorization_code` checks client_id, redirect_uri and the PKCE verifier
  (BASE64URL(SHA256(verifier)) == challenge), a code works once; `grant_type=refresh_token`
  returns new access and id tokens (Cognito keeps the refresh token).
- `GET /.well-known/jwks.json`: the RS256 public key.
- `GET /logout` (client_id, logout_uri): redirects to logout_uri.

Tokens are RS256 JWTs with Cognito's claims (`token_use`, `client_id` / `aud`, `iss`, `sub`,
`cognito:username`) and a short lifetime, so a test can see a refresh happen. Every request is
recorded in `requests` (path, grant type, outcome) for the tests to assert on.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

POOL_ID = "us-east-1_StandIn1"
ISSUER = f"https://cognito-idp.us-east-1.amazonaws.com/{POOL_ID}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_rs256(claims: dict, key: rsa.RSAPrivateKey, kid: str) -> str:
    """A compact RS256 JWS of `claims`."""
    header = b64url(json.dumps({"alg": "RS256", "kid": kid, "typ": "JWT"}, separators=(",", ":")).encode())
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{b64url(signature)}"


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict:
    numbers = key.public_key().public_numbers()

    def as_bytes(value: int) -> bytes:
        return value.to_bytes((value.bit_length() + 7) // 8, "big")

    return {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": b64url(as_bytes(numbers.n)), "e": b64url(as_bytes(numbers.e))}


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    username: str
    sub: str


@dataclass
class HostedUI:
    """The stand-in. `start()` binds 127.0.0.1 on a free port; `close()` stops it."""

    client_id: str
    token_seconds: int = 20
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    kid: str = "standin-1"
    #: The page's exact redirect URIs (callback and sign-out), set before the page signs in.
    redirect_uris: set[str] = field(default_factory=set)
    requests: list[dict] = field(default_factory=list)
    _codes: dict[str, _Grant] = field(default_factory=dict)
    _refresh: dict[str, _Grant] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def jwks_url(self) -> str:
        return self.url + "/.well-known/jwks.json"

    def start(self) -> "HostedUI":
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                stand_in._get(self)

            def do_POST(self) -> None:
                stand_in._post(self)

            def do_OPTIONS(self) -> None:
                # Cognito answers CORS preflights on /oauth2/token; a form POST needs none, but be safe.
                self.send_response(204)
                stand_in._cors(self)
                self.send_header("Access-Control-Allow-Methods", "POST")
                self.send_header("Access-Control-Allow-Headers", "Content-Type")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    # -- helpers for tests

    def record(self, **entry) -> None:
        with self._lock:
            self.requests.append(entry)

    def recorded(self, path: str) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if r["path"] == path]

    def issue_code(self, username: str, redirect_uri: str, challenge: str) -> str:
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Grant(self.client_id, redirect_uri, challenge, username, str(uuid.uuid5(uuid.NAMESPACE_DNS, username)))
        return code

    def tokens(self, grant: _Grant, refresh: bool) -> dict:
        now = int(time.time())
        common = {"iss": ISSUER, "sub": grant.sub, "iat": now, "auth_time": now, "exp": now + self.token_seconds, "jti": str(uuid.uuid4())}
        access = sign_rs256({**common, "token_use": "access", "client_id": grant.client_id, "scope": "openid email", "username": grant.username}, self.key, self.kid)
        id_token = sign_rs256({**common, "token_use": "id", "aud": grant.client_id, "cognito:username": grant.username, "email": f"{grant.username}@example.com"}, self.key, self.kid)
        answer = {"access_token": access, "id_token": id_token, "token_type": "Bearer", "expires_in": self.token_seconds}
        if refresh:
            token = secrets.token_urlsafe(48)
            with self._lock:
                self._refresh[token] = grant
            answer["refresh_token"] = token
        return answer

    # -- HTTP

    def _cors(self, handler: BaseHTTPRequestHandler) -> None:
        origin = handler.headers.get("Origin")
        if origin:
            handler.send_header("Access-Control-Allow-Origin", origin)
            handler.send_header("Vary", "Origin")

    def _send(self, handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        self._cors(handler)
        handler.end_headers()
        handler.wfile.write(body)

    def _json(self, handler, status: int, body: dict) -> None:
        self._send(handler, status, json.dumps(body).encode(), "application/json")

    def _redirect(self, handler, location: str) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _get(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlparse(handler.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path in ("/.well-known/jwks.json", f"/{POOL_ID}/.well-known/jwks.json"):
            self.record(path="jwks")
            self._json(handler, 200, {"keys": [public_jwk(self.key, self.kid)]})
        elif url.path == "/oauth2/authorize":
            ok = (
                query.get("response_type") == "code"
                and query.get("client_id") == self.client_id
                and query.get("redirect_uri") in self.redirect_uris
                and query.get("code_challenge_method") == "S256"
                and len(query.get("code_challenge", "")) == 43
                and query.get("state")
            )
            self.record(path="authorize", ok=bool(ok), query=query)
            if not ok:
                self._send(handler, 400, b"<p>invalid_request</p>", "text/html")
                return
            fields = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                for k, v in query.items()
            )
            page = (
                "<!doctype html><link rel=icon href='data:,'><title>Sign in (stand-in)</title><form method=post action=/login>"
                f"{fields}<label>Username <input id=username name=username></label>"
                "<button id=login type=submit>Sign in</button></form>"
            )
            self._send(handler, 200, page.encode(), "text/html; charset=utf-8")
        elif url.path == "/logout":
            ok = query.get("client_id") == self.client_id and query.get("logout_uri") in self.redirect_uris
            self.record(path="logout", ok=ok)
            if ok:
                self._redirect(handler, query["logout_uri"])
            else:
                self._send(handler, 400, b"<p>invalid logout_uri</p>", "text/html")
        else:
            self._send(handler, 404, b"not found", "text/plain")

    def _post(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlparse(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(handler.rfile.read(length).decode()).items()}
        if url.path == "/login":
            code = self.issue_code(form.get("username") or "patient", form["redirect_uri"], form["code_challenge"])
            self.record(path="login", username=form.get("username"))
            separator = "&" if "?" in form["redirect_uri"] else "?"
            self._redirect(handler, form["redirect_uri"] + separator + urlencode({"code": code, "state": form["state"]}))
        elif url.path == "/oauth2/token":
            self._token(handler, form)
        else:
            self._send(handler, 404, b"not found", "text/plain")

    def _token(self, handler, form: dict) -> None:
        grant_type = form.get("grant_type")
        if form.get("client_id") != self.client_id:
            self.record(path="token", grant=grant_type, ok=False, why="client")
            self._json(handler, 400, {"error": "invalid_client"})
            return
        if grant_type == "authorization_code":
            with self._lock:
                grant = self._codes.pop(form.get("code", ""), None)  # a code works once
            verifier = form.get("code_verifier", "")
            if grant is None or grant.redirect_uri != form.get("redirect_uri"):
                self.record(path="token", grant=grant_type, ok=False, why="code")
                self._json(handler, 400, {"error": "invalid_grant"})
                return
            if b64url(hashlib.sha256(verifier.encode()).digest()) != grant.challenge:
                self.record(path="token", grant=grant_type, ok=False, why="pkce")
                self._json(handler, 400, {"error": "invalid_grant"})
                return
            self.record(path="token", grant=grant_type, ok=True)
            self._json(handler, 200, self.tokens(grant, refresh=True))
        elif grant_type == "refresh_token":
            with self._lock:
                grant = self._refresh.get(form.get("refresh_token", ""))
            if grant is None:
                self.record(path="token", grant=grant_type, ok=False, why="refresh")
                self._json(handler, 400, {"error": "invalid_grant"})
                return
            self.record(path="token", grant=grant_type, ok=True)
            self._json(handler, 200, self.tokens(grant, refresh=False))
        else:
            self.record(path="token", grant=grant_type, ok=False, why="grant_type")
            self._json(handler, 400, {"error": "unsupported_grant_type"})
