"""Key management in the focus (the AS role of TR 33.829 5.1.2).

The focus chooses the key and SSRC of every stream it sends, one fresh (key, salt, SSRC) per leg,
medium and direction, and never hands out a key it has seen before (its own or one a participant
offered). The R4 defect switches live here, each one a visible branch.

Rekeying (R6) and group keys (R5) come from here too: `rekey()` gives a leg's stream a fresh key
for a new epoch, `group_key()` the key of a conference's common stream. Their defect switches
(`rekey-reuses-salt`, `group-key-equals-unicast`) are branches here as well, so that the focus's
signalling code stays the same whether the keys are good or bad.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from confsec.codec.sdp import SRTP_SUITES, CryptoAttribute
from confsec.reference.mixer_control import SrtpKeys

OTHER_SUITE = "AES_CM_128_HMAC_SHA1_80"
"""What the `answer-other-suite` defect answers with, whatever was offered."""


@dataclass(frozen=True)
class IssuedStream:
    answer: CryptoAttribute  # what goes into the SDP answer (the focus's sending key)
    tx: SrtpKeys
    tx_ssrc: int


class KeyManager:
    """Issues distinct keys and SSRCs; `defects` make it reuse them on purpose."""

    def __init__(self, defects: frozenset[str] = frozenset()):
        self.defects = defects
        self._seen: set[bytes] = set()
        self._ssrcs: set[int] = set()
        self._shared: dict[tuple[str, str], tuple[bytes, bytes, int]] = {}
        self._per_leg: dict[str, tuple[bytes, bytes, int]] = {}

    def note_offered(self, crypto: CryptoAttribute) -> None:
        """Remember a participant's key so the focus never answers with the same one."""
        self._seen.add(crypto.key + crypto.salt)

    def _fresh_key(self, suite: str) -> tuple[bytes, bytes]:
        info = SRTP_SUITES[suite]
        while True:
            key, salt = secrets.token_bytes(info.key_len), secrets.token_bytes(info.salt_len)
            if key + salt not in self._seen:
                self._seen.add(key + salt)
                return key, salt

    def _fresh_ssrc(self) -> int:
        while True:
            ssrc = secrets.randbits(32)
            if ssrc and ssrc not in self._ssrcs:
                self._ssrcs.add(ssrc)
                return ssrc

    def issue(
        self,
        conference_id: str,
        leg_id: str,
        media: str,
        offered: CryptoAttribute,
        offered_ssrc: int | None,
    ) -> IssuedStream:
        suite = offered.suite
        if "answer-other-suite" in self.defects:
            suite = OTHER_SUITE  # the defect: not the suite the offer named
        if "reuse-key-across-directions" in self.defects and offered_ssrc is not None:
            key, salt, ssrc = offered.key, offered.salt, offered_ssrc
        elif "reuse-key-across-participants" in self.defects:
            shared = self._shared.get((conference_id, media + suite))
            if shared is None:
                shared = (*self._fresh_key(suite), self._fresh_ssrc())
                self._shared[(conference_id, media + suite)] = shared
            key, salt, ssrc = shared
        elif "reuse-key-across-media" in self.defects and leg_id in self._per_leg:
            key, salt, ssrc = self._per_leg[leg_id]
        else:
            key, salt = self._fresh_key(suite)
            ssrc = self._fresh_ssrc()
        self._per_leg.setdefault(leg_id, (key, salt, ssrc))
        answer = CryptoAttribute(
            tag=offered.tag,
            suite=suite,
            key=key,
            salt=salt,
            lifetime=None,
            mki=None,
            # The accept-null-cipher defect agrees to leave media unencrypted: it echoes the
            # offer's UNENCRYPTED_SRTP/SRTCP. A conformant answer never carries them.
            session_params=tuple(p for p in offered.session_params if p.startswith("UNENCRYPTED"))
            if "accept-null-cipher" in self.defects
            else (),
        )
        return IssuedStream(answer, SrtpKeys(suite, key, salt), ssrc)

    def rekey(self, previous: SrtpKeys) -> SrtpKeys:
        """A fresh key for a stream's next epoch (same suite).

        Defect `rekey-reuses-salt`: the new epoch keeps the previous master salt, so the key
        material is not all fresh (R6 freshness).
        """
        key, salt = self._fresh_key(previous.suite)
        if "rekey-reuses-salt" in self.defects:
            salt = previous.salt
        return SrtpKeys(previous.suite, key, salt)

    def group_key(self, suite: str, unicast: SrtpKeys | None = None) -> tuple[SrtpKeys, int]:
        """The key and SSRC of a common stream's new epoch.

        Defect `group-key-equals-unicast`: the group key is `unicast`, a key the focus already
        uses towards one participant (R5: the common stream must have its own key stream).
        """
        if "group-key-equals-unicast" in self.defects and unicast is not None:
            return unicast, self._fresh_ssrc()
        key, salt = self._fresh_key(suite)
        return SrtpKeys(suite, key, salt), self._fresh_ssrc()
