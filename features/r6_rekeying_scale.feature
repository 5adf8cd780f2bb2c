@req:R6 @req:O2
Feature: Rekeying as the conference grows (R6, O2)
  TR 33.829 clause 5.1.2 worries that rekeying on every join and leave may be costly for large
  conferences. The same checks as for three participants, at growing sizes: every remaining
  participant must see its new keys in use within one second of the leave, and the leaver's keys
  must open nothing. benchmarks/scale.py measures further (up to 1000 participants).

  Scenario Outline: A conference of <size> participants is rekeyed within a second of a leave
    Given the conference service is reachable over SIPS
    And a secure conference of <size> participants with the common stream
    And every participant keeps sending its tone
    When the last participant leaves the conference
    And the remaining participants receive 1 second of media
    Then every stream of the remaining participants was rekeyed after the leave
    And every remaining participant received media under new keys within 1 second
    And no packet received after the leave authenticates under a key the leaver held

    Examples:
      | size |
      | 3    |
      | 10   |
      | 50   |
