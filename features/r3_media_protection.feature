@req:R3
Feature: Mandatory media protection (R3)
  TR 33.829 clause 5.1.3: all participants in a secure conference shall use media protection.
  Plain RTP (RTP/AVP) and null encryption are refused, every packet on the wire is SRTP that
  authenticates under the negotiated key, every RTCP packet is SRTCP that authenticates, and
  no participant is admitted unprotected.

  Background:
    Given the conference service is reachable over SIPS

  Scenario: A plain RTP offer to the factory is refused
    Given the control: alice creates a secure conference and is admitted
    When bob creates a conference through the factory URI with a plain RTP offer
    Then bob is refused with 488

  Scenario: A plain RTP join to a secure conference is refused
    Given alice has created a secure conference
    And the control: bob joins with a secure offer and is admitted
    When carol joins the conference with a plain RTP offer
    Then carol is refused with 488

  @pics:sdes
  Scenario Outline: A null cipher offer is refused
    Given the control: alice creates a secure conference and is admitted
    When bob creates a conference through the factory URI with a <offer> offer
    Then bob is refused, or answered with full encryption instead of <offer>

    Examples:
      | offer             |
      | NULL_HMAC_SHA1_80 |
      | UNENCRYPTED_SRTP  |

  Scenario Outline: Participants exchange protected media with <suite>
    Given alice has created a secure conference using <suite>
    And bob has joined the conference using <suite>
    And carol has joined the conference using <suite>
    When every participant sends its tone for 1 second
    Then every answer selected <suite>
    And every media packet each participant received authenticates under the negotiated key
    And every participant hears the others' tones and not its own

    Examples:
      | suite                   |
      | AES_CM_128_HMAC_SHA1_80 |
      | AES_CM_128_HMAC_SHA1_32 |
      | AEAD_AES_128_GCM        |

  Scenario: Unprotected media from an admitted participant does not reach the others
    Given alice has created a secure conference
    And bob has joined the conference
    And carol has joined the conference
    And the others hear carol over protected media
    When carol sends plain RTP instead of SRTP while the others send their tones for 1 second
    Then alice does not hear carol's tone
    And bob does not hear carol's tone

  # RTCP is media too (RFC 3711 3.4: SRTCP authentication is mandatory; its SDES items name
  # the user in clear when unprotected). Every participant reports in SRTCP and says BYE.
  Scenario: Every RTCP packet the conference sends is SRTCP that authenticates
    Given alice has created a secure conference
    And bob has joined the conference
    And carol has joined the conference without rtcp-mux
    When every participant sends its tone for 3 seconds
    And the target's RTCP has reached every participant, within 8 seconds
    Then every RTCP packet each participant received is SRTCP that authenticates

  Scenario: Plain RTCP from an admitted participant reaches nobody
    Given alice has created a secure conference
    And bob has joined the conference
    And carol has joined the conference
    And the others hear carol over protected media
    When carol sends plain RTCP and SRTCP under a key nobody holds while the others send their tones for 2 seconds
    Then no other participant receives carol's plain RTCP
