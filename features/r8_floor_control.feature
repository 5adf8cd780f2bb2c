@req:R8 @pics:floor_control
Feature: Protected floor control (R8)
  TR 33.829 clause 5.1.3: a secure conference that supports floor control shall provide security
  for the floor control signalling. BFCP (RFC 8855) is negotiated in SDP as TCP/TLS/BFCP
  (RFC 8856) and runs over TLS with the certificate the answer's a=fingerprint names; a plain
  TCP/BFCP offer is refused; floor requests are bound to the authenticated user (observation O5:
  floor control reveals who speaks, and must not let anyone speak for someone else).
  A connection belongs to the party its TLS certificate authenticates from its very first
  message: the certificate must be the one the offer's a=fingerprint named (RFC 8122, RFC 8856).
  A refusal counts only beside its positive control, an honest request the same service grants:
  carol's TCP/TLS/BFCP offer; bob's floor request under his own user id on the same kind of
  connection; bob's own first message on a fresh connection; carol's first request from the
  certificate her offer named; a Hello just before malformed input, and carol's floor request
  after it.

  Background:
    Given the conference service is reachable over SIPS

  Scenario: Floor control is negotiated over TLS only
    Given alice has created a secure conference
    When bob joins offering floor control over TCP/TLS/BFCP
    Then the answer to bob carries floor control over TCP/TLS/BFCP with a fingerprint

  Scenario: The floor control server presents the certificate its fingerprint names
    Given alice has created a secure conference
    And bob is in the conference with floor control over TLS
    When bob opens the floor control connection
    Then the floor control server's certificate matches the fingerprint in the answer

  Scenario: A plain TCP/BFCP offer is refused
    Given alice has created a secure conference
    And carol is in the conference with floor control over TLS
    When bob joins offering floor control over TCP/BFCP
    Then floor control over plain TCP is refused to bob

  @req:O5
  Scenario: A floor request for another participant's user id is refused
    Given alice has created a secure conference
    And carol is in the conference with floor control over TLS
    And bob is in the conference with floor control over TLS
    When bob opens the floor control connection
    And bob requests the floor under his own user id and releases it
    And bob requests the floor with carol's user id
    Then the floor control server refuses bob's request with an Error

  @req:O5
  Scenario Outline: A first <message> on a fresh connection for another participant's user id is refused
    Given alice has created a secure conference
    And carol is in the conference with floor control over TLS
    And bob is in the conference with floor control over TLS
    When bob sends a <message> under his own user id first on a fresh floor control connection
    And bob sends a <message> with carol's user id first on a fresh floor control connection
    Then the floor control server refuses bob's first <message> with carol's user id and grants nothing

    Examples:
      | message      |
      | Hello        |
      | FloorRequest |

  Scenario: A floor control client whose certificate is not the one its offer named is refused
    Given alice has created a secure conference
    And carol is in the conference with floor control over TLS
    And bob is in the conference with floor control over TLS, his offer naming alice's certificate
    When carol sends a FloorRequest under her own user id first on a fresh floor control connection
    And bob sends a FloorRequest under his own user id first on a fresh floor control connection
    Then the floor control server refuses bob's certificate, which his offer did not name, and grants nothing

  @req:O5
  Scenario: The floor is granted and released while secure
    Given alice has created a secure conference
    And bob is in the conference with floor control over TLS
    When bob requests the floor and releases it
    Then bob was granted the floor and then released it over TLS

  Scenario: Malformed BFCP gets an Error or a close and the server keeps serving the others
    Given alice has created a secure conference
    And bob is in the conference with floor control over TLS
    And carol is in the conference with floor control over TLS
    When bob sends a Hello and then 20 malformed BFCP messages
    And carol requests the floor and releases it
    Then every malformed message was answered with an Error or a close
    And carol was still granted the floor after the malformed messages and released it over TLS
