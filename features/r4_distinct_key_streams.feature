@req:R4
Feature: Different media streams use different key streams (R4)
  TR 33.829 clause 5.1.3: different media streams shall use different key streams. An SRTP key
  stream is fixed by (master key, master salt, SSRC); two streams that share it are a two-time
  pad. The suite's key-stream ledger records every key it negotiates or receives and the SSRC of
  every packet it sends or receives. Identical packets fanned out to several receivers are one
  stream, not reuse.

  Background:
    Given the conference service is reachable over SIPS
    And alice has created a secure conference with audio and video
    And bob has joined the conference with audio and video
    And carol has joined the conference with audio and video

  Scenario: No key stream is shared between participants
    When every participant sends its tone for 1 second
    Then no key stream is shared between participants

  Scenario: No key stream is shared between the two directions of a leg
    When every participant sends its tone for 1 second
    Then no key stream is shared between directions

  Scenario: No key stream is shared between audio and video
    When every participant sends its tone for 1 second
    Then no key stream is shared between media

  Scenario: The ledger shows a distinct key stream for every stream
    When every participant sends its tone for 1 second
    Then every stream in the ledger has its own key stream
    And every stream in the ledger carried packets
