Feature: Media keys stay in their holders' SDP answers (R3, R5, O4)
  TR 33.829 clause 5.1.3: all participants use media protection (R3) and group keys protect the
  common stream (R5); a key that reaches anyone else protects nothing. With SDES (RFC 4568) a key
  belongs in one place: the SDP answer, or a re-offer of the focus, that its holder receives
  over TLS. The conference below goes through what a real one does, each part where the target
  claims it: creation, joins, media, a join that rekeys the others, a subscription to the
  conference state, a floor request, a refused join, an INVITE without credentials, and an
  OPTIONS and a SUBSCRIBE on every plain listener the profile declares. Then every byte the
  target sent to any party (every SIP response, provisional and error ones included, every
  request, every NOTIFY body, every BFCP message, whatever a plain listener answered) is searched
  for every key of the conference: raw, in hex and in base64, alone or as the SDES key||salt.
  The positive control: the search finds every key the target issued in the answers that
  delivered it, or it could not have found it anywhere else either (inconclusive).

  Background:
    Given the conference service is reachable over SIPS
    And alice has created a secure conference with the common stream
    And bob has joined the conference with the common stream
    And bob is subscribed to the conference state, where the target claims the event package
    And the participants have exchanged media for 1 second
    And dave has joined with floor control over TLS, where the target claims floor control
    And carol has joined with the common stream and the others have been rekeyed
    And dave has requested the floor and released it, where the target claims floor control
    And erin has been refused a join with a plain RTP offer
    And mallory has invited the conference without credentials
    And every plain listener the target declares has been sent an OPTIONS and a SUBSCRIBE

  @req:R3
  Scenario: Unicast media keys reach only their holders, in their SDP answers over TLS
    When everything the service sent is searched for every media key of the conference
    Then no unicast media key was found anywhere but in its holder's SDP answers over TLS

  @req:R5 @pics:group_keys
  Scenario: The group key reaches only the members, in their SDP answers over TLS
    When everything the service sent is searched for every media key of the conference
    Then no group key was found anywhere but in its holders' SDP answers over TLS

  @req:O4 @pics:event_package
  Scenario: The conference event package carries no media key
    When everything the service sent is searched for every media key of the conference
    Then no NOTIFY of the conference event package carried a media key
