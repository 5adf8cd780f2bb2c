"""Rekeying cost and media load as one conference grows to N participants (R6, O2).

Run: python benchmarks/scale.py [--sizes 10 100 1000] [--seconds 5] [--png reports/scale.png]
(from a checkout; needs the `bench` extra for the PNG: pip install -e '.[bench]')

The embedded reference (focus + mixer) runs in a child process, so that it and the suite each
get a core of this 2-core machine; the suite drives every participant from ONE asyncio loop in
this process: one SIP/TLS user agent, one audio leg (50 packets/s up) and one common-stream leg
per participant, with the same code the scenarios use (`Participant`, `rekeying.attach`).

For each size N the conference is grown (joins in concurrent batches), then:

* media window: every participant sends 50 pps for `--seconds`; the mixer sends each of them
  50 pps of mix-minus audio plus 50 pps of the group-keyed common stream. Printed: offered and
  achieved rates, the loss in each direction (suite sent vs mixer received; mixer sent vs suite
  received) and the CPU share of each process;
* rekey latency, media running: `--events` leaves and joins; per remaining participant, the
  time from the 200 OK of the BYE (or of the joiner's INVITE) to the first packet that
  authenticates under its new key on its slowest leg; p50/p99 over all of them;
* signalling per event: SIP messages the suite's user agents sent and received from the BYE or
  INVITE until every remaining participant had answered its re-INVITE.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import confsec.behaviour.participant as participant_module
from benchmarks.reference_child import cpu, reference_in_child, run_reference
from confsec.behaviour.participant import OfferSpec, Participant, attach
from confsec.codec.sdp import parse_sdp
from confsec.codec.sip import parse_name_addr
from confsec.media.ledger import KeyStreamLedger
from confsec.net.startup import client_ssl_context
from confsec.net.ua import UserAgent
from confsec.target.model import Target

PPS = 50
JOIN_BATCH = 50


# -- the reference, in its own process ---------------------------------------------------------


def _answer(msg: str, deployment, loop: asyncio.AbstractEventLoop):  # type: ignore[no-untyped-def]
    """Counters are read here, in the pipe's thread, not on the busy loop: a snapshot taken a
    tick late would count ~20 ms of packets into the wrong window."""
    if msg in ("pause", "resume"):
        mixer = deployment.mixer
        loop.call_soon_threadsafe(mixer.pause if msg == "pause" else mixer.resume)
        return "ok"
    st = deployment.mixer.stats
    rk = deployment.focus.rekey
    return {
        "cpu": cpu(),
        "received": st.received,
        "sent": st.sent,
        "auth_failed": st.auth_failed,
        "signalling": rk.signalling_messages,
        "rounds": len(rk.rounds),
    }


def reference_process(conn, workdir: str, users: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Child: the reference, answering "pause", "resume" and counter snapshots."""
    run_reference(conn, workdir, users, _answer)


# -- the suite side ----------------------------------------------------------------------------


@dataclass
class Sizes:
    n: int
    up_offered: float = 0.0
    up_sent: float = 0.0
    up_loss: float = 0.0
    down_offered: float = 0.0
    down_achieved: float = 0.0
    down_loss: float = 0.0
    suite_cpu: float = 0.0
    ref_cpu: float = 0.0
    leave_latency: list[float] = field(default_factory=list)
    keys_latency: list[float] = field(default_factory=list)
    """Per participant and event: 200 OK of the BYE/INVITE -> the focus's re-INVITE arrived."""
    join_latency: list[float] = field(default_factory=list)
    leave_msgs: list[int] = field(default_factory=list)
    join_msgs: list[int] = field(default_factory=list)
    unsettled: int = 0
    suite_us_per_packet: float = 0.0
    ref_us_per_packet: float = 0.0


class Bench:
    def __init__(self, target: Target, conn, keylog: str):
        self.target = target
        self.conn = conn
        self.keylog = keylog
        self.ledger = KeyStreamLedger()
        self.people: dict[str, Participant] = {}
        self.free = [u for u in sorted(target.accounts)]
        self.uri = ""

    def control(self, what: str) -> None:
        self.conn.send(what)
        self.conn.recv()

    async def quiesce(self) -> None:
        """Stop media both ways and wait until nothing arrives any more (exact counts)."""
        self.media(False)
        self.control("pause")
        last, quiet = -1, 0
        for _ in range(500):
            await asyncio.sleep(0.02)
            now = self.counters()[1]
            quiet = quiet + 1 if now == last else 0
            if quiet >= 5:
                return
            last = now

    def snapshot(self) -> tuple[dict, tuple[int, int], float, float]:
        """Reference counters, suite counters, suite CPU and loop time, taken together."""
        self.conn.send("stats")
        mine = self.counters(), cpu(), time.monotonic()
        return self.conn.recv(), *mine

    async def _participant(self, name: str) -> Participant:
        account = self.target.account(name)
        ua = await UserAgent.start(
            aor=account.aor(self.target.domain),
            display_name=name,
            contact_host="127.0.0.1",
            credentials=(account.username, account.password),
            client_ssl=client_ssl_context(self.target, account, self.keylog),
            server_hostname=self.target.domain,
        )
        return Participant(name, account, self.target, ua, self.ledger, 440.0, all_tones={})

    async def join(self, uri: str | None = None) -> tuple[Participant, float, float]:
        name = self.free.pop(0)
        started = asyncio.get_running_loop().time()
        p = await self._participant(name)
        sdp = await p.build_offer(OfferSpec(common=True))
        call = await p.ua.invite(uri or self.uri, sdp, dest=self.target.dest, timeout=60)
        done = asyncio.get_running_loop().time()
        if not 200 <= call.response.status < 300:
            raise RuntimeError(f"{name} refused: {call.response.status} {call.response.reason}")
        answer = parse_sdp(call.response.body)
        p.apply_answer(answer)
        attach(p, call.dialog, answer)
        if not self.uri:
            self.uri = parse_name_addr(call.response.headers.get("Contact") or "").uri
        self.people[name] = p
        return p, started, done

    async def grow(self, n: int) -> None:
        if not self.people:
            await self.join(self.target.factory_uri)
        while len(self.people) < n:
            batch = min(JOIN_BATCH, n - len(self.people))
            await asyncio.gather(*(self.join() for _ in range(batch)))

    async def leave(self) -> tuple[str, float, float]:
        name = list(self.people)[-1]
        p = self.people.pop(name)
        p.stop_media()
        assert p.dialog is not None
        started = asyncio.get_running_loop().time()
        await p.dialog.bye(timeout=60)
        done = asyncio.get_running_loop().time()
        await p.close()
        return name, started, done

    def messages(self) -> int:
        return sum(len(p.ua.trace) for p in self.people.values())

    def keys_arrived(self, started: float, done: float, exclude: str) -> list[float]:
        """Per remaining participant: when its re-INVITE (new keys) arrived, from `done`."""
        out = []
        for p in self.people.values():
            at = next((r.at for r in p.rekeys if r.at >= started), None)
            if p.name != exclude and at is not None:
                out.append(max(at - done, 0.0))
        return out

    async def settle(
        self, started: float, after: float, exclude: str, timeout: float
    ) -> tuple[list[float], int]:
        """Wait until every remaining participant saw packets under its new keys on all legs.

        Keys count from `started` (the BYE or INVITE was sent: the focus may rekey before this
        loop has read the 200 OK); the latency counts from `after` (that 200 OK), at least 0.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            lat, pending = [], 0
            for p in self.people.values():
                if p.name == exclude:
                    continue
                worst = 0.0
                for leg in p.legs.values():
                    set_at, first = leg.receiver_set_at, leg.first_authenticated_at
                    if set_at is None or set_at < started or first is None:
                        pending += 1
                        break
                    worst = max(worst, first - after, 0.0)
                else:
                    lat.append(worst)
            if not pending or loop.time() > deadline:
                return lat, pending
            await asyncio.sleep(0.01)

    def media(self, on: bool) -> None:
        for p in self.people.values():
            if on:
                p.start_media()
            else:
                p.stop_media()

    def counters(self) -> tuple[int, int]:
        sent = received = 0
        for p in self.people.values():
            for leg in p.legs.values():
                sent += leg.sent
                received += leg.received
        return sent, received


async def measure(bench: Bench, n: int, seconds: float, events: int) -> Sizes:
    t = time.monotonic()
    await bench.grow(n)
    print(f"  N={n}: grown in {time.monotonic() - t:.1f} s", flush=True)
    out = Sizes(n)
    # Counts are taken with media stopped both ways and drained, so nothing is in flight;
    # CPU over the window only.
    await bench.quiesce()
    ref0, s0, _, _ = bench.snapshot()
    bench.control("resume")
    bench.media(True)
    rc0, _, c0, w0 = bench.snapshot()
    await asyncio.sleep(seconds)
    rc1, _, c1, w1 = bench.snapshot()
    await bench.quiesce()
    ref1, s1, _, _ = bench.snapshot()
    bench.control("resume")
    bench.media(True)
    await asyncio.sleep(0.5)
    ref0["cpu"], ref1["cpu"] = rc0["cpu"], rc1["cpu"]
    wall = w1 - w0
    sent, received = s1[0] - s0[0], s1[1] - s0[1]
    r_recv, r_sent = ref1["received"] - ref0["received"], ref1["sent"] - ref0["sent"]
    out.up_offered = n * PPS * wall
    out.up_sent = sent
    out.up_loss = 1 - r_recv / sent if sent else 1.0
    out.down_offered = 2 * n * PPS * wall
    out.down_achieved = r_sent
    out.down_loss = 1 - received / r_sent if r_sent else 1.0
    out.suite_cpu = (c1 - c0) / wall
    out.ref_cpu = (ref1["cpu"] - ref0["cpu"]) / wall
    out.suite_us_per_packet = (c1 - c0) / max(sent + received, 1) * 1e6
    out.ref_us_per_packet = (ref1["cpu"] - ref0["cpu"]) / max(r_recv + r_sent, 1) * 1e6
    print(
        f"  N={n}: up {sent / wall:,.0f} pps of {out.up_offered / wall:,.0f} offered, "
        f"down {r_sent / wall:,.0f} pps of {out.down_offered / wall:,.0f}; CPU per packet: "
        f"suite {out.suite_us_per_packet:.1f} us, reference {out.ref_us_per_packet:.1f} us",
        flush=True,
    )
    settle_s = 30 + n / 10  # a saturated 1000-party rekey takes tens of seconds
    for _ in range(events):
        m0 = bench.messages()
        name, started, done = await bench.leave()
        lat, pending = await bench.settle(started, done, name, timeout=settle_s)
        out.leave_latency += lat
        out.keys_latency += bench.keys_arrived(started, done, name)
        out.unsettled += pending
        out.leave_msgs.append(bench.messages() - m0 + 2)  # + the leaver's BYE and 200 OK
        print(
            f"  N={n}: leave: p50 {pct(lat, 0.5) * 1000:.0f} ms,"
            f" p99 {pct(lat, 0.99) * 1000:.0f} ms,"
            f" {out.leave_msgs[-1]} SIP messages, {pending} not rekeyed",
            flush=True,
        )
        m0 = bench.messages()
        p, started, done = await bench.join()
        p.start_media()
        lat, pending = await bench.settle(started, done, p.name, timeout=settle_s)
        out.join_latency += lat
        out.keys_latency += bench.keys_arrived(started, done, p.name)
        out.unsettled += pending
        out.join_msgs.append(bench.messages() - m0)
        print(
            f"  N={n}: join: p50 {pct(lat, 0.5) * 1000:.0f} ms,"
            f" p99 {pct(lat, 0.99) * 1000:.0f} ms,"
            f" {out.join_msgs[-1]} SIP messages, {pending} not rekeyed",
            flush=True,
        )
    bench.media(False)
    await asyncio.sleep(0.2)
    return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, round(q * (len(v) - 1)))]


def report(rows: list[Sizes]) -> None:
    print()
    print(
        f"{'N':>5} {'keys p50':>9} {'keys p99':>9} "
        f"{'leave p50':>10} {'leave p99':>10} {'join p50':>9} {'join p99':>9} "
        f"{'msgs/leave':>10} {'msgs/join':>9} {'up loss':>8} {'down loss':>9} "
        f"{'up pps':>7} {'down pps':>9} {'suite CPU':>9} {'ref CPU':>8}"
    )
    for r in rows:
        lp50, lp99 = pct(r.leave_latency, 0.5) * 1000, pct(r.leave_latency, 0.99) * 1000
        jp50, jp99 = pct(r.join_latency, 0.5) * 1000, pct(r.join_latency, 0.99) * 1000
        lm, jm = statistics.mean(r.leave_msgs or [0]), statistics.mean(r.join_msgs or [0])
        kp50, kp99 = pct(r.keys_latency, 0.5) * 1000, pct(r.keys_latency, 0.99) * 1000
        achieved = r.down_achieved / max(r.down_offered, 1) * 100
        up = r.up_sent / max(r.up_offered, 1) * 100
        print(
            f"{r.n:>5} {kp50:>7.0f}ms {kp99:>7.0f}ms"
            f" {lp50:>8.0f}ms {lp99:>8.0f}ms {jp50:>7.0f}ms {jp99:>7.0f}ms"
            f" {lm:>10.0f} {jm:>9.0f} {r.up_loss * 100:>7.2f}% {r.down_loss * 100:>8.2f}%"
            f" {up:>6.0f}% {achieved:>8.0f}% {r.suite_cpu * 100:>8.0f}% {r.ref_cpu * 100:>7.0f}%"
            + (f"  ({r.unsettled} participants never saw new keys)" if r.unsettled else "")
        )
    print(
        "keys: 200 OK of the BYE/INVITE -> the re-INVITE with new keys arrived; leave/join: 200 OK"
        " -> first packet under the new key (slowest leg); per remaining participant.\n"
        "up/down pps: share of the offered 50 pps up (suite) and 2 x 50 pps down (mixer) per "
        "participant that was achieved; loss: counted with media stopped and drained both ways; "
        "CPU: share of one core."
    )


def plot(rows: list[Sizes], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no PNG drawn")
        return
    ns = [r.n for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for label, key in (("leave", "leave_latency"), ("join", "join_latency")):
        a.plot(ns, [pct(getattr(r, key), 0.5) * 1000 for r in rows], "o-", label=f"{label} p50")
        a.plot(ns, [pct(getattr(r, key), 0.99) * 1000 for r in rows], "s--", label=f"{label} p99")
    a.plot(ns, [pct(r.keys_latency, 0.99) * 1000 for r in rows], "^:", label="keys arrive p99")
    a.axhline(1000, color="grey", lw=0.8)
    a.set(xscale="log", yscale="log", xlabel="participants", ylabel="rekey latency (ms)")
    a.set_title("rekey latency (media running)")
    a.legend()
    b.plot(ns, [r.up_loss * 100 for r in rows], "o-", label="loss up (%)")
    b.plot(ns, [r.down_loss * 100 for r in rows], "s-", label="loss down (%)")
    b.plot(ns, [r.up_sent / max(r.up_offered, 1) * 100 for r in rows], "x:", label="up rate (%)")
    b.plot(
        ns,
        [r.down_achieved / max(r.down_offered, 1) * 100 for r in rows],
        "+:",
        label="down rate (%)",
    )
    b.plot(ns, [r.suite_cpu * 100 for r in rows], "^--", label="suite CPU (% core)")
    b.plot(ns, [r.ref_cpu * 100 for r in rows], "v--", label="reference CPU (% core)")
    b.set(xscale="log", xlabel="participants", title="suite load at 50 pps per leg")
    b.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    print(f"curve: {path}")


async def main_async(args, target: Target, conn, keylog: str) -> list[Sizes]:
    participant_module.RECENT_PACKETS = 0  # no per-leg packet history at this scale
    bench = Bench(target, conn, keylog)
    rows = []
    try:
        for n in sorted(args.sizes):
            rows.append(await measure(bench, n, args.seconds, args.events))
    finally:
        await asyncio.gather(*(p.close() for p in bench.people.values()), return_exceptions=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--seconds", type=float, default=5.0, help="media window per size")
    ap.add_argument("--events", type=int, default=3, help="leaves and joins per size")
    ap.add_argument("--png", type=Path, default=Path("reports/scale.png"))
    args = ap.parse_args()
    users = [f"b{n:04d}" for n in range(max(args.sizes) + args.events * len(args.sizes) + 5)]
    with tempfile.TemporaryDirectory(prefix="confsec-scale-") as tmp:
        with reference_in_child(reference_process, tmp, users) as (parent, target, pid):
            suite = mp.current_process().pid
            print(f"reference pid {pid} on port {target.port}; suite pid {suite}")
            rows = asyncio.run(main_async(args, target, parent, str(Path(tmp) / "keylog")))
    report(rows)
    plot(rows, args.png)


if __name__ == "__main__":
    main()
