@pics:dtls-srtp
Feature: DTLS-SRTP key management (RFC 5763, RFC 5764)
  Where the capability statement names DTLS-SRTP as the target's key management, every other
  feature runs as it is: the participants offer UDP/TLS/RTP/SAVP with a=fingerprint,
  a=setup:actpass and a=tls-id and no a=crypto, their SRTP keys come out of the DTLS handshake
  on each media port, and the key-stream ledger, the media checks and the rekeying checks judge
  those keys as they judge SDES keys. What a rekey means in this mode: the focus re-offers each
  stream with a new a=tls-id (RFC 8842 section 5), a new association runs on the same port, and
  its exported keys are the stream's next epoch; a re-offer with the same tls-id keeps the
  association and so the keys. A common stream needs a group key, which DTLS-SRTP alone cannot
  carry (that needs EKT, RFC 8870): R5 is not applicable unless the target claims group keys.

  This feature adds what only DTLS-SRTP has: the key exchange is authenticated by the
  certificate fingerprint signalled over SIPS (R2), the service must not fall back to keys in
  the signalling (R3), and no media may flow before the handshake has made its keys (R3).

  Background:
    Given the conference service is reachable over SIPS
    And alice has created a secure conference

  @req:R3
  Scenario: An SDES offer to a DTLS-SRTP service is refused or answered with DTLS-SRTP
    When carol joins the conference with a SDES offer
    Then carol is refused, or answered with DTLS-SRTP and no key in the signalling

  @req:R2
  Scenario: A certificate that does not match the signalled fingerprint gets no association
    Given bob has joined the conference
    When carol joins the conference with a mismatched fingerprint offer
    And every participant sends its tone for 1 second
    Then carol's DTLS association did not complete and no media reached her or came from her

  @req:R3
  Scenario: No media flows before the DTLS handshake has made its keys
    Given bob has joined the conference
    When every participant sends its tone for 1 second
    Then nothing reached alice or bob before their DTLS handshakes completed, and all that came after authenticated
