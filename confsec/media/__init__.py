"""Media plane: RTP framing, SRTP sessions, the key-stream ledger, test tones, UDP legs.

The public face; the submodules hold the details:

- `rtp`: `RtpPacket` / `RtpHeader` parse and build, hot-path helpers.
- `srtp`: `new_sender` / `new_receiver`, the one factory of SRTP sessions (libsrtp).
- `reference_srtp`: an independent SRTP on `cryptography`, for cross-checks only.
- `defect_srtp`: SRTP reception without a replay window or a tag check, for defect switches.
- `ledger`: `KeyStreamLedger`, who uses which (key, salt, SSRC), and reuse findings.
- `tone`: PCMU, `ToneGenerator`, `detect_tones`, the tone plan.
- `endpoint`: `MediaLeg`, an asyncio UDP leg with pacing and reception statistics.
- `reception`: the leg's sans-IO half: each datagram judged and counted, the audio heard.
"""

from confsec.media.endpoint import MediaLeg, MediaStats
from confsec.media.ledger import KeyStreamLedger, KeyStreamReuse, LedgerRow, StreamId
from confsec.media.rtp import RtpHeader, RtpPacket, RtpParseError, build_rtp, peek_ssrc_seq
from confsec.media.srtp import (
    PROFILES,
    SrtpAuthError,
    SrtpError,
    SrtpProfile,
    SrtpReceiver,
    SrtpReplayError,
    SrtpSender,
    UnsupportedSuite,
    new_master_key,
    new_receiver,
    new_sender,
    new_session,
    profile_for,
)
from confsec.media.tone import (
    ToneGenerator,
    detect_tones,
    pcmu_decode,
    pcmu_encode,
    tone_for,
    tones_present,
)

__all__ = [
    "PROFILES",
    "KeyStreamLedger",
    "KeyStreamReuse",
    "LedgerRow",
    "MediaLeg",
    "MediaStats",
    "RtpHeader",
    "RtpPacket",
    "RtpParseError",
    "SrtpAuthError",
    "SrtpError",
    "SrtpProfile",
    "SrtpReceiver",
    "SrtpReplayError",
    "SrtpSender",
    "StreamId",
    "ToneGenerator",
    "UnsupportedSuite",
    "build_rtp",
    "detect_tones",
    "new_master_key",
    "new_receiver",
    "new_sender",
    "new_session",
    "pcmu_decode",
    "pcmu_encode",
    "peek_ssrc_seq",
    "profile_for",
    "tone_for",
    "tones_present",
]
