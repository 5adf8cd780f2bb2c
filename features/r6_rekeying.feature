@req:R6
Feature: Rekeying when participants join and leave (R6)
  TR 33.829 clause 5.1.3: rekeying of a conference is possible; all key streams are then based on
  new, fresh key material, e.g. when a participant joins or leaves. With SDES the focus sends a
  re-INVITE with new a=crypto to every remaining participant. Every check decrypts packets the
  participants actually received: the leaver's keys must open nothing sent after the leave, the
  joiner's keys nothing sent before the join. The rekey latency (200 OK of the BYE or INVITE to
  the first packet under a new key, per participant) is recorded with the scenario.

  Every participant offers every stream the target claims: audio, video where the capability
  statement claims video, and the common stream where it claims group keys. Each kind of stream
  is judged on its own packets, one example per medium, so that a target that rekeys its audio
  and forgets its video fails on video; a medium the target does not claim is not applicable.

  Background:
    Given the conference service is reachable over SIPS
    And alice, bob and carol are in a secure conference with every stream the target claims
    And every participant keeps sending its tone

  Scenario Outline: Keys the leaver held decrypt nothing sent after the leave (forward security)
    When carol leaves the conference
    And the remaining participants receive 1 second of media
    Then nothing received on the <medium> stream after carol left authenticates under a key carol held

    Examples:
      | medium |
      | audio  |
      | video  |
      | common |

  Scenario Outline: Keys the joiner receives decrypt nothing sent before the join (backward security)
    When dave joins the conference with every stream the target claims
    And the remaining participants receive 1 second of media
    Then nothing received on the <medium> stream before dave joined authenticates under a key dave received

    Examples:
      | medium |
      | audio  |
      | video  |
      | common |

  Scenario Outline: Every stream is rekeyed when a participant leaves
    When carol leaves the conference
    And the remaining participants receive 1 second of media
    Then the <medium> stream of every remaining participant was rekeyed after carol's leave

    Examples:
      | medium |
      | audio  |
      | video  |
      | common |

  Scenario Outline: Every stream is rekeyed when a participant joins
    When dave joins the conference with every stream the target claims
    And the remaining participants receive 1 second of media
    Then the <medium> stream of every remaining participant was rekeyed after dave's join

    Examples:
      | medium |
      | audio  |
      | video  |
      | common |

  Scenario Outline: New keys and salts are fresh
    When carol leaves the conference
    And dave joins the conference with every stream the target claims
    And the remaining participants receive 1 second of media
    Then no master key or salt of the <medium> stream repeats an earlier one

    Examples:
      | medium |
      | audio  |
      | video  |
      | common |

  Scenario Outline: A burst of joins and leaves keeps forward and backward security
    When dave and erin join while bob and carol leave, in one burst
    And the remaining participants receive 1 second of media
    Then nothing received on the <medium> stream after bob left authenticates under a key bob held
    And nothing received on the <medium> stream after carol left authenticates under a key carol held
    And nothing received on the <medium> stream before dave joined authenticates under a key dave received
    And nothing received on the <medium> stream before erin joined authenticates under a key erin received

    Examples:
      | medium |
      | audio  |
      | video  |
      | common |
