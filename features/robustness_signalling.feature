Feature: Robustness of the signalling against malformed input
  Issue 7: robustness probes against the system under test. Malformed SIP, oversized requests,
  malformed SDP and unknown crypto suites are refused cleanly, and the conference that is
  running meanwhile goes on for its participants. A malformed request may get a 4xx, be dropped
  (RFC 3261 lets a server discard what it cannot parse; on a stream whose framing is lost it
  closes the connection) or end in that close, but never a 2xx. An offer whose SDP or a=crypto
  cannot be used is refused (RFC 4568 7.1.2: 488, or 400 for SDP that does not parse), and an
  unknown crypto suite is skipped for a supported one or, if it is the only one, refused.
  Whether the conference went on is judged against a baseline second in which alice and bob
  hear each other, on what arrives after the probe only: a target that carries no media at all
  is inconclusive, not a finding. Each scenario is tagged with the requirement it protects.

  Background:
    Given the conference service is reachable over SIPS

  @req:R1
  Scenario Outline: A malformed SIP request is refused cleanly and the conference goes on
    Given alice has created a secure conference
    And bob has joined the conference
    And alice and bob hear each other's tones over protected media
    When carol sends <request> to the service over her own TLS connection
    And every participant sends its tone for 1 second
    Then the service did not accept carol's malformed request
    And alice and bob still hear each other's tones over protected media
    And dave can still join the conference

    Examples:
      | request                                              |
      | a request line that is not SIP                       |
      | an INVITE without Call-ID                            |
      | an INVITE with a negative Content-Length             |
      | an INVITE with a Content-Length larger than its body |
      | an INVITE with NUL bytes in a header line            |

  @req:R1
  Scenario Outline: An oversized SIP request is refused cleanly and the conference goes on
    Given alice has created a secure conference
    And bob has joined the conference
    And alice and bob hear each other's tones over protected media
    When carol sends <request> to the service over her own TLS connection
    And every participant sends its tone for 1 second
    Then the service did not accept carol's oversized request
    And alice and bob still hear each other's tones over protected media

    Examples:
      | request                              |
      | an INVITE with a 100 KB header value |
      | an INVITE with 300 header fields     |

  @req:R3
  Scenario Outline: An offer with malformed SDP is refused and the conference goes on
    Given alice has created a secure conference
    And bob has joined the conference
    And alice and bob hear each other's tones over protected media
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

  @req:R3
  Scenario: An offer with only unknown crypto suites is refused
    Given alice has created a secure conference
    And bob has joined the conference
    And alice and bob hear each other's tones over protected media
    When carol joins the conference with an offer that has only the unknown crypto suite AES_999_CM_HMAC_SHA9_80
    And every participant sends its tone for 1 second
    Then carol is refused with 488
    And alice and bob still hear each other's tones over protected media

  @req:R3
  Scenario: An unknown crypto suite offered first is skipped for a supported one
    Given alice has created a secure conference
    When carol joins the conference with an offer that has AES_999_CM_HMAC_SHA9_80 first and AES_CM_128_HMAC_SHA1_80 second
    Then carol is admitted with SRTP
    And the answer to carol selects the AES_CM_128_HMAC_SHA1_80 key offered with tag 2
