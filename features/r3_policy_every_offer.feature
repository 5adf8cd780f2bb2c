@req:R3 @pics:sdes
Feature: The secure policy holds on every offer of a dialog's life (R3)
  TR 33.829 clause 5.1.3: all participants in a secure conference shall use media protection,
  for as long as they take part, not only when they join. An admitted participant can make a
  new offer in its dialog with the focus at any time: in a re-INVITE (RFC 3261 section 14) or an
  UPDATE (RFC 3311). One that offers plain RTP (RTP/AVP) or a null cipher must be refused with
  488 Not Acceptable Here (RFC 3261 section 14.2, RFC 4568 section 7.1.2), and the dialog and
  the session then stay as they were (RFC 3261 section 14.1). The suite does not take the
  refusal's word for it: alice stays on her keys whatever the answer, every packet she receives
  after it must open under the key the focus sent with before, every packet bob receives under
  his, and bob must still hear alice, who sends under her previous key only.

  The positive control comes first in every scenario: a legitimate re-INVITE offering a new
  SDES key must be answered 200 with a fresh key of the focus's, and in the second of media
  that follows both directions must run under the new keys, judged by decryption. A target that
  refuses even that is inconclusive: its refusal of the faulty offer would show nothing.
  The control is an SDES re-offer, so this feature is for SDES targets (`@pics:sdes`).

  Background:
    Given the conference service is reachable over SIPS
    And alice has created a secure conference
    And bob has joined the conference
    And alice and bob hear each other's tones over protected media
    And the control: alice re-keys the session with a re-INVITE, and both directions move to the new keys

  Scenario Outline: A participant's <method> offering <offer> is refused and the session keeps its keys
    When alice offers <offer> by <method> in the dialog with the focus
    And every participant sends its tone for 1 second
    Then the focus refuses the <method> with 488 and the dialog goes on
    And alice and the others still exchange media under the keys they had before the <method>

    Examples:
      | method    | offer             |
      | re-INVITE | plain RTP         |
      | re-INVITE | NULL_HMAC_SHA1_80 |
      | re-INVITE | UNENCRYPTED_SRTP  |
      | UPDATE    | plain RTP         |
      | UPDATE    | NULL_HMAC_SHA1_80 |
      | UPDATE    | UNENCRYPTED_SRTP  |
