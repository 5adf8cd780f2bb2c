"""Defect switches of the embedded reference deployment.

Each switch makes the reference non-conformant in exactly one way. The suite is only worth
something if every check fails on its matching defect: `tests/test_self_validation.py` runs the
scenarios of `requirement` with each switch on and pins that they fail.
"""

from __future__ import annotations

from dataclasses import dataclass

from confsec.errors import ConfigError

KEY_MANAGEMENT_MODES = ("sdes", "dtls-srtp")
"""How the reference can key SRTP (`confsec run --reference-key-management`)."""


@dataclass(frozen=True)
class Defect:
    name: str
    requirement: str
    description: str
    key_management: str | None = None
    """The mode the switch lives in ('dtls-srtp': its code runs only there); None: any."""


DEFECTS: tuple[Defect, ...] = (
    # R1: ad hoc secure conference creation
    Defect(
        "factory-ignores-secure",
        "R1",
        "the factory ignores the secure signal: it answers a SIPS/SAVP creation with plain RTP",
    ),
    Defect(
        "no-isfocus", "R1", "the focus answers creation without a conference URI marked ;isfocus"
    ),
    Defect(
        "policy-not-applied",
        "R1",
        "the secure policy is not applied to later joins: a plain RTP join is admitted",
    ),
    # R2: authentication of participants and service
    Defect("accept-unauthenticated", "R2", "requests without credentials are admitted"),
    Defect(
        "accept-any-password", "R2", "the digest challenge is issued but any response is accepted"
    ),
    Defect(
        "accept-replayed-nonce",
        "R2",
        "a replayed (nonce, nonce-count) is accepted: no replay protection",
    ),
    Defect(
        "digest-reveals-unknown-users",
        "R2",
        "a digest response for an unknown user gets 404 Unknown user, a wrong password 403",
    ),
    Defect("wrong-domain-cert", "R2", "the service presents a certificate for another domain"),
    Defect(
        "no-client-cert-required",
        "R2",
        "mutual TLS is claimed but a client without a certificate is admitted",
    ),
    Defect(
        "client-cert-ignores-validity",
        "R2",
        "the TLS listener skips the validity period of client certificates (NO_CHECK_TIME): an "
        "expired or not yet valid one is admitted",
    ),
    Defect(
        "client-cert-ignores-eku",
        "R2",
        "the TLS listener verifies client certificates for any purpose: one whose extended key "
        "usage is serverAuth only is admitted",
    ),
    Defect(
        "client-cert-any-ca",
        "R2",
        "the TLS listener's verify callback waves through issuer errors: a self-signed client "
        "certificate, or one from any CA, is admitted",
    ),
    # R2: members-only conferences authorise who authenticated (confsec/reference/members.py)
    Defect(
        "join-authorises-from",
        "R2",
        "a members-only conference checks its member list against the From URI: an "
        "authenticated non-member whose From names a member is admitted",
    ),
    Defect(
        "join-authorises-pai",
        "R2",
        "a members-only conference checks its member list against a P-Asserted-Identity the "
        "client sent: an authenticated non-member asserting a member's identity is admitted",
    ),
    Defect(
        "join-authorises-display-name",
        "R2",
        "a members-only conference takes the From display name as the user name: an "
        "authenticated non-member showing a member's name is admitted",
    ),
    # R3: media protection
    Defect("accept-plain-rtp", "R3", "RTP/AVP offers are accepted, at creation and on join"),
    Defect("accept-null-cipher", "R3", "NULL_HMAC_SHA1_* and UNENCRYPTED_SRTP offers are accepted"),
    Defect(
        "reoffer-policy-not-applied",
        "R3",
        "the focus checks the secure policy only on the INVITE that admits a participant: a "
        "re-INVITE or UPDATE offering RTP/AVP or a null cipher is accepted and the leg switched to "
        "unprotected media",
    ),
    Defect(
        "answer-other-suite",
        "R3",
        "the answer selects AES_CM_128_HMAC_SHA1_80 whatever suite the offer named",
    ),
    Defect(
        "mixer-sends-plain-rtp",
        "R3",
        "the mixer sends plain RTP to participants although SRTP was negotiated",
    ),
    Defect(
        "mixer-mixes-unauthenticated",
        "R3",
        "the mixer mixes packets that fail SRTP authentication (plain RTP) into the output",
    ),
    Defect(
        "mixer-sends-plain-rtcp",
        "R3",
        "the mixer sends its RTCP reports (SR, SDES naming the conference) in the clear beside "
        "SRTP",
    ),
    Defect(
        "mixer-relays-rtcp",
        "R3",
        "the mixer passes every RTCP datagram a participant sends on to the others unprocessed, "
        "plain or unauthenticated",
    ),
    Defect(
        "srtcp-srtp-keystream",
        "R3",
        "the mixer protects SRTCP with the SRTP session keys (labels 0-2) instead of SRTCP's own "
        "(3-5): the SRTP keystream is used twice",
    ),
    # R4: distinct key streams
    Defect(
        "reuse-key-across-participants",
        "R4",
        "the focus sends to every participant with one key, salt and SSRC",
    ),
    Defect(
        "reuse-key-across-directions",
        "R4",
        "the focus sends back with the participant's own key and SSRC",
    ),
    Defect(
        "reuse-key-across-media",
        "R4",
        "the focus uses one key, salt and SSRC for audio and video of a participant",
    ),
    # O1: the focus -> mixer key interface (confsec/reference/keychannel.py); caught by the O1
    # scenarios and by `confsec analyze` on a capture of that interface.
    Defect(
        "key-channel-in-clear",
        "O1",
        "the focus hands media keys to the mixer over plain TCP instead of TLS",
    ),
    Defect(
        "key-channel-no-client-auth",
        "O1",
        "the mixer takes key commands from any TLS client, without a client certificate",
    ),
    Defect(
        "key-channel-any-client-cert",
        "O1",
        "the mixer takes key commands from any client whose certificate the run's CA issued "
        "(a participant's too), not only from the AS",
    ),
    # R5: group keys (confsec/reference/rekey.py, keys.py)
    Defect(
        "group-key-to-non-member",
        "R5",
        "an INVITE to the conference URI gets the group key in early media before authentication",
    ),
    Defect(
        "group-key-equals-unicast",
        "R5",
        "the common stream's group key is the key the focus sends to one participant with",
    ),
    # R3, R5, O4: media keys outside their holder's SDP answer (confsec/reference/leaky.py)
    Defect(
        "key-in-provisional",
        "R3",
        "a joiner gets 183 Session Progress whose early-media SDP is the answer last sent on "
        "another leg: that participant's keys",
    ),
    Defect(
        "key-in-error-response",
        "R5",
        "a refused join's 488 describes the media the conference takes with the common "
        "stream's live SDP line: the group key goes to the refused party",
    ),
    Defect(
        "key-in-notify",
        "O4",
        "the conference state carries an extension element per member with the key-params the "
        "focus sends that member with",
    ),
    Defect(
        "key-in-bfcp-status",
        "R5",
        "a FloorRequestStatus names the stream the floor governs in its status text, copied "
        "from its SDP with the group key",
    ),
    # R6: rekeying on join and leave (confsec/reference/rekey.py, keys.py)
    Defect("no-rekey-on-leave", "R6", "no rekey when a participant leaves: the leaver's keys stay"),
    Defect(
        "no-rekey-on-join", "R6", "no rekey when a participant joins: it gets the old group key"
    ),
    Defect(
        "rekey-reuses-salt", "R6", "a rekey gives new master keys but keeps the old master salts"
    ),
    Defect(
        "rekey-partial",
        "R6",
        "a rekey renews the unicast streams but leaves the common stream on its old group key",
    ),
    Defect(
        "rekey-audio-only",
        "R6",
        "a rekey round renews the audio streams' keys but re-offers video with its old keys",
    ),
    # R6: leaving and vanishing (confsec/reference/mixer.py, liveness.py)
    Defect(
        "mixer-keeps-sending-to-leaver",
        "R6",
        "the mixer goes on sending the conference to a leaver's address, under its old keys, "
        "after the BYE",
    ),
    Defect(
        "mixer-mixes-leaver",
        "R6",
        "the mixer keeps the leaver's old port open and mixes what authenticates there under "
        "the leaver's old key",
    ),
    Defect(
        "no-vanish-detection",
        "R6",
        "a participant whose TLS connection closes and whose media stops without a BYE is never "
        "noticed: its leg stays, the mixer sends to it, nobody is rekeyed",
    ),
    # O2: cost of rekeying (confsec/reference/rekey.py)
    Defect(
        "rekey-late",
        "O2",
        "a rekey round starts 2 s after the last join or leave: within the declared 3 s rekey "
        "deadline, beyond the declared 1 s latency bound (joins inside those 2 s share the "
        "pending epoch's key, so R6's join scenarios fail too)",
    ),
    # R7: conference event package (confsec/reference/events.py)
    Defect(
        "notify-plain-transport",
        "R7",
        "NOTIFY follows the subscriber's Contact onto plain UDP/TCP instead of its TLS connection",
    ),
    Defect(
        "subscribe-without-auth",
        "R7",
        "SUBSCRIBE to the conference state is accepted without authentication or membership",
    ),
    Defect(
        "identity-from-header",
        "R7",
        "the conference state shows the From display name and URI, not the authenticated user",
    ),
    Defect(
        "leaver-keeps-subscription",
        "R7",
        "a participant's subscription to the conference state outlives its leave: it is still "
        "notified of who joins after it left, until the conference empties",
    ),
    Defect(
        "subscribe-authorises-past-participants",
        "R7",
        "the event notifier authorises a SUBSCRIBE against everyone the conference has ever "
        "had (its roster keeps departed users, RFC 4575 'deleted'): a leaver subscribes again "
        "and gets the state",
    ),
    Defect(
        "subscribe-authorises-from",
        "R7",
        "the event notifier checks membership against the SUBSCRIBE's From URI, not the "
        "authenticated user: a non-participant whose From names a participant gets the state",
    ),
    Defect(
        "subscribe-authorises-pai",
        "R7",
        "the event notifier trusts a P-Asserted-Identity the client sent (RFC 3325 9.1: only a "
        "trust domain may assert one): a non-participant asserting a participant gets the state",
    ),
    Defect(
        "subscribe-authorises-display-name",
        "R7",
        "the event notifier looks the subscriber up by its From display name: a "
        "non-participant showing a participant's name gets the state",
    ),
    # R8: floor control (confsec/reference/floor.py)
    Defect("bfcp-plain-tcp", "R8", "a plain TCP/BFCP offer is accepted and served without TLS"),
    Defect(
        "bfcp-fingerprint-mismatch",
        "R8",
        "the BFCP answer's a=fingerprint is not the certificate the floor server presents",
    ),
    Defect(
        "bfcp-foreign-user-id",
        "R8",
        "a floor request that carries another participant's user id is accepted",
    ),
    Defect(
        "bfcp-no-client-fingerprint-check",
        "R8",
        "the floor server never compares the client's TLS certificate with the a=fingerprint "
        "its offer named: any certificate of the CA that names the user is accepted",
    ),
    Defect(
        "bfcp-binds-on-hello",
        "R8",
        "a BFCP connection is bound to whatever user id its first message claims, from any "
        "certificate offered in the conference; only later messages are held to that binding",
    ),
    Defect(
        "bfcp-crash-on-malformed",
        "R8",
        "malformed BFCP takes the floor control server down for everyone",
    ),
    Defect(
        "floor-authorises-claimed-user",
        "R8",
        "the floor server checks only that a client's certificate is from its CA and binds a "
        "fresh connection to the user id its first message claims: anyone with a certificate, "
        "a non-participant too, takes the floor as a participant",
    ),
    # Robustness: signalling (malformed SIP and SDP, oversized headers, unknown crypto suites)
    Defect(
        "focus-crash-on-malformed-sip",
        "R1",
        "a request the focus cannot parse (or an oversized one) crashes it: every conference ends",
    ),
    Defect(
        "accept-malformed-sdp",
        "R3",
        "an offer whose SDP or a=crypto does not parse is admitted with a default template",
    ),
    Defect(
        "accept-unknown-suite",
        "R3",
        "the first a=crypto is taken unchecked: an unknown suite falls back to plain RTP/AVP",
    ),
    # Robustness: media (truncated, replayed and forged SRTP)
    Defect(
        "mixer-crash-on-truncated",
        "R3",
        "an SRTP packet too short for its header and tag stops the mixer for the whole conference",
    ),
    Defect(
        "mixer-accepts-replay",
        "R3",
        "the mixer has no SRTP replay window: a replayed packet is decrypted and mixed again",
    ),
    Defect(
        "mixer-skips-auth-check",
        "R3",
        "the mixer decrypts SRTP without checking the tag: a forged packet is mixed",
    ),
    # DTLS-SRTP key management (RFC 5763/5764), the reference's dtls-srtp mode
    Defect(
        "dtls-no-fingerprint-check",
        "R2",
        "the mixer completes DTLS handshakes with any certificate, whatever fingerprint the "
        "participant signalled",
        "dtls-srtp",
    ),
    Defect(
        "dtls-falls-back-to-sdes",
        "R3",
        "a DTLS-SRTP service answers an SDES offer with SDES keys in the SDP",
        "dtls-srtp",
    ),
    Defect(
        "dtls-media-before-handshake",
        "R3",
        "the mixer starts a leg's media at once, unprotected until the DTLS handshake, which it "
        "begins only after a first media packet's worth of delay",
        "dtls-srtp",
    ),
    Defect(
        "dtls-rekey-keeps-association",
        "R6",
        "the re-offer after a join or leave repeats the identity and a=tls-id, so the DTLS "
        "association and its keys never change",
        "dtls-srtp",
    ),
    # Dial-out and REFER (confsec/reference/dialout.py, registrar.py)
    Defect(
        "dial-out-best-effort-srtp",
        "R1",
        "the focus calls invitees with SRTP as an option (RTP/AVP with a=crypto) and admits a "
        "plain answer",
    ),
    Defect(
        "dial-out-plain-fallback",
        "R1",
        "an invitee that refuses the SRTP offer (488) is called again with plain RTP/AVP",
    ),
    Defect(
        "dial-out-wrong-cert",
        "R2",
        "the focus calls invitees presenting a certificate for another domain",
    ),
    Defect(
        "dial-out-no-client-cert",
        "R2",
        "the focus calls invitees presenting no certificate: the service is not authenticated",
    ),
    Defect("refer-from-anyone", "R2", "a REFER from a user who is not a participant is obeyed"),
    Defect(
        "refer-without-authentication", "R2", "REFER is not challenged: anyone can make it call"
    ),
    Defect(
        "dial-out-names-claimed-identity",
        "R2",
        "the conference state names a called user by the identity its answer claims "
        "(P-Asserted-Identity), not by the address of record the focus called",
    ),
    Defect(
        "refer-removal-no-rekey",
        "R6",
        "a participant removed by REFER (method=BYE) leaves, but the others are not rekeyed",
    ),
    Defect(
        "refer-notify-plain",
        "R7",
        "the REFER's progress (sipfrag NOTIFY) is sent over plain UDP to the referrer's Contact",
    ),
)

BY_NAME: dict[str, Defect] = {d.name: d for d in DEFECTS}


def parse_defects(
    names: list[str] | tuple[str, ...], key_management: str | None = None
) -> frozenset[str]:
    """Validate switch names given on the command line; unknown ones are a usage error, and so
    is a switch whose code runs only in another key management mode (it would switch nothing
    on, and the run would report a conformant reference with the defect "on")."""
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise ConfigError(
            f"unknown defect switch {', '.join(unknown)}; `confsec list defects` shows the "
            f"{len(DEFECTS)} switches"
        )
    if key_management is not None:
        for n in names:
            mode = BY_NAME[n].key_management
            if mode is not None and mode != key_management:
                raise ConfigError(
                    f"defect switch {n} lives in the reference's {mode} mode; add "
                    f"--reference-key-management {mode}"
                )
    return frozenset(names)
