"""The checks `confsec analyze` runs over a capture: R2 (DTLS), R3, R4 and O1 from the wire.

One pass over the packets feeds the observers, each in its own module:

- signalling (`confsec.analyze.signalling`): SIP over UDP or TCP (unprotected) is read for SDP;
  an `a=crypto` line there is an SDES key in the clear (R3), and every `m=` line names the
  address and port where its author receives media, the protocol negotiated for it and the
  a=fingerprint of a DTLS-SRTP certificate (SDP read from TLS with the key log arrives the same
  way, from `tlskeys`);
- DTLS-SRTP (`confsec.analyze.dtls_checks`): datagrams with a first byte of 20-63 (RFC 7983)
  are DTLS; the handshakes are judged (R3 profile and order, R2 certificates), and with the key
  log each one's SRTP keys are bound to the flow directions they protect, for the media checks;
- media and key streams (`confsec.analyze.media`): every RTP and RTCP stream judged or named as
  unjudged (R3), every keyed stream in a key-stream ledger (R4);
- O1 (`confsec.analyze.interfaces`): what crosses the AS/MRFC/MRFP interface ports neither in
  ESP nor in TLS records, and key material in the clear.

The `Analyzer` here dispatches each packet to its observer and carries what one observer learns
to the others: a key read from clear signalling or derived from a DTLS handshake is tried on the
media streams held so far and searched for on the interfaces. All of them write to one `Tally`
(`confsec.analyze.findings`).
"""

from __future__ import annotations

from collections.abc import Iterable

from confsec.analyze.dtls import KeyLog
from confsec.analyze.dtls_checks import DtlsChecks
from confsec.analyze.findings import Checks, Finding, SrtpKey, Tally, Unjudged
from confsec.analyze.interfaces import InterfaceChecks
from confsec.analyze.media import MediaChecks
from confsec.analyze.pcap import PROTO_ESP, PROTO_TCP, PROTO_UDP, Packet
from confsec.analyze.signalling import CRYPTO, SIP_START, Fingerprint, sdes_key, sdp_media_lines


class Analyzer:
    """Feed it packets with `feed_all()`, then `finish()`; read `findings`, `unjudged` and
    `checks`."""

    def __init__(
        self,
        keys: Iterable[SrtpKey] = (),
        o1_ports: Iterable[int] = (),
        negotiated: Iterable[tuple[str, int, str]] = (),
        sdp_from_tls: int = 0,
        keylog: KeyLog | None = None,
        fingerprints: Iterable[tuple[str, int, tuple[Fingerprint, ...]]] = (),
    ):
        """`negotiated` and `fingerprints` come from SDP read elsewhere (SIP over TLS, through
        tshark); `keylog` holds the DTLS master secrets (None: no key log was given)."""
        self.keys: list[SrtpKey] = list(keys)
        """The known keys: given, then learned from clear signalling (the observers share the
        list, so a key learned in mid-pass is theirs at once)."""
        self._key_ids = {(k.key, k.salt) for k in self.keys}
        self.o1_ports = frozenset(o1_ports)
        self.tally = Tally(Checks(sdp_from_tls=sdp_from_tls))
        self.media = MediaChecks(self.tally, self.keys)
        self.interfaces = InterfaceChecks(self.tally, self.keys)
        self.dtls = DtlsChecks(self.tally, self.media, keylog, self._add_key)
        for addr, port, proto in negotiated:
            self.media.learn_media(addr, port, proto)
            self.dtls.learn_media(addr, port, proto)
        for addr, port, fps in fingerprints:
            self.dtls.learn_media(addr, port, "", fps)
        self.frames = 0

    @property
    def findings(self) -> dict[tuple[str, str], Finding]:
        return self.tally.findings

    @property
    def unjudged(self) -> list[Unjudged]:
        return self.tally.unjudged

    @property
    def checks(self) -> Checks:
        return self.tally.checks

    # -- the pass ------------------------------------------------------------------------------

    def feed_all(self, packets: Iterable[Packet]) -> None:
        o1 = self.o1_ports
        rtp, rtcp = self.media.rtp, self.media.rtcp
        esp, interface = self.interfaces.esp, self.interfaces.packet
        dtls = self.dtls
        datagram, early = dtls.datagram, dtls.media_packet
        for p in packets:
            self.frames = p.frame
            if p.proto == PROTO_ESP:
                esp(p)
                continue
            if o1 and (p.sport in o1 or p.dport in o1):
                interface(p)
                continue
            data = p.payload
            if not data:
                continue
            if p.proto == PROTO_UDP:
                b0 = data[0]
                if b0 >> 6 == 2 and len(data) >= 12:
                    if 192 <= data[1] <= 223:
                        rtcp(p)
                    else:
                        rtp(p)
                    if dtls.watching:
                        early(p)
                elif 20 <= b0 <= 63:  # RFC 7983: DTLS
                    datagram(p)
                elif data.startswith(SIP_START):
                    self._sip(p, "UDP")
            elif p.proto == PROTO_TCP and data.startswith(SIP_START):
                self._sip(p, "TCP")

    def _sip(self, p: Packet, transport: str) -> None:
        self.tally.checks.sip_clear += 1
        data = p.payload
        for suite, inline in CRYPTO.findall(data):
            f = self.tally.finding(
                "sdes-in-clear",
                "R3",
                "sdes-key-in-clear",
                f"an SDES key (a=crypto {suite.decode()}) was sent over unprotected SIP/"
                f"{transport}, {p.src}:{p.sport} -> {p.dst}:{p.dport}: anyone on the path can "
                "decrypt the media",
            )
            f.add(p.frame)
            self._learn_key(suite.decode(), inline, f"SIP/{transport} frame {p.frame}")
        for m in sdp_media_lines(data, p.src):
            self.media.learn_media(m.addr, m.port, m.proto)
            self.dtls.learn_media(m.addr, m.port, m.proto, m.fingerprints)

    def _learn_key(self, suite: str, inline: bytes, origin: str) -> None:
        k = sdes_key(suite, inline, origin)
        if k is not None:
            self._add_key(k)

    def _add_key(self, k: SrtpKey) -> None:
        """A key learned in mid-pass (SDES in clear SIP, or derived from a DTLS handshake): the
        media streams held so far try it, the interfaces search for it."""
        if (k.key, k.salt) in self._key_ids:
            return
        self._key_ids.add((k.key, k.salt))
        self.keys.append(k)
        self.interfaces.keys_changed()
        self.media.key_learned(k)

    # -- results -------------------------------------------------------------------------------

    def finish(self) -> None:
        # This order is the order of the report's findings and unjudged streams; the DTLS
        # observer goes first because it tells the media why keys are missing.
        self.dtls.finish()
        self.media.settle()
        self.interfaces.finish()
        self.media.report_reuse()
