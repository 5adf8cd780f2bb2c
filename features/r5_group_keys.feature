@req:R5 @req:O3 @pics:group_keys
Feature: Group keys for the common stream (R5, O3)
  TR 33.829 clause 5.1.3: group keys can protect media streams intended for all participants,
  e.g. the mixed output. The reference's common stream is the full mix, protected once under a
  group key and SSRC and fanned out to everyone; each participant asks for it with an m-line
  labelled "common" (a=label:common, recvonly) and gets the group key in the answer's a=crypto,
  over its own protected signalling. Scenarios are not applicable unless the capability
  statement claims group keys.

  Background:
    Given the conference service is reachable over SIPS
    And alice has created a secure conference with the common stream
    And bob has joined the conference with the common stream
    And carol has joined the conference with the common stream

  Scenario: Every participant decrypts the common stream with the same group key
    When every participant sends its tone for 1 second
    Then every participant decrypts the common stream and hears everyone in it
    And every participant holds the same group key

  Scenario: The common stream has a key stream of its own
    When every participant sends its tone for 1 second
    Then the common stream's key shares nothing with any other stream in the ledger

  Scenario Outline: A party outside the conference obtains no group key
    When mallory invites the conference URI <how>
    Then mallory receives nothing keyed

    Examples:
      | how                   |
      | without credentials   |
      | with a wrong password |
