"""The catalogue of what the suite checks: R1–R8 (TR 33.829 clause 5.1.3) and O1–O7 (5.1.2).

One name for one thing: these IDs are the tags in the Gherkin (`@req:R4`), the keys in
`verdicts.json` and the rows of every report. A requirement with no scenario is a coverage gap that
the reports must show, so the catalogue, not the collected tests, is the list reports iterate.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Requirement:
    id: str
    strength: str  # "shall" | "should" | "observation"
    clause: str
    title: str
    observe: str

    @property
    def mandatory(self) -> bool:
        return self.strength == "shall"


REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement(
        "R1",
        "shall",
        "5.1.3",
        "A user can initiate creation of an ad hoc secure conference",
        "Creation through a conference factory URI over SIPS with a secure media offer; the focus "
        "answers with a conference URI and applies the secure policy to everyone who joins.",
    ),
    Requirement(
        "R2",
        "shall",
        "5.1.3",
        "All conference participants and the service are securely authenticated",
        "TLS certificate valid for the service domain; unauthenticated or wrongly authenticated "
        "requests refused; identities in conference state come from authentication.",
    ),
    Requirement(
        "R3",
        "shall",
        "5.1.3",
        "All participants in a secure conference use media protection",
        "Plain RTP and null encryption refused; every media packet is SRTP that authenticates; "
        "no participant admitted unprotected.",
    ),
    Requirement(
        "R4",
        "shall",
        "5.1.3",
        "Different media streams use different key streams",
        "No two streams share (master key, master salt, SSRC): across media, participants and "
        "directions.",
    ),
    Requirement(
        "R5",
        "should",
        "5.1.3",
        "Group keys can protect media streams intended for all participants",
        "Common stream key shared by all members, distinct from every other stream, unobtainable "
        "by non-members.",
    ),
    Requirement(
        "R6",
        "should",
        "5.1.3",
        "Rekeying of a conference is possible, with fresh key material",
        "Forward and backward security on leave and join; new keys share nothing with old ones; "
        "rekeying cost as the conference grows.",
    ),
    Requirement(
        "R7",
        "shall",
        "5.1.3",
        "Conference event packages are protected",
        "SUBSCRIBE authenticated and authorised; NOTIFY only over protected signalling.",
    ),
    Requirement(
        "R8",
        "shall",
        "5.1.3",
        "Floor control signalling is protected",
        "BFCP over TLS with the fingerprint checked; plain TCP/BFCP refused; floor requests bound "
        "to the authenticated user.",
    ),
    Requirement(
        "O1",
        "observation",
        "5.1.2",
        "Key management in the AS; media keys carried AS -> MRFC -> MRFP",
        "No key material in the clear on those interfaces; NDS/IP (ESP, non-null encryption).",
    ),
    Requirement(
        "O2",
        "observation",
        "5.1.2",
        "Cost of rekeying on join/leave",
        "Rekey latency and signalling cost as the conference grows; bursts of joins and leaves.",
    ),
    Requirement(
        "O3",
        "observation",
        "5.1.2",
        "Mixer: mixing versus switching; a common output key",
        "Mixing re-encrypts; switching does not expose keys where claimed; common key obtained by "
        "every participant.",
    ),
    Requirement(
        "O4",
        "observation",
        "5.1.2",
        "Event packages carry sensitive information",
        "As R7, plus what a non-participant can learn of the conference state.",
    ),
    Requirement(
        "O5",
        "observation",
        "5.1.2",
        "Floor control reveals who speaks",
        "As R8.",
    ),
    Requirement(
        "O6",
        "observation",
        "5.1.2",
        "Conference server internal interfaces",
        "Informative: not testable unless the deployment names such an interface.",
    ),
    Requirement(
        "O7",
        "observation",
        "5.1.2",
        "Mutual authentication of users and service; identities of others",
        "As R2.",
    ),
)

BY_ID: dict[str, Requirement] = {r.id: r for r in REQUIREMENTS}
