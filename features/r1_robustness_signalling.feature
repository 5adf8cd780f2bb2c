@req:R1
Feature: Robustness of the service against malformed and oversized SIP requests (R1)
  TR 33.829 clause 5.1.3: a user shall be able to initiate creation of an ad hoc secure
  conference. These scenarios check that the service keeps that ability, and the conferences it
  holds, when it is sent SIP it cannot use. While alice and bob are in a secure conference, carol
  writes a malformed or an oversized request on a TLS connection of her own. RFC 3261 lets a
  server refuse such a request with a 4xx (or 513 Message Too Large, section 21.5.7), discard
  what it cannot parse, or close a stream whose framing is lost (section 18.3); it must never
  accept it with a 2xx. Afterwards alice and bob still hear each other, and a newcomer can
  still join. Whether the conference went on is judged against the baseline second of the
  Background, in which alice and bob hear each other, on what arrives after the probe only: a
  target that carries no media at all is inconclusive, not a finding.

  Background:
    Given the conference service is reachable over SIPS
    And alice has created a secure conference
    And bob has joined the conference
    And alice and bob hear each other's tones over protected media

  Scenario Outline: A malformed SIP request is refused cleanly and the conference goes on
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

  Scenario Outline: An oversized SIP request is refused cleanly and the conference goes on
    When carol sends <request> to the service over her own TLS connection
    And every participant sends its tone for 1 second
    Then the service did not accept carol's oversized request
    And alice and bob still hear each other's tones over protected media

    Examples:
      | request                              |
      | an INVITE with a 100 KB header value |
      | an INVITE with 300 header fields     |
