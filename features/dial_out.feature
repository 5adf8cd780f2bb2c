@pics:dial-out
Feature: Conferences that call their participants (dial-out, REFER, UA-hosted conferences)
  RFC 4579 5.5 and TS 24.147: a member asks the focus, with a REFER to the conference URI, to call
  another user, and the focus calls that user's registered contact; a phone that hosts a
  conference calls each participant itself. Either way the service is the caller, and every
  requirement holds in that direction too: the service offers SRTP only and never settles for
  less (R1), it authenticates itself to the user it calls with a certificate for its domain (R2),
  the streams of a called participant are protected with keys of their own (R3, R4), and a
  participant called in or removed rekeys the others (R6).

  A participant the suite lets the service call listens over TLS with its own certificate, asks
  the caller for one, and takes the call only if it names the service domain. How a participant
  is added comes from the capability statement: a member's REFER where the target claims
  `refer`, else the operator's `add-participant` adapter, which is given the participant's
  contact.

  No Background probes the service's listener: a phone that hosts a conference may take no
  requests at all, and every scenario here observes the service as the caller.

  @req:R1
  Scenario: A conference that calls its participants is secure for everyone
    Given bob and carol can be called by the conference service
    And alice has started a conference that calls its participants
    When alice has the service call bob and carol
    Then every call the service placed to bob and carol offered SRTP only, over TLS
    And bob and carol answered the service's call and are in the conference with SRTP
    When every participant sends its tone for 1 second
    Then every media packet each participant received authenticates under the negotiated key
    And every participant hears the others' tones and not its own

  @req:R1
  Scenario: A user who can answer only plain RTP is not admitted unprotected
    Given erin can be called but answers only plain RTP
    And alice has started a conference that calls its participants
    When alice has the service call erin
    Then erin is not in the conference unprotected, watched for 1 seconds

  @req:R2
  Scenario: The service authenticates itself to the users it calls
    Given bob can be called by the conference service
    And alice has started a conference that calls its participants
    When alice has the service call bob
    Then the service authenticated itself to bob with a certificate for its domain
    And bob answered the service's call and is in the conference with SRTP

  @req:R3 @req:R4
  Scenario: The streams of called participants are protected, each with its own key stream
    Given bob and carol can be called by the conference service
    And alice has started a conference that calls its participants
    And alice has had the service call bob and carol
    When every participant sends its tone for 1 second
    Then every media packet each participant received authenticates under the negotiated key
    And every stream in the ledger has its own key stream

  @req:R6
  Scenario: A participant the service calls in is keyed afresh and the others are rekeyed
    Given bob and carol can be called by the conference service
    And alice has started a conference that calls its participants
    And alice has had the service call bob
    And every participant keeps sending its tone
    When alice has the service call carol, in the membership's timing
    And the remaining participants receive 1 second of media
    Then every stream of the remaining participants was rekeyed after carol's join
    And no packet received before carol joined authenticates under a key carol received

  @req:R6
  Scenario: A participant the service removes is gone and the others are rekeyed
    Given bob and carol can be called by the conference service
    And alice has started a conference that calls its participants
    And alice has had the service call bob and carol
    And every participant keeps sending its tone
    When alice has the service remove bob
    And the remaining participants receive 1 second of media
    Then every stream of the remaining participants was rekeyed after bob's leave
    And no packet received after bob left authenticates under a key bob held

  @req:R2 @pics:refer
  Scenario: A REFER from a user who is not a participant is refused and nobody is called
    Given bob and carol can be called by the conference service
    And alice has started a conference that calls its participants
    And the control: alice has had the service call bob
    When mallory asks the service, in a REFER, to call carol
    Then the REFER is refused and, listening for 2 seconds, carol is not called

  @req:R2 @pics:refer
  Scenario: A REFER without credentials is refused and nobody is called
    Given bob and carol can be called by the conference service
    And alice has started a conference that calls its participants
    And the control: alice has had the service call bob
    When alice, without credentials, asks the service in a REFER to call carol
    Then the REFER is refused and, listening for 2 seconds, carol is not called

  @req:R2 @req:O4 @pics:refer @pics:event_package
  Scenario: The conference state names a called user by the identity the service called
    Given bob can be called and its answer claims to be carol
    And alice has started a conference that calls its participants
    And alice has subscribed to the conference state
    When alice has the service call bob
    Then alice is notified of bob's join as a partial state
    And the conference state alice received shows every participant as who they authenticated as

  @req:R7 @pics:refer
  Scenario: The progress of a REFER reaches the referrer only over TLS
    Given bob can be called by the conference service
    And alice has started a conference that calls its participants
    When alice asks the service to call bob, giving a Contact over plain UDP
    Then the progress of the REFER reached the referrer only over TLS
    And bob answered the service's call and is in the conference with SRTP
