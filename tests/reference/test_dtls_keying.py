"""The focus's side of DTLS-SRTP: roles, identities and tls-ids in offers, answers and rekeys."""

from __future__ import annotations

from cryptography import x509

from confsec.codec.sdp import MediaDescription
from confsec.media.dtls import fingerprint_of, self_signed_identity
from confsec.reference import dtls_keying as dk

PARTICIPANT_FP = self_signed_identity("alice.confsec")[2]


def line(
    setup: str | None, fingerprint: str | None = PARTICIPANT_FP, tls_id: str = "a1"
) -> MediaDescription:
    attrs: list[tuple[str, str | None]] = [("tls-id", tls_id)]
    if fingerprint is not None:
        attrs.append(("fingerprint", fingerprint))
    if setup is not None:
        attrs.append(("setup", setup))
    return MediaDescription.build(
        "audio", port=40000, proto="UDP/TLS/RTP/SAVP", formats=["0"], attributes=attrs
    )


def attrs(pairs: list[tuple[str, str | None]]) -> dict[str, str | None]:
    return dict(pairs)


def test_an_actpass_offer_makes_the_mixer_the_client_with_a_fresh_identity() -> None:
    setup = dk.new_association(line("actpass"), frozenset())
    assert setup.role == "client" and setup.check_fingerprint
    assert setup.peer_fingerprints == (PARTICIPANT_FP,)
    answer = attrs(dk.answer_attributes(setup))
    assert answer["setup"] == "active" and answer["tls-id"] == setup.tls_id
    cert = x509.load_pem_x509_certificate(setup.certificate_pem)
    assert answer["fingerprint"] == fingerprint_of(cert)
    other = dk.new_association(line("actpass"), frozenset())
    assert other.certificate_pem != setup.certificate_pem and other.tls_id != setup.tls_id


def test_an_active_offer_makes_the_mixer_the_server() -> None:
    setup = dk.new_association(line("active"), frozenset())
    assert setup.role == "server"
    assert attrs(dk.answer_attributes(setup))["setup"] == "passive"


def test_the_defect_switch_turns_the_fingerprint_check_off() -> None:
    setup = dk.new_association(line("actpass"), frozenset({dk.NO_FINGERPRINT_CHECK}))
    assert not setup.check_fingerprint


def test_a_rekey_offers_a_new_identity_and_tls_id_with_actpass() -> None:
    old = dk.new_association(line("actpass"), frozenset())
    new = dk.rekeyed(old, frozenset())
    assert new.tls_id != old.tls_id and new.certificate_pem != old.certificate_pem
    offer = attrs(dk.offer_attributes(new, old))
    assert offer["setup"] == "actpass" and offer["tls-id"] == new.tls_id


def test_the_defect_switch_re_offers_the_same_association() -> None:
    old = dk.new_association(line("actpass"), frozenset())
    new = dk.rekeyed(old, frozenset({dk.REKEY_KEEPS_ASSOCIATION}))
    assert new == old
    # RFC 5763 section 5: a re-offer that keeps the association keeps the roles.
    assert attrs(dk.offer_attributes(new, old))["setup"] == "active"


def test_the_answer_to_a_rekey_settles_the_role() -> None:
    old = dk.new_association(line("actpass"), frozenset())
    new = dk.rekeyed(old, frozenset())
    fp = self_signed_identity("alice-again")[2]
    as_client = dk.answered(new, old, line("passive", fp, "b2"))
    assert as_client.role == "client" and as_client.peer_fingerprints == (fp,)
    assert dk.answered(new, old, line("active", fp, "b2")).role == "server"


def test_an_answer_without_a_usable_setup_keeps_the_old_association() -> None:
    """baresip answers a re-offer with actpass (an answer must be active or passive) and its
    old certificate: the association, and so the keys, stay as they were."""
    old = dk.new_association(line("actpass"), frozenset())
    new = dk.rekeyed(old, frozenset())
    assert dk.answered(new, old, line("actpass")) == old
    assert dk.answered(new, old, line(None)) == old
