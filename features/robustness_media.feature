Feature: Robustness of the media path against truncated, replayed and forged SRTP
  An admitted participant sends what an attacker on the path or a broken client would: SRTP
  too short to hold a header and a tag, her own earlier packets once more, or her tone with a
  corrupted authentication tag. The system under test must drop each packet, keep the
  conference running for the others, and never mix a replayed or forged packet (R3: every
  packet that reaches the mix is SRTP that authenticates; RFC 3711 sections 3.3 and 3.3.2).
  Each probe is judged against a baseline second in which everyone was heard.

  Background:
    Given the conference service is reachable over SIPS
    And alice has created a secure conference
    And bob has joined the conference
    And carol has joined the conference

  @req:R3
  Scenario: A truncated SRTP packet is dropped and the conference goes on
    Given everyone has been heard by the others for 1 second
    When everyone sends its tone for 1 second and carol also sends truncated SRTP packets
    Then alice still hears bob and carol
    And bob still hears alice and carol
    And every media packet each participant received authenticates under the negotiated key

  @req:R3
  Scenario: A replayed SRTP packet is not mixed
    Given everyone has been heard by the others for 1 second, with carol's SRTP packets recorded
    When carol replays her recorded SRTP packets for 1 second while the others send their tones
    Then alice does not hear carol's replayed packets
    And bob does not hear carol's replayed packets

  @req:R3
  Scenario: A forged SRTP packet is not mixed
    Given everyone has been heard by the others for 1 second
    When carol sends her tone with a corrupted SRTP tag for 1 second while the others send theirs
    Then alice does not hear carol's forged packets
    And bob does not hear carol's forged packets
