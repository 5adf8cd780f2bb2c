@req:R6
Feature: Leaving and vanishing, judged from the departed side too (R6)
  TR 33.829 clause 5.1.3: rekeying when a participant leaves only helps if the leaver is out of
  the media in both directions. So the leaver's legs stay open after its BYE, and it goes on
  sending under its old keys, as a client that ignores its own BYE (or whoever copied its keys)
  would: after a grace of 0.5 s for media in flight, nothing may reach its legs, and nothing it
  sends may reach the others, neither its tone in their mix nor a packet under its keys. The
  controls are taken just before the BYE: its legs were receiving, and the others heard it.

  A participant can also vanish: its TLS connection closes and its media stops, without a BYE
  (a crash, a lost network). The service must notice within the time its capability statement
  declares for a lost participant (e.g. a media inactivity timeout, RFC 3550 6.3.5) and then
  treat it as a leave: the others rekeyed within the declared rekey deadline (plus the margin of
  the rekeying scenarios), nothing sent to its legs any more. A target that declares no way of
  noticing a lost participant makes these scenarios not applicable.

  Background:
    Given the conference service is reachable over SIPS
    And alice has created a secure conference with the common stream
    And bob has joined the conference with the common stream
    And carol has joined the conference with the common stream
    And every participant keeps sending its tone
    And the participants hear each other for 1 second

  Scenario: Nothing reaches a leaver's media legs after its BYE
    When bob leaves the conference and keeps his media legs open
    And bob's legs and the others' are watched for 2 seconds
    Then nothing reached bob's media legs after his leave

  Scenario: Nothing a leaver sends after its BYE reaches the others
    When bob leaves the conference and keeps his media legs open
    And bob's legs and the others' are watched for 2 seconds
    Then nothing bob sent after his leave reached the others

  @pics:lost_participant_timeout
  Scenario: A participant that vanishes is removed and the others are rekeyed
    When carol vanishes without a BYE and her media legs are watched
    And the remaining participants receive 1 second of media
    Then every stream of the remaining participants was rekeyed after carol's vanish
    And no packet received after carol left authenticates under a key carol held

  @pics:lost_participant_timeout
  Scenario: Nothing reaches a vanished participant's legs once the service had time to notice
    When carol vanishes without a BYE and her media legs are watched
    And carol's legs and the others' are watched for 2 seconds
    Then nothing reached carol's media legs once the declared time to notice her had passed
