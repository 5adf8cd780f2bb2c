"""RFC 5366 recipient lists in an INVITE body: build, split, and hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confsec.codec.recipient_list import (
    RecipientListError,
    recipient_list_body,
    split_invite_body,
)

SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"

# RFC 5366 section 6 style: SDP, then the list with the recipient-list disposition (RFC 5363).
EXAMPLE = (
    b"--boundary1\r\n"
    b"Content-Type: application/sdp\r\n"
    b"\r\n" + SDP + b"\r\n"
    b"--boundary1\r\n"
    b"Content-Type: application/resource-lists+xml\r\n"
    b"Content-Disposition: recipient-list\r\n"
    b"\r\n"
    b'<?xml version="1.0" encoding="UTF-8"?>\r\n'
    b'<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"\r\n'
    b' xmlns:cp="urn:ietf:params:xml:ns:copycontrol">\r\n'
    b"  <list>\r\n"
    b'    <entry uri="sip:bill@example.com" cp:copyControl="to"/>\r\n'
    b'    <entry uri="sip:randy@example.net" cp:copyControl="to"/>\r\n'
    b'    <list><entry uri="sip:joe@example.org"/></list>\r\n'
    b"  </list>\r\n"
    b"</resource-lists>\r\n"
    b"--boundary1--\r\n"
)


def test_the_rfc_5366_example_splits_into_offer_and_list() -> None:
    body = split_invite_body('multipart/mixed;boundary="boundary1"', EXAMPLE)
    assert body.sdp == SDP
    assert body.recipients == (
        "sip:bill@example.com",
        "sip:randy@example.net",
        "sip:joe@example.org",
    )


def test_what_is_built_splits_back() -> None:
    uris = ["sips:alice@conference.example.test", 'sips:o"brien@conference.example.test']
    body, content_type = recipient_list_body(SDP, uris)
    assert content_type.startswith("multipart/mixed;boundary=")
    split = split_invite_body(content_type, body)
    assert split.sdp == SDP and split.recipients == tuple(uris)


def test_a_plain_body_is_the_offer_and_carries_no_list() -> None:
    assert split_invite_body("application/sdp", SDP).recipients is None
    assert split_invite_body(None, b"garbage").sdp == b"garbage"


def test_a_list_without_the_recipient_list_disposition_is_not_a_recipient_list() -> None:
    body = EXAMPLE.replace(b"Content-Disposition: recipient-list\r\n", b"")
    assert split_invite_body('multipart/mixed;boundary="boundary1"', body).recipients is None


@pytest.mark.parametrize(
    ("content_type", "body", "why"),
    [
        ("multipart/mixed", EXAMPLE, "boundary"),
        ("multipart/mixed;boundary=other", EXAMPLE, "delimiter"),
        ("multipart/mixed;boundary=boundary1", EXAMPLE.replace(b"--boundary1--", b""), "closing"),
        (
            "multipart/mixed;boundary=boundary1",
            EXAMPLE.replace(b"<list>", b'<!DOCTYPE x [<!ENTITY e "x">]><list>', 1),
            "XML",
        ),
        (
            "multipart/mixed;boundary=boundary1",
            EXAMPLE.replace(b'<entry uri="sip:bill@example.com"', b"<entry", 1),
            "no uri",
        ),
        (
            "multipart/mixed;boundary=boundary1",
            EXAMPLE.replace(b"<list><entry", b'<list><entry-ref ref="x"/><entry', 1),
            "entry-ref",
        ),
    ],
)
def test_malformed_bodies_are_refused(content_type: str, body: bytes, why: str) -> None:
    with pytest.raises(RecipientListError, match=why):
        split_invite_body(content_type, body)


def test_entities_are_not_expanded() -> None:
    xml = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list>'
        b'<entry uri="&x;"/></list></resource-lists>'
    )
    body = EXAMPLE.split(b"<?xml")[0] + xml + b"\r\n--boundary1--\r\n"
    with pytest.raises(RecipientListError):
        split_invite_body("multipart/mixed;boundary=boundary1", body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from(["boundary1", "b", "x y"]))
def test_any_bytes_split_or_raise_the_codec_error(data: bytes, boundary: str) -> None:
    for body in (data, b"--" + boundary.encode() + b"\r\n" + data, EXAMPLE[: len(data)]):
        try:
            split_invite_body(f'multipart/mixed;boundary="{boundary}"', body)
        except RecipientListError:
            pass
