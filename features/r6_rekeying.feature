@req:R6
Feature: Rekeying when participants join and leave (R6)
  TR 33.829 clause 5.1.3: rekeying of a conference is possible; all key streams are then based on
  new, fresh key material, e.g. when a participant joins or leaves. With SDES the focus sends a
  re-INVITE with new a=crypto to every remaining participant. Every check decrypts packets the
  participants actually received: the leaver's keys must open nothing sent after the leave, the
  joiner's keys nothing sent before the join. The rekey latency (200 OK of the BYE or INVITE to
  the first packet under a new key, per participant) is recorded with the scenario.

  Background:
    Given the conference service is reachable over SIPS
    And alice has created a secure conference with the common stream
    And bob has joined the conference with the common stream
    And carol has joined the conference with the common stream
    And every participant keeps sending its tone

  Scenario: Keys the leaver held decrypt nothing sent after the leave (forward security)
    When carol leaves the conference
    And the remaining participants receive 1 second of media
    Then no packet received after carol left authenticates under a key carol held

  Scenario: Keys the joiner receives decrypt nothing sent before the join (backward security)
    When dave joins the conference with the common stream
    And the remaining participants receive 1 second of media
    Then no packet received before dave joined authenticates under a key dave received

  Scenario: Every stream is rekeyed when a participant leaves
    When carol leaves the conference
    And the remaining participants receive 1 second of media
    Then every stream of the remaining participants was rekeyed after carol's leave

  Scenario: Every stream is rekeyed when a participant joins
    When dave joins the conference with the common stream
    And the remaining participants receive 1 second of media
    Then every stream of the remaining participants was rekeyed after dave's join

  Scenario: New keys and salts are fresh
    When carol leaves the conference
    And dave joins the conference with the common stream
    And the remaining participants receive 1 second of media
    Then no master key or salt in the ledger repeats an earlier one

  Scenario: A burst of joins and leaves keeps forward and backward security
    When dave and erin join while bob and carol leave, in one burst
    And the remaining participants receive 1 second of media
    Then no packet received after bob left authenticates under a key bob held
    And no packet received after carol left authenticates under a key carol held
    And no packet received before dave joined authenticates under a key dave received
    And no packet received before erin joined authenticates under a key erin received
