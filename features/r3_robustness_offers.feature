@req:R3 @pics:sdes
Feature: Robustness of the service against offers it cannot use (R3)
  TR 33.829 clause 5.1.3: all participants in a secure conference shall use media protection.
  An offer whose protection cannot be set up must not get its sender admitted, and must not
  cost the others their protected media. Carol, authenticated, joins with offers that have a
  flaw in their SDP or in their a=crypto: the service refuses them (RFC 4568 section 7.1.2:
  488, or 400 for SDP that does not parse). An answerer skips the crypto suites it does not
  know (RFC 4568 section 7.1.2): an unknown suite offered first is passed over for a supported
  one offered after it, and an offer of unknown suites only is refused. Whether the conference
  went on is judged against the baseline second of the Background, in which alice and bob hear
  each other, on what arrives after the probe only: a target that carries no media at all is
  inconclusive, not a finding. The flaws are those of SDES offers (a=crypto): a DTLS-SRTP
  target refuses every SDES offer, which would show nothing, so this feature is for SDES
  targets (`@pics:sdes`); features/dtls_srtp.feature judges DTLS-SRTP offers.

  Background:
    Given the conference service is reachable over SIPS
    And alice has created a secure conference

  Rule: An offer the service cannot use is refused, and the conference goes on

    Background:
      Given bob has joined the conference
      And alice and bob hear each other's tones over protected media

    Scenario Outline: An offer with malformed SDP is refused and the conference goes on
      When carol joins the conference with an offer that has <flaw>
      And every participant sends its tone for 1 second
      Then carol is refused with 488 or 400
      And alice and bob still hear each other's tones over protected media

      Examples:
        | flaw                                              |
        | an a=crypto key that is not base64                |
        | an a=crypto key of the wrong length for its suite |
        | an m= line without a port                         |
        | a body cut short inside the a=crypto line         |

    Scenario: An offer with only unknown crypto suites is refused
      When carol joins the conference with an offer that has only the unknown crypto suite AES_999_CM_HMAC_SHA9_80
      And every participant sends its tone for 1 second
      Then carol is refused with 488
      And alice and bob still hear each other's tones over protected media

  Rule: An unknown crypto suite is skipped for a supported one

    Scenario: An unknown crypto suite offered first is skipped for a supported one
      When carol joins the conference with an offer that has AES_999_CM_HMAC_SHA9_80 first and AES_CM_128_HMAC_SHA1_80 second
      Then carol is admitted with SRTP
      And the answer to carol selects the AES_CM_128_HMAC_SHA1_80 key offered with tag 2
