"""Production sign-in against real Cognito-shaped tokens: `medview serve --environment production`
trusting a moto user pool (RS256 tokens, moto's JWKS), checked from outside the real binary.

moto issues tokens with iss `https://cognito-idp.us-east-1.amazonaws.com/<pool>` whatever address it
is served at, so the server gets the issuer and the JWKS URL as separate settings. Expired and
forged tokens are signed here: with moto's own (public) private key, or with a key of our own.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from browser.hosted_ui import b64url, sign_rs256
from browser.production import cognito_args, medview_binary, serve, start_moto

REGION = "us-east-1"
PASSWORD = "Correct-Horse-9-Battery!"


def _b64url_int(text: str) -> int:
    return int.from_bytes(__import__("base64").urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def moto_private_key() -> rsa.RSAPrivateKey:
    """The signing key moto ships (kid `dummy`): public, so tokens from it are trusted only in tests."""
    import moto

    path = os.path.join(os.path.dirname(moto.__file__), "cognitoidp", "resources", "jwks-private.json.gz")
    jwk = json.loads(gzip.open(path).read())
    n, e, d = _b64url_int(jwk["n"]), _b64url_int(jwk["e"]), _b64url_int(jwk["d"])
    p, q = rsa.rsa_recover_prime_factors(n, e, d)
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q), rsa.RSAPublicNumbers(e, n)
    )
    return numbers.private_key()


class Pool:
    """A moto user pool with two app clients and one user."""

    def __init__(self, moto_url: str) -> None:
        import boto3

        self.idp = boto3.client(
            "cognito-idp", region_name=REGION, endpoint_url=moto_url,
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )
        self.pool_id = self.idp.create_user_pool(PoolName="medview-test")["UserPool"]["Id"]
        flows = ["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
        self.client_id = self.idp.create_user_pool_client(UserPoolId=self.pool_id, ClientName="web", ExplicitAuthFlows=flows)["UserPoolClient"]["ClientId"]
        self.other_client_id = self.idp.create_user_pool_client(UserPoolId=self.pool_id, ClientName="other", ExplicitAuthFlows=flows)["UserPoolClient"]["ClientId"]
        self.username = "patient1"
        self.idp.admin_create_user(UserPoolId=self.pool_id, Username=self.username, MessageAction="SUPPRESS")
        self.idp.admin_set_user_password(UserPoolId=self.pool_id, Username=self.username, Password=PASSWORD, Permanent=True)
        self.issuer = f"https://cognito-idp.{REGION}.amazonaws.com/{self.pool_id}"
        self.jwks_url = f"{moto_url}/{self.pool_id}/.well-known/jwks.json"

    def sign_in(self, client_id: str | None = None) -> dict:
        answer = self.idp.admin_initiate_auth(
            UserPoolId=self.pool_id, ClientId=client_id or self.client_id, AuthFlow="ADMIN_USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": self.username, "PASSWORD": PASSWORD},
        )
        return answer["AuthenticationResult"]

    def refresh(self, refresh_token: str) -> dict:
        answer = self.idp.admin_initiate_auth(
            UserPoolId=self.pool_id, ClientId=self.client_id, AuthFlow="REFRESH_TOKEN_AUTH",
            AuthParameters={"REFRESH_TOKEN": refresh_token},
        )
        return answer["AuthenticationResult"]


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(__import__("base64").urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.fixture(scope="module")
def moto():
    server = start_moto()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pool(moto) -> Pool:
    return Pool(moto.url)


@pytest.fixture(scope="module")
def production(pool, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("medview-production")
    served = serve(data_dir, "--port", "0", *cognito_args(issuer=pool.issuer, jwks_url=pool.jwks_url, client_id=pool.client_id, domain="https://auth.example.com"))
    served.data_dir = data_dir
    yield served
    served.stop()


def get_conversations(base: str, token: str) -> httpx.Response:
    return httpx.get(base + "/v1/conversations", headers={"Authorization": "Bearer " + token}, timeout=10)


def test_moto_access_and_id_tokens_are_accepted(production, pool):
    tokens = pool.sign_in()
    assert claims_of(tokens["AccessToken"])["token_use"] == "access"
    for token in (tokens["AccessToken"], tokens["IdToken"]):
        answer = get_conversations(production.http_url, token)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"conversations": []}
    # Conversations belong to the token's subject: the same user through either token.
    created = httpx.post(production.http_url + "/v1/conversations", json={"title": "t"},
                         headers={"Authorization": "Bearer " + tokens["AccessToken"]}, timeout=10)
    assert created.status_code == 201
    listed = get_conversations(production.http_url, tokens["IdToken"]).json()["conversations"]
    assert [c["id"] for c in listed] == [created.json()["id"]]


def test_tokens_that_are_expired_forged_or_for_another_client_are_refused(production, pool):
    good = claims_of(pool.sign_in()["AccessToken"])
    now = int(time.time())
    moto_key = moto_private_key()
    own_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "expired (moto's key)": (sign_rs256({**good, "iat": now - 7200, "exp": now - 3600}, moto_key, "dummy"), "token_expired"),
        "forged (another key, moto's kid)": (sign_rs256({**good, "exp": now + 600}, own_key, "dummy"), "unauthorized"),
        "unknown kid": (sign_rs256({**good, "exp": now + 600}, own_key, "rotated-away"), "unauthorized"),
        "wrong issuer (moto's key)": (sign_rs256({**good, "iss": good["iss"] + "x", "exp": now + 600}, moto_key, "dummy"), "unauthorized"),
        "another app client": (pool.sign_in(pool.other_client_id)["AccessToken"], "unauthorized"),
        "id token for another client": (pool.sign_in(pool.other_client_id)["IdToken"], "unauthorized"),
        "token_use refresh": (sign_rs256({**good, "token_use": "refresh", "exp": now + 600}, moto_key, "dummy"), "unauthorized"),
    }
    header_none = b64url(json.dumps({"alg": "none", "kid": "dummy"}).encode())
    cases["alg none"] = (f"{header_none}.{b64url(json.dumps({**good, 'exp': now + 600}).encode())}.", "unauthorized")
    # The control: the same claims signed with moto's key are accepted, so each refusal is about its one change.
    control = sign_rs256({**good, "exp": now + 600}, moto_key, "dummy")
    assert get_conversations(production.http_url, control).status_code == 200
    for name, (token, code) in cases.items():
        answer = get_conversations(production.http_url, token)
        assert answer.status_code == 401, f"{name}: {answer.status_code}"
        assert answer.json()["error"]["code"] == code, name
    # No token text in the server's log.
    log = production.log()
    for token, _ in cases.values():
        header, payload, signature = token.split(".")
        assert (signature or payload)[:24] not in log


def test_production_never_accepts_development_tokens(production, pool):
    assert httpx.post(production.http_url + "/v1/dev/token", json={"user": "alice"}, timeout=10).status_code == 404
    # A token from the development issuer, with the key in this very data directory.
    minted = subprocess.run(
        [str(medview_binary()), "token", "--user", "alice", "--data-dir", str(production.data_dir)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("MEDVIEW_")},
    )
    assert minted.returncode == 0
    answer = get_conversations(production.http_url, minted.stdout.strip())
    assert answer.status_code == 401
    config = httpx.get(production.http_url + "/v1/client-config", timeout=10).json()
    assert config["auth"] == "cognito"
    assert config["cognito"]["clientId"] == pool.client_id
    assert config["cognito"]["domain"] == "https://auth.example.com"
    page = httpx.get(production.http_url + "/", timeout=10)
    csp = page.headers["content-security-policy"]
    connect = next(part for part in csp.split(";") if part.strip().startswith("connect-src"))
    assert "https://auth.example.com" in connect.split()


def test_websocket_with_a_moto_token_and_auth_refresh_from_refresh_token_auth(production, pool):
    from websockets.asyncio.client import connect

    tokens = pool.sign_in()

    async def scenario():
        async with connect(production.ws_url, subprotocols=["medview.v1", "medview.bearer." + tokens["AccessToken"]], open_timeout=10) as ws:
            await ws.send(json.dumps({"type": "ping", "id": "p1"}))
            pong = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert pong["type"] == "ack" and pong["id"] == "p1", pong
            fresh = pool.refresh(tokens["RefreshToken"])["AccessToken"]
            await ws.send(json.dumps({"type": "auth.refresh", "id": "r1", "token": fresh}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert ack["type"] == "ack" and ack["id"] == "r1", ack
            assert ack["expiresAt"] >= claims_of(fresh)["exp"] - 1
            other = pool.sign_in(pool.other_client_id)["AccessToken"]
            await ws.send(json.dumps({"type": "auth.refresh", "id": "r2", "token": other}))
            refused = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert refused["type"] == "error" and refused["code"] == "unauthorized" and refused["id"] == "r2"

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_production_without_cognito_refuses_to_start(tmp_path):
    result = subprocess.run(
        [str(medview_binary()), "serve", "--port", "0", "--data-dir", str(tmp_path), "--environment", "production"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("MEDVIEW_")},
    )
    assert result.returncode != 0
    assert "cognito-issuer" in result.stderr
    # Half a configuration is refused too.
    half = subprocess.run(
        [str(medview_binary()), "serve", "--port", "0", "--data-dir", str(tmp_path), "--environment", "production",
         "--cognito-issuer", "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_x"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("MEDVIEW_")},
    )
    assert half.returncode != 0 and "cognito-client-id" in half.stderr
    # A misspelt environment is refused rather than quietly meaning development.
    typo = subprocess.run(
        [str(medview_binary()), "serve", "--port", "0", "--data-dir", str(tmp_path), "--environment", "prod"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("MEDVIEW_")},
    )
    assert typo.returncode != 0 and "'development' or 'production'" in typo.stderr
