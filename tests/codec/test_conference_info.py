"""conference-info (RFC 4575): build, parse, schema validation, partial states, hostile XML."""

from __future__ import annotations

import pytest

from confsec.codec.conference_info import (
    ConferenceInfo,
    ConferenceInfoError,
    Endpoint,
    User,
    apply_partial,
    parse_conference_info,
)

CONF = "sips:conf-1@conference.example.test"

# RFC 4575 section 6.1 style example (trimmed to the elements the schema covers, namespaced).
RFC_EXAMPLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<conference-info xmlns="urn:ietf:params:xml:ns:conference-info"
    entity="sips:conf233@example.com" state="full" version="1">
  <conference-description>
    <subject>Agenda: This month's goals</subject>
    <service-uris>
      <entry><uri>http://sharepoint/salesgroup/</uri><purpose>web-page</purpose></entry>
    </service-uris>
  </conference-description>
  <conference-state>
    <user-count>33</user-count>
  </conference-state>
  <users>
    <user entity="sip:bob@example.com" state="full">
      <display-text>Bob Hoskins</display-text>
      <endpoint entity="sip:bob@pc33.example.com">
        <display-text>Bob's Laptop</display-text>
        <status>disconnected</status>
        <disconnection-method>departed</disconnection-method>
        <disconnection-info>
          <when>2005-03-04T20:00:00Z</when>
          <reason>bad voice quality</reason>
          <by>sip:mike@example.com</by>
        </disconnection-info>
        <media id="1">
          <display-text>main audio</display-text>
          <type>audio</type>
          <label>34567</label>
          <src-id>432424</src-id>
          <status>sendrecv</status>
        </media>
      </endpoint>
    </user>
  </users>
</conference-info>
"""


def _info(**kw) -> ConferenceInfo:
    users = (
        User(
            "sips:alice@conference.example.test",
            display_text="alice",
            roles=("participant",),
            endpoints=(Endpoint("sips:a1@x", status="connected", media=(("1", "audio"),)),),
        ),
    )
    return ConferenceInfo(
        **{"entity": CONF, "version": 3, "users": users, "user_count": 1, "active": True, **kw}
    )


def test_the_rfc_example_validates_and_parses() -> None:
    info = parse_conference_info(RFC_EXAMPLE)
    assert info.entity == "sips:conf233@example.com" and info.version == 1
    assert info.subject == "Agenda: This month's goals" and info.user_count == 33
    (bob,) = info.users
    assert bob.entity == "sip:bob@example.com" and bob.display_text == "Bob Hoskins"
    assert bob.endpoints[0].status == "disconnected"
    assert bob.endpoints[0].media == (("1", "audio"),)


def test_build_parse_round_trip() -> None:
    info = _info(display_text="conference of alice")
    data = info.to_bytes()
    back = parse_conference_info(data)
    assert back == info
    assert parse_conference_info(back.to_bytes()).raw == data


@pytest.mark.parametrize(
    "bad",
    [
        b"<conference-info/>",  # no namespace
        b'<conference-info xmlns="urn:ietf:params:xml:ns:conference-info"/>',  # no entity
        b'<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="sip:x" '
        b'state="bogus"/>',
        b'<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="sip:x">'
        b"<users><user><endpoint><status>dancing</status></endpoint></user></users>"
        b"</conference-info>",
        b'<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="sip:x">'
        b"<users/><conference-state/></conference-info>",  # wrong order
        b"not xml at all",
        b"",
    ],
)
def test_documents_outside_rfc_4575_are_refused(bad: bytes) -> None:
    with pytest.raises(ConferenceInfoError):
        parse_conference_info(bad)


def test_a_doctype_is_refused_so_no_entity_is_expanded() -> None:
    evil = (
        b'<?xml version="1.0"?><!DOCTYPE c [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="sip:x">'
        b"<conference-description><subject>&x;</subject></conference-description>"
        b"</conference-info>"
    )
    with pytest.raises(ConferenceInfoError, match="DOCTYPE"):
        parse_conference_info(evil)


def test_extensions_in_other_namespaces_are_allowed() -> None:
    doc = (
        b'<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" '
        b'xmlns:x="urn:example:ext" entity="sip:x" x:flag="1">'
        b'<users><user entity="sip:a@x"><x:thing/></user></users><x:more/></conference-info>'
    )
    assert parse_conference_info(doc).users[0].entity == "sip:a@x"


def test_partial_states_add_replace_and_delete_users() -> None:
    full = _info()
    bob = User("sips:bob@conference.example.test", display_text="bob")
    joined = apply_partial(full, ConferenceInfo(CONF, 4, "partial", users=(bob,)))
    assert [u.entity for u in joined.users] == [full.users[0].entity, bob.entity]
    assert joined.version == 4
    gone = User(full.users[0].entity, state="deleted")
    left = apply_partial(joined, ConferenceInfo(CONF, 5, "partial", users=(gone,)))
    assert [u.entity for u in left.users] == [bob.entity]
    assert apply_partial(left, full) is full
    # A partial document serialises and validates too.
    assert parse_conference_info(ConferenceInfo(CONF, 6, "partial", users=(gone,)).to_bytes())
