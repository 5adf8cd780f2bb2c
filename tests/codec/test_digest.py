"""Digest authentication for SIP: RFC 7616 known answers, parsing, client and server."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confsec.codec.digest import (
    ALGORITHMS,
    Challenge,
    Credentials,
    DigestClient,
    DigestError,
    DigestServer,
    compute_response,
    parse_challenge,
    parse_credentials,
)
from confsec.errors import ConfigError, RemoteProtocolError

# RFC 7616 §3.9.1
RFC_USER = "Mufasa"
RFC_PASSWORD = "Circle of Life"
RFC_REALM = "http-auth@example.org"
RFC_URI = "/dir/index.html"
RFC_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC_MD5 = "8ca523f5e9506fed4657c9700eebdbec"
RFC_SHA256 = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"


class FakeClock:
    """A clock the test moves by hand, so that nonce expiry needs no sleep."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- known answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("algorithm", "expected"), [("MD5", RFC_MD5), ("SHA-256", RFC_SHA256)])
def test_rfc7616_known_answers(algorithm: str, expected: str) -> None:
    got = compute_response(
        algorithm,
        RFC_USER,
        RFC_REALM,
        RFC_PASSWORD,
        "GET",
        RFC_URI,
        RFC_NONCE,
        1,
        RFC_CNONCE,
        "auth",
    )
    assert got == expected
    # nc given as the 8 digits sent, and algorithm names are case-insensitive
    assert (
        compute_response(
            algorithm.lower(),
            RFC_USER,
            RFC_REALM,
            RFC_PASSWORD,
            "GET",
            RFC_URI,
            RFC_NONCE,
            "00000001",
            RFC_CNONCE,
            "auth",
        )
        == expected
    )


def test_rfc7616_authorization_example_parses_and_verifies() -> None:
    value = (
        f'Digest username="{RFC_USER}",\r\n realm="{RFC_REALM}",\r\n uri="{RFC_URI}",\r\n'
        f' algorithm=MD5,\r\n nonce="{RFC_NONCE}",\r\n nc=00000001,\r\n cnonce="{RFC_CNONCE}",'
        f'\r\n qop=auth,\r\n response="{RFC_MD5}",\r\n opaque="{RFC_OPAQUE}"'
    )
    creds = parse_credentials(value)
    assert creds == Credentials(
        username=RFC_USER,
        realm=RFC_REALM,
        nonce=RFC_NONCE,
        uri=RFC_URI,
        response=RFC_MD5,
        algorithm="MD5",
        cnonce=RFC_CNONCE,
        qop="auth",
        nc=1,
        opaque=RFC_OPAQUE,
    )
    assert parse_credentials(creds.to_header()) == creds
    assert "nc=00000001" in creds.to_header()


def test_rfc7616_challenge_example() -> None:
    value = (
        f'Digest\r\n realm="{RFC_REALM}",\r\n qop="auth, auth-int",\r\n algorithm=SHA-256,'
        f'\r\n nonce="{RFC_NONCE}",\r\n opaque="{RFC_OPAQUE}"'
    )
    ch = parse_challenge(value)
    assert ch == Challenge(
        realm=RFC_REALM,
        nonce=RFC_NONCE,
        algorithm="SHA-256",
        qop=("auth", "auth-int"),
        opaque=RFC_OPAQUE,
    )
    assert parse_challenge(ch.to_header()) == ch


def test_legacy_rfc2069_response() -> None:
    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1 = md5(f"{RFC_USER}:{RFC_REALM}:{RFC_PASSWORD}")
    ha2 = md5("INVITE:sip:bob@biloxi.com")
    expected = md5(f"{ha1}:{RFC_NONCE}:{ha2}")
    got = compute_response(
        "MD5", RFC_USER, RFC_REALM, RFC_PASSWORD, "INVITE", "sip:bob@biloxi.com", RFC_NONCE
    )
    assert got == expected


def test_auth_int_and_sess_differ_from_auth() -> None:
    args = (RFC_USER, RFC_REALM, RFC_PASSWORD, "MESSAGE", "sip:a@b", RFC_NONCE, 1, RFC_CNONCE)
    auth = compute_response("SHA-256", *args, "auth")
    auth_int = compute_response("SHA-256", *args, "auth-int", b"hello")
    auth_int_other = compute_response("SHA-256", *args, "auth-int", b"hellO")
    sess = compute_response("SHA-256-sess", *args, "auth")
    assert len({auth, auth_int, auth_int_other, sess}) == 4
    assert len(compute_response("SHA-512-256", *args, "auth")) == 64


@pytest.mark.parametrize(
    ("algorithm", "nc", "cnonce", "qop"),
    [
        ("SHA-1", 1, "c", "auth"),
        ("MD5", 1, "c", "auth-conf"),
        ("MD5", None, "c", "auth"),
        ("MD5", 1, None, "auth"),
        ("MD5-sess", None, None, None),
    ],
)
def test_compute_response_refuses(
    algorithm: str, nc: int | None, cnonce: str | None, qop: str | None
) -> None:
    with pytest.raises(DigestError):
        compute_response(algorithm, "u", "r", "p", "INVITE", "sip:x", "n", nc, cnonce, qop)


# -- parsing ---------------------------------------------------------------------------------------


def test_challenge_tolerant_spacing_and_escapes() -> None:
    ch = parse_challenge(
        'digest   realm = "a \\"quoted\\" realm \\\\ x" ,nonce="n1",, stale = TRUE,'
        ' algorithm = md5-SESS , qop = "auth" , domain="sip:a sip:b", x-unknown=ignored'
    )
    assert ch.realm == 'a "quoted" realm \\ x'
    assert ch.nonce == "n1"
    assert ch.stale is True
    assert ch.algorithm == "MD5-sess"
    assert ch.qop == ("auth",)
    assert ch.domain == "sip:a sip:b"
    assert parse_challenge(ch.to_header()) == ch


def test_challenge_defaults() -> None:
    ch = parse_challenge('Digest realm="r", nonce="n"')
    assert (ch.algorithm, ch.qop, ch.opaque, ch.stale, ch.domain) == ("MD5", (), None, False, None)
    assert parse_challenge('Digest realm="r", nonce="n", algorithm=FOO-1').algorithm == "FOO-1"


@pytest.mark.parametrize(
    "value",
    [
        "",
        'Basic realm="r"',
        "Digest",
        'Digest realm="r"',
        'Digest nonce="n"',
        'Digest realm="r", realm="s", nonce="n"',
        'Digest realm="r, nonce="n"',
        'Digest realm "r", nonce="n"',
        'Digest realm="r" nonce="n"',
        'Digest realm="r", nonce="n", stale=maybe',
        'Digest realm=, nonce="n"',
        'Digest ="r", nonce="n"',
    ],
)
def test_bad_challenges(value: str) -> None:
    with pytest.raises(DigestError) as info:
        parse_challenge(value)
    assert isinstance(info.value, RemoteProtocolError)


GOOD_CREDS = 'Digest username="u", realm="r", nonce="n", uri="sip:x", response="00"'


@pytest.mark.parametrize(
    "value",
    [
        'Digest username="u", realm="r", nonce="n", uri="sip:x"',
        GOOD_CREDS + ", qop=auth",
        GOOD_CREDS + ', qop=auth, cnonce="c"',
        GOOD_CREDS + ', qop=auth, cnonce="c", nc=1',
        GOOD_CREDS + ', qop=auth, cnonce="c", nc=0000000g',
        GOOD_CREDS + ', qop=auth, cnonce="c", nc=000000001',
        GOOD_CREDS + ', username="v"',
        GOOD_CREDS.replace('username="u"', "username*=ISO-8859-1''x"),
        GOOD_CREDS.replace('username="u"', "username*=UTF-8''%ff"),
    ],
)
def test_bad_credentials(value: str) -> None:
    with pytest.raises(DigestError):
        parse_credentials(value)


def test_credentials_username_star() -> None:
    value = GOOD_CREDS.replace('username="u"', "username*=UTF-8''J%C3%A4s%C3%B8n%20Doe")
    assert parse_credentials(value).username == "Jäsøn Doe"


def test_credentials_quoted_qop_and_upper_hex_nc_tolerated() -> None:
    creds = parse_credentials(GOOD_CREDS + ', qop="auth", cnonce="c", nc=0000000A')
    assert creds.qop == "auth" and creds.nc == 10
    assert "nc=0000000a" in creds.to_header()


@settings(max_examples=int(os.environ.get("CONFSEC_FUZZ_EXAMPLES", "300")), deadline=None)
@given(st.text(max_size=120) | st.builds(lambda s: "Digest " + s, st.text(max_size=120)))
def test_parsers_only_raise_digest_error(value: str) -> None:
    for parse in (parse_challenge, parse_credentials):
        try:
            parse(value)
        except DigestError:
            pass


# -- client ----------------------------------------------------------------------------------------


def test_client_counts_nonce_uses_and_refreshes_cnonce() -> None:
    client = DigestClient("alice", "s3cret")
    ch = Challenge(realm="atlanta.com", nonce="n1", algorithm="SHA-256", qop=("auth",))
    first = parse_credentials(client.authorize(ch, "REGISTER", "sip:atlanta.com"))
    second = parse_credentials(client.authorize(ch, "REGISTER", "sip:atlanta.com"))
    other = parse_credentials(
        client.authorize(
            Challenge(realm="atlanta.com", nonce="n2", algorithm="SHA-256", qop=("auth",)),
            "REGISTER",
            "sip:atlanta.com",
        )
    )
    assert (first.nc, second.nc, other.nc) == (1, 2, 1)
    assert first.cnonce != second.cnonce
    assert first.response != second.response
    assert first.algorithm == "SHA-256" and first.qop == "auth"
    expected = compute_response(
        "SHA-256",
        "alice",
        "atlanta.com",
        "s3cret",
        "REGISTER",
        "sip:atlanta.com",
        "n1",
        2,
        second.cnonce,
        "auth",
    )
    assert second.response == expected


def test_client_accepts_header_text_and_echoes_opaque() -> None:
    client = DigestClient("alice", "pw")
    value = client.authorize('Digest realm="r", nonce="n", opaque="op"', "INVITE", "sip:b@x")
    creds = parse_credentials(value)
    assert creds.opaque == "op"
    assert creds.qop is None and creds.nc is None and creds.cnonce is None
    assert creds.response == compute_response("MD5", "alice", "r", "pw", "INVITE", "sip:b@x", "n")


def test_client_uses_auth_int_when_only_choice() -> None:
    client = DigestClient("alice", "pw")
    ch = Challenge(realm="r", nonce="n", qop=("auth-int",))
    creds = client.credentials(ch, "MESSAGE", "sip:b@x", b"body")
    assert creds.qop == "auth-int"
    assert creds.response == compute_response(
        "MD5", "alice", "r", "pw", "MESSAGE", "sip:b@x", "n", 1, creds.cnonce, "auth-int", b"body"
    )


@pytest.mark.parametrize(
    "challenge",
    [
        Challenge(realm="r", nonce="n", algorithm="SHA-1"),
        Challenge(realm="r", nonce="n", qop=("auth-conf",)),
    ],
)
def test_client_refuses_what_it_cannot_answer(challenge: Challenge) -> None:
    with pytest.raises(DigestError):
        DigestClient("alice", "pw").authorize(challenge, "INVITE", "sip:b@x")


def test_client_repr_hides_password() -> None:
    client = DigestClient("alice", "hunter2-secret")
    assert "hunter2-secret" not in repr(client)
    assert "alice" in repr(client)


# -- server ----------------------------------------------------------------------------------------

USERS = {"alice": "wonderland", "bob": "builder"}
URI = "sip:conf@focus.example.com"


def make_server(**kwargs: object) -> tuple[DigestServer, FakeClock]:
    clock = FakeClock()
    server = DigestServer("focus.example.com", USERS, now=clock, **kwargs)  # type: ignore[arg-type]
    return server, clock


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_round_trip_every_algorithm(algorithm: str) -> None:
    server, _ = make_server(algorithm=algorithm)
    ch = server.challenge()
    assert ch.algorithm == algorithm and ch.qop == ("auth",)
    header = DigestClient("alice", "wonderland").authorize(ch.to_header(), "INVITE", URI)
    result = server.verify("INVITE", URI, header)
    assert result.ok and result.reason is None and result.username == "alice"


def test_default_algorithm_is_sha256() -> None:
    server, _ = make_server()
    assert server.challenge().algorithm == "SHA-256"
    assert "wonderland" not in repr(server)


def test_wrong_password_refused() -> None:
    server, _ = make_server()
    header = DigestClient("alice", "WRONG").authorize(server.challenge(), "INVITE", URI)
    result = server.verify("INVITE", URI, header)
    assert not result.ok and result.reason == "bad-response" and result.username == "alice"


def test_unknown_user_refused() -> None:
    server, _ = make_server()
    header = DigestClient("mallory", "x").authorize(server.challenge(), "INVITE", URI)
    assert server.verify("INVITE", URI, header).reason == "unknown-user"


def test_replayed_nonce_count_refused() -> None:
    server, _ = make_server()
    client = DigestClient("alice", "wonderland")
    ch = server.challenge()
    first = client.authorize(ch, "INVITE", URI)
    second = client.authorize(ch, "INVITE", URI)
    third = client.authorize(ch, "INVITE", URI)
    assert server.verify("INVITE", URI, first).ok
    assert server.verify("INVITE", URI, first).reason == "replayed-nonce-count"
    assert server.verify("INVITE", URI, third).ok  # nc=3: skipping is allowed
    assert server.verify("INVITE", URI, second).reason == "replayed-nonce-count"  # nc went back


def test_replay_defect_switch() -> None:
    server, _ = make_server(check_replay=False)
    header = DigestClient("alice", "wonderland").authorize(server.challenge(), "INVITE", URI)
    assert server.verify("INVITE", URI, header).ok
    assert server.verify("INVITE", URI, header).ok


def test_response_defect_switch() -> None:
    server, _ = make_server(check_response=False)
    header = DigestClient("alice", "WRONG").authorize(server.challenge(), "INVITE", URI)
    assert server.verify("INVITE", URI, header).ok
    # other checks still apply
    assert server.verify("INVITE", URI, header).reason == "replayed-nonce-count"


def test_stale_nonce_then_retry() -> None:
    server, clock = make_server(nonce_ttl=30.0)
    client = DigestClient("alice", "wonderland")
    ch = server.challenge()
    clock.now += 29.0
    assert server.verify("INVITE", URI, client.authorize(ch, "INVITE", URI)).ok
    clock.now += 2.0
    result = server.verify("INVITE", URI, client.authorize(ch, "INVITE", URI))
    assert result.reason == "stale-nonce" and result.stale
    fresh = server.challenge(stale=result.stale)
    assert fresh.stale and "stale=TRUE" in fresh.to_header()
    assert server.verify("INVITE", URI, client.authorize(fresh, "INVITE", URI)).ok


def test_stale_nonce_with_wrong_password_is_bad_response() -> None:
    server, clock = make_server(nonce_ttl=30.0)
    ch = server.challenge()
    clock.now += 60.0
    header = DigestClient("alice", "WRONG").authorize(ch, "INVITE", URI)
    assert server.verify("INVITE", URI, header).reason == "bad-response"


def test_nonce_expiry_follows_only_the_clock_it_is_handed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server never reads a clock of its own: with every clock of `time` broken, issue and
    expiry still work, and a nonce goes stale when the handed clock says so, not the wall."""

    def no_clock() -> float:
        raise AssertionError("the digest server read a clock it was not handed")

    for name in ("monotonic", "monotonic_ns", "time", "time_ns", "perf_counter", "process_time"):
        monkeypatch.setattr(time, name, no_clock)
    server, clock = make_server(nonce_ttl=30.0)
    client = DigestClient("alice", "wonderland")
    ch = server.challenge()
    clock.now += 30.0
    assert server.verify("INVITE", URI, client.authorize(ch, "INVITE", URI)).ok
    clock.now += 0.5
    assert server.verify("INVITE", URI, client.authorize(ch, "INVITE", URI)).reason == (
        "stale-nonce"
    )
    clock.now -= 1.0  # the handed clock is the only truth, even when it goes back
    assert server.verify("INVITE", URI, client.authorize(ch, "INVITE", URI)).ok


def test_server_has_no_default_clock() -> None:
    with pytest.raises(TypeError):
        DigestServer("focus.example.com", USERS)  # type: ignore[call-arg]


def _tamper(nonce: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4)))
    raw[3] ^= 0x01  # move the timestamp: the MAC no longer matches
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "forge",
    [
        lambda n: "dGhpcyBpcyBub3QgYSBub25jZQ",
        lambda n: "not base64 at all!",
        lambda n: "",
        _tamper,
        lambda n: DigestServer(
            "focus.example.com", USERS, secret=b"other", now=FakeClock()
        ).new_nonce(),
        lambda n: DigestServer(
            "other.example.com", USERS, secret=b"k", now=FakeClock()
        ).new_nonce(),
    ],
    ids=["random", "garbage", "empty", "tampered", "other-secret", "other-realm"],
)
def test_forged_nonce_refused(forge: Callable[[str], str]) -> None:
    server, _ = make_server(secret=b"k")
    nonce = forge(server.new_nonce())
    ch = Challenge(realm="focus.example.com", nonce=nonce, algorithm="SHA-256", qop=("auth",))
    header = DigestClient("alice", "wonderland").authorize(ch, "INVITE", URI)
    assert server.verify("INVITE", URI, header).reason == "unknown-nonce"


def test_shared_secret_lets_servers_share_nonces() -> None:
    one = DigestServer("focus.example.com", USERS, secret=b"shared", now=FakeClock())
    two = DigestServer("focus.example.com", USERS, secret=b"shared", now=FakeClock())
    header = DigestClient("bob", "builder").authorize(one.challenge(), "BYE", URI)
    assert two.verify("BYE", URI, header).ok


def test_wrong_realm_algorithm_and_uri() -> None:
    server, _ = make_server()
    client = DigestClient("alice", "wonderland")
    ch = server.challenge()
    other_realm = Challenge(realm="evil.example.com", nonce=ch.nonce, algorithm="SHA-256")
    md5 = Challenge(realm=ch.realm, nonce=ch.nonce, algorithm="MD5", qop=("auth",))
    assert server.verify("INVITE", URI, client.authorize(other_realm, "INVITE", URI)).reason == (
        "wrong-realm"
    )
    assert server.verify("INVITE", URI, client.authorize(md5, "INVITE", URI)).reason == (
        "wrong-algorithm"
    )
    header = client.authorize(ch, "INVITE", "sip:other@focus.example.com")
    assert server.verify("INVITE", URI, header).reason == "uri-mismatch"
    # the method is covered by the response: a response computed for BYE fails for INVITE
    assert server.verify("INVITE", URI, client.authorize(ch, "BYE", URI)).reason == ("bad-response")


@pytest.mark.parametrize("value", [None, "", "   "])
def test_no_credentials(value: str | None) -> None:
    server, _ = make_server()
    result = server.verify("INVITE", URI, value)
    assert result == result.__class__(False, "no-credentials", None)


@pytest.mark.parametrize(
    "value",
    [
        "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
        "Digest garbage",
        'Digest username="alice"',
    ],
)
def test_malformed_credentials(value: str) -> None:
    server, _ = make_server()
    assert server.verify("INVITE", URI, value).reason == "malformed"


def test_qop_required_when_offered() -> None:
    server, _ = make_server()
    ch = server.challenge()
    legacy = Challenge(realm=ch.realm, nonce=ch.nonce, algorithm=ch.algorithm)  # no qop
    header = DigestClient("alice", "wonderland").authorize(legacy, "INVITE", URI)
    assert server.verify("INVITE", URI, header).reason == "malformed"


def test_legacy_server_without_qop() -> None:
    server, _ = make_server(algorithm="MD5", qop=())
    client = DigestClient("alice", "wonderland")
    ch = server.challenge()
    assert ch.qop == () and "qop" not in ch.to_header()
    header = client.authorize(ch, "REGISTER", URI)
    assert server.verify("REGISTER", URI, header).ok
    # without nc a nonce can only be used once
    assert server.verify("REGISTER", URI, header).reason == "replayed-nonce-count"


def test_auth_int_covers_body() -> None:
    server, _ = make_server(qop=("auth-int",))
    client = DigestClient("alice", "wonderland")
    header = client.authorize(server.challenge(), "MESSAGE", URI, b"hello")
    assert server.verify("MESSAGE", URI, header, body=b"hello!").reason == "bad-response"
    header = client.authorize(server.challenge(), "MESSAGE", URI, b"hello")
    assert server.verify("MESSAGE", URI, header, body=b"hello").ok


def test_seen_nonces_are_purged_once_stale() -> None:
    server, clock = make_server(nonce_ttl=10.0)
    client = DigestClient("alice", "wonderland")
    for _ in range(DigestServer._PURGE_AT + 5):
        assert server.verify("INVITE", URI, client.authorize(server.challenge(), "INVITE", URI)).ok
    clock.now += 11.0
    assert server.verify("INVITE", URI, client.authorize(server.challenge(), "INVITE", URI)).ok
    assert len(server._seen) < DigestServer._PURGE_AT


def test_many_live_nonces_do_not_rescan_the_table_on_every_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """More live nonces than _PURGE_AT (a busy focus): purges stay rare, O(1) per request
    amortised (found by benchmarks/fuzz_reference.py: the focus slowed down as it served)."""
    server, _ = make_server(nonce_ttl=1000.0)
    client = DigestClient("alice", "wonderland")
    purges = 0
    purge = server._purge

    def counting(now: float) -> None:
        nonlocal purges
        purges += 1
        purge(now)

    monkeypatch.setattr(server, "_purge", counting)
    n = 6 * DigestServer._PURGE_AT
    for _ in range(n):
        assert server.verify("INVITE", URI, client.authorize(server.challenge(), "INVITE", URI)).ok
    assert len(server._seen) == n  # all still live: nothing may be forgotten
    assert purges <= 4, purges  # 1024 -> 2048 -> 4096 -> 8192, not once per request


def test_unsupported_server_algorithm_is_config_error() -> None:
    with pytest.raises(ConfigError):
        DigestServer("r", USERS, algorithm="SHA-1", now=FakeClock())
