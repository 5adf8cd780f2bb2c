@req:R1
Feature: Ad hoc creation of a secure conference (R1)
  TR 33.829 clause 5.1.3: a user shall be able to initiate creation of an ad hoc secure
  conference, i.e. signal that the conference shall be secure. The secure signal is an INVITE
  over SIPS to the conference factory URI (RFC 4579, TS 24.147) carrying an SRTP offer
  (RTP/SAVP with SDES keys). The focus answers with a conference URI (Contact ;isfocus) and from
  then on applies the secure policy to everyone who joins.

  Background:
    Given the conference service is reachable over SIPS

  Scenario: A user creates a secure conference through the factory URI
    When alice creates a conference through the factory URI with a secure offer
    Then the focus accepts with a conference URI marked isfocus
    And every media stream in the answer is protected with SRTP

  Scenario: Participants who join later are held to the secure policy
    Given alice has created a secure conference
    When bob joins the conference with a secure offer
    And carol joins the conference with a plain RTP offer
    Then bob is admitted with SRTP
    And carol is refused with 488
