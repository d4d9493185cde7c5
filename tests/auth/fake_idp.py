"""A small identity provider on loopback: a real HTTP server in a thread that serves a discovery
document and a key set, signs tokens, rotates its keys, counts what it is asked for, and can be
made to fail or be switched off."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

KEYS_PATH = "/protocol/openid-connect/certs"
AUTH_PATH = "/protocol/openid-connect/auth"
TOKEN_PATH = "/protocol/openid-connect/token"


def new_key(alg: str) -> Any:
    if alg.startswith(("RS", "PS")):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(alg)


def public_jwk(key: Any, *, kid: str, alg: str, publish_alg: bool = True) -> dict[str, Any]:
    jwk = dict(jwt.get_algorithm_by_name(alg).to_jwk(key.public_key(), as_dict=True))
    jwk.update({"kid": kid, "use": "sig"})
    if publish_alg:
        jwk["alg"] = alg
    return jwk


class FakeIdP:
    def __init__(self, path: str = "/realms/pgw", *, alg: str = "RS256",
                 publish_alg: bool = True) -> None:
        self.hits: Counter[str] = Counter()
        self.available = True  # False: every request gets 503
        self.delay = 0.0  # seconds before answering
        self.big = False  # True: the key set is larger than the gateway accepts
        self.cache_control: str | None = None
        self.publish_alg = publish_alg
        self.keys: dict[str, tuple[Any, str]] = {}
        # Sign-in (authorization code with PKCE): who is signed in at the provider, as the
        # claims their access token will carry; None refuses every sign-in.
        self.user: dict[str, Any] | None = None
        self.audience = "privacy-gateway"
        self.codes: dict[str, dict[str, Any]] = {}
        self.token_requests: list[dict[str, str]] = []
        self.nonces: list[str | None] = []  # the nonce of each authorization request
        # Claims the next ID tokens carry instead of the right ones (to test refusals), and
        # the key that signs them ("foreign": one the key set does not publish).
        self.id_token_claims: dict[str, Any] = {}
        self.id_token_key: str | None = None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.issuer = self.base + path
        self.discovery_issuer = self.issuer  # what the discovery document claims
        self.jwks_uri = self.issuer + KEYS_PATH
        self.rotate("k1", alg)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def rotate(self, kid: str, alg: str = "RS256", *, keep: bool = False) -> None:
        """Publish a new key `kid` (and, with keep, the old ones too)."""
        if not keep:
            self.keys.clear()
        self.keys[kid] = (new_key(alg), alg)

    def token(self, claims: dict[str, Any], *, kid: str = "k1", **header: Any) -> str:
        key, alg = self.keys[kid]
        now = int(time.time())
        payload = {"iat": now, "exp": now + 300, "iss": self.issuer, **claims}
        return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid, **header})

    def _id_token(self, claims: dict[str, Any]) -> str:
        claims = {k: v for k, v in claims.items() if v is not None}  # None: leave it out
        if self.id_token_key != "foreign":
            return self.token(claims)
        _, alg = self.keys["k1"]
        now = int(time.time())
        return jwt.encode({"iat": now, "exp": now + 300, "iss": self.issuer, **claims},
                          new_key(alg), algorithm=alg, headers={"kid": "k1"})

    def key_set(self) -> dict[str, Any]:
        keys = [public_jwk(key, kid=kid, alg=alg, publish_alg=self.publish_alg)
                for kid, (key, alg) in self.keys.items()]
        if self.big:
            keys += [{"kty": "RSA", "kid": f"pad-{i}", "n": "x" * 1000, "e": "AQAB"}
                     for i in range(600)]
        return {"keys": keys}

    def document(self, path: str) -> dict[str, Any] | None:
        if path == self.issuer.removeprefix(self.base) + "/.well-known/openid-configuration":
            return {"issuer": self.discovery_issuer, "jwks_uri": self.jwks_uri,
                    "authorization_endpoint": self.issuer + AUTH_PATH,
                    "token_endpoint": self.issuer + TOKEN_PATH,
                    "id_token_signing_alg_values_supported": ["RS256"]}
        if path == self.jwks_uri.removeprefix(self.base):
            return self.key_set()
        return None

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str]]:
        """The authorization endpoint: signs `user` in at once (no login form) and sends the
        browser back with a code bound to the PKCE challenge; (status, headers)."""
        if self.user is None and query.get("redirect_uri"):  # nobody signs in: say so
            back = {"error": "access_denied", "state": query.get("state", "")}
            return 302, {"Location": f"{query['redirect_uri']}?{urlencode(back)}"}
        if self.user is None or query.get("response_type") != "code" \
                or query.get("code_challenge_method") != "S256" \
                or not query.get("code_challenge") or not query.get("redirect_uri"):
            return 400, {}
        code = secrets.token_urlsafe(24)
        self.nonces.append(query.get("nonce"))
        self.codes[code] = {"client_id": query.get("client_id"), "claims": dict(self.user),
                            "nonce": query.get("nonce"),
                            "redirect_uri": query["redirect_uri"],
                            "challenge": query["code_challenge"]}
        back = {"code": code, "state": query.get("state", "")}
        return 302, {"Location": f"{query['redirect_uri']}?{urlencode(back)}"}

    def exchange(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The token endpoint: a code once, for the same client and redirect, with the
        verifier whose S256 hash was the challenge."""
        self.token_requests.append(form)
        grant = self.codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if grant is None or form.get("grant_type") != "authorization_code" \
                or form.get("client_id") != grant["client_id"] \
                or form.get("redirect_uri") != grant["redirect_uri"] \
                or digest.rstrip(b"=").decode() != grant["challenge"]:
            return 400, {"error": "invalid_grant"}
        access = self.token({"aud": self.audience, **grant["claims"]})
        claims = {"aud": grant["client_id"], "sub": grant["claims"]["sub"]}
        if grant["nonce"] is not None:
            claims["nonce"] = grant["nonce"]
        identity = self._id_token({**claims, **self.id_token_claims})
        return 200, {"access_token": access, "id_token": identity, "token_type": "Bearer",
                     "expires_in": 300}

    def jwks_hits(self) -> int:
        return self.hits[self.jwks_uri.removeprefix(self.base)]

    def discovery_hits(self) -> int:
        return self.hits[self.issuer.removeprefix(self.base) + "/.well-known/openid-configuration"]

    def stop(self) -> None:
        """Switch the provider off: its port refuses connections from now on."""
        self.server.shutdown()
        self.server.server_close()


def _handler(idp: FakeIdP) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: bytes = b"",
                    headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            idp.hits[self.path] += 1
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if self.path != idp.issuer.removeprefix(idp.base) + TOKEN_PATH:
                self._answer(404)
                return
            status, document = idp.exchange(form)
            self._answer(status, json.dumps(document).encode(),
                         {"Content-Type": "application/json"})

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            idp.hits[self.path] += 1
            parts = urlsplit(self.path)
            if parts.path == idp.issuer.removeprefix(idp.base) + AUTH_PATH:
                status, headers = idp.authorize(
                    {k: v[0] for k, v in parse_qs(parts.query).items()})
                self._answer(status, headers=headers)
                return
            if idp.delay:
                time.sleep(idp.delay)
            document = idp.document(self.path)
            if not idp.available or document is None:
                self.send_response(503 if not idp.available else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if idp.cache_control:
                self.send_header("Cache-Control", idp.cache_control)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler
