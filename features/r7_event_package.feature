@req:R7 @pics:event_package
Feature: Protected conference event package (R7)
  TR 33.829 clause 5.1.3: a secure conference that supports conference event packages shall
  provide security for them. SUBSCRIBE to the conference state (RFC 4575 over RFC 6665) is
  authenticated and limited to participants (observation O4: the state says who takes part);
  NOTIFY carrying the state travels only over the subscriber's TLS connection; the identities in
  the state are the ones the participants authenticated with (R2, observation O7). A change
  reaches subscribers as a partial state (RFC 4575). A refusal is judged after listening for a
  stated window, and beside its positive control: a participant's subscription gets the state.

  Background:
    Given the conference service is reachable over SIPS

  Scenario: A participant receives the conference state over TLS
    Given alice has created a secure conference
    And bob has joined the conference
    When bob subscribes to the conference state
    Then bob receives the full conference state
    And every NOTIFY bob received travelled over TLS

  Scenario: NOTIFY stays on TLS when the subscriber's Contact names plain UDP
    Given alice has created a secure conference
    And bob has joined the conference
    When bob subscribes to the conference state with a Contact over plain UDP
    Then bob receives the full conference state
    And every NOTIFY bob received travelled over TLS

  Scenario: Changes reach subscribers as partial states over TLS
    Given alice has created a secure conference
    And bob has joined the conference
    And bob has subscribed to the conference state
    When carol joins the conference with a secure offer
    Then bob is notified of carol's join as a partial state
    And every NOTIFY bob received travelled over TLS

  @req:O4
  Scenario: A SUBSCRIBE without credentials gets no conference state
    Given alice has created a secure conference
    And alice is subscribed to the conference state as a participant
    When erin subscribes to the conference state without credentials
    Then erin is refused the subscription and, listening for 2 s, receives no conference state

  @req:O4
  Scenario: An authenticated user who is not a participant gets no conference state
    Given alice has created a secure conference
    And alice is subscribed to the conference state as a participant
    When erin subscribes to the conference state
    Then erin is refused the subscription and, listening for 2 s, receives no conference state

  @req:O7
  Scenario: The conference state shows authenticated identities, not claimed ones
    Given alice has created a secure conference
    And mallory, claiming to be alice in From, has tried to join the conference
    When alice subscribes to the conference state
    Then the conference state alice received shows every participant as who they authenticated as
