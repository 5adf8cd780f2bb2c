@req:R7 @req:O4 @pics:event_package
Feature: A leaver's subscription to the conference state ends with its membership (R7)
  TR 33.829 clause 5.1.3 and observation O4: the conference state says who takes part, and only
  participants may subscribe to it. A subscription is authorised by membership, so it must end
  when the membership does: on the leave, the service sends a final NOTIFY with
  `Subscription-State: terminated` (RFC 6665 4.1.3, RFC 4575) and then nothing more, not even
  when someone joins after the leaver left; and a new SUBSCRIBE from the leaver is refused like
  any non-member's. The controls: the subscription carried the state before the leave, and a
  participant's subscription is told of the later join.

  Background:
    Given the conference service is reachable over SIPS
    And alice has created a secure conference
    And bob has joined the conference
    And alice is subscribed to the conference state as a participant

  Scenario: A leaver's subscription is terminated and tells it nothing more
    Given bob has subscribed to the conference state
    When bob leaves the conference
    And carol joins the conference with a secure offer
    Then bob's subscription is terminated and, listening for 2 s after carol's join, nothing more reaches him on it

  Scenario: A leaver that subscribes again is refused
    When bob leaves the conference
    And bob subscribes to the conference state
    Then bob is refused the subscription and, listening for 2 s, receives no conference state
