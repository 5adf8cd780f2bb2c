Feature: Authorisation rests on the authenticated identity, not a claimed one (R2, R7, R8)
  TR 33.829 clause 5.1.3: participants are securely authenticated (R2), the conference event
  package is secured (R7) and so is floor control (R8). Authentication is worth nothing if
  authorisation then believes what a request claims: mallory logs in with her own valid password
  and certificate, is no member of the conference, and names a member in From, in a
  P-Asserted-Identity (which only a trust domain may assert, RFC 3325 9.1) or in the From display
  name; or, holding no floor session, she speaks BFCP under a participant's user id. She must be
  refused. Each refusal counts only beside its positive control, in the same scenario: the member
  she claims to be is accepted by the same service (his join, her subscription, his own first
  floor message), so a service that refuses everyone is inconclusive, not a pass.

  Background:
    Given the conference service is reachable over SIPS

  # Members-only conferences: the creator names the members with an RFC 5366 recipient list in
  # the creation INVITE (multipart/mixed: the offer and an RFC 4826 resource list).
  @req:R2 @pics:restricted_membership
  Scenario Outline: A non-member claiming a member's identity in <claim> cannot join a members-only conference
    Given alice has created a members-only secure conference whose members are alice and bob
    When bob joins the conference with a secure offer
    And mallory joins the conference claiming to be bob in <claim>
    Then mallory, claiming to be bob in <claim>, is refused with 403 while the member was admitted with SRTP

    Examples:
      | claim                 |
      | From                  |
      | P-Asserted-Identity   |
      | the From display name |

  @req:R7 @req:O4 @pics:event_package
  Scenario Outline: A non-participant claiming a participant's identity in <claim> gets no conference state
    Given alice has created a secure conference
    And alice is subscribed to the conference state as a participant
    When mallory subscribes to the conference state claiming to be alice in <claim>
    Then mallory is refused the subscription and, listening for 2 s, receives no conference state

    Examples:
      | claim                 |
      | From                  |
      | P-Asserted-Identity   |
      | the From display name |

  @req:R8 @req:O5 @pics:floor_control
  Scenario Outline: A non-participant's first <message> under a participant's user id is refused
    Given alice has created a secure conference
    And bob is in the conference with floor control over TLS
    When bob sends a <message> under his own user id first on a fresh floor control connection
    And mallory, who is not in the conference, opens a fresh floor control connection and sends a <message> with bob's user id first
    Then the floor control server grants nothing to mallory's first <message> with bob's user id and refuses it

    Examples:
      | message      |
      | Hello        |
      | FloorRequest |
