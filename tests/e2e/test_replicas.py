"""Two bot replicas behind one webhook address, on one PostgreSQL database and one Redis (issue 5).

The emulator's balancer spreads Telegram's updates round-robin over two `python -m bot run`
processes; both share the database, Redis, the webhook secret and the clock file. 1 000 follow-ups
are started with /follow and 1 000 payment reminders planned from signed shop events (the rule made
automatic by the lead). The clock then moves a minute at a time, so reminders and deliveries flow
for a while; the replica posting reminders is killed with SIGKILL right after its first one, with
deliveries held open at the gateway, and started again.

Every timer must fire and be recorded once, every care message reach the gateway once per
idempotency key, and the balancer must have used both replicas. What a killed process had sent but
not yet recorded is sent again when its claim lapses (at least once, by design): the gateway answers
409 to such a delivery, but Telegram has no idempotency key, so such a reminder shows twice; the
test allows exactly those, found in the database at the kill. Last, a note started on one replica
finishes on the other (the conversation state lives in Redis).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis

from bot.clock import Clock
from tests.e2e.chat import ChatUser, Emulator
from tests.e2e.conftest import LEAD, ROOT, TOKEN, bot_env, free_port, wait_until
from tests.e2e.shop import advance, post_events
from tests.receivers import WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(420)]

SECRET = "replicas-webhook-secret_42"
CARE_SECRET = "replicas-care-secret"
GROUPS = 20
AGENTS_PER_GROUP = 2
FOLLOW_UPS = 1000
CARE_MESSAGES = 1000
SPREAD_MINUTES = 20  # timers and care messages fall due over this many minutes of the bot's clock
STEP_SECONDS = 0.8  # real time between two one-minute moves of the clock
KILL_AT_STEP, RESTART_AT_STEP = 7, 11
# The claim lease, on the bot's clock, which runs 75 times fast here: 900 s are 12 s of real time, so a
# replica slow for a few seconds (starting up on a busy machine) keeps its claims, and the killed
# replica's claims still come back within the run.
LEASE_SECONDS = 900
FIRST_GROUP = -1007000000001
REMINDER_HEADS = ("⏰", "📣")  # a reminder or digest; a re-post or escalation would start likewise


def fu_customer(n: int) -> str:
    return f"RF{n:04d}"


def fu_name(n: int) -> str:
    return f"Rfan{n:04d}"


FU_NAME = re.compile(r"Rfan(\d{4})")


@dataclass
class Replica:
    env: dict[str, str]
    log: Path
    process: subprocess.Popen | None = None
    starts: int = 0

    @property
    def backend(self) -> str:
        return f"http://127.0.0.1:{self.env['HTTP_PORT']}/tg/hook"

    def start(self) -> None:
        self.starts += 1
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
        )

    def serving(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"replica exited: {self.log.read_text()[-3000:]}")
        return self.log.read_text().count("webhook set") >= self.starts

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)  # no shutdown of any kind
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


class Database:
    """The replicas' database, read by the test (asyncpg on a loop of its own: the test is synchronous)."""

    def __init__(self, url: str) -> None:
        self._loop = asyncio.new_event_loop()
        dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self._conn: asyncpg.Connection = self._loop.run_until_complete(asyncpg.connect(dsn))

    def rows(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return self._loop.run_until_complete(self._conn.fetch(query, *args))

    def value(self, query: str, *args: Any) -> Any:
        return self._loop.run_until_complete(self._conn.fetchval(query, *args))

    def close(self) -> None:
        self._loop.run_until_complete(self._conn.close())
        self._loop.close()


@dataclass
class Cluster:
    emulator: Emulator
    token: str
    replicas: list[Replica]
    db: Database
    receiver: WebhookReceiver
    groups: list[int] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return self.replicas[0].env

    def route_to(self, *replicas: Replica) -> None:
        """Point the balancer in front of the webhook address at these replicas."""
        urls = [r.backend for r in replicas]
        self.emulator.call("POST", "/control/webhook/backends", {"urls": urls, "token": self.token})

    def deliveries(self) -> dict[str, Any]:
        return self.emulator.call("GET", "/control/webhook/deliveries", token=self.token)

    def user(self, chat_id: int, who: dict[str, Any]) -> ChatUser:
        return ChatUser(self.emulator, chat_id, who, token=self.token)

    def post(self, chat_id: int, who: dict[str, Any], text: str) -> None:
        body = {"chat_id": chat_id, "from": who, "text": text, "token": self.token}
        self.emulator.call("POST", "/control/messages", body)


def agent(group: int, n: int) -> dict[str, Any]:
    user_id = 9300 + group * AGENTS_PER_GROUP + n
    return {"id": user_id, "first_name": f"Agent{user_id}", "language_code": "en"}


@pytest.fixture
def cluster(emulator: Emulator, pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    # A bot id of its own per run: the update ledger in Redis remembers update ids for a day, and
    # the emulator numbers a new bot's updates from 1 again.
    token = f"{7_000_000_000 + secrets.randbelow(999_999_999)}:AAE-replicas-test-token-0123456789"
    public = f"http://127.0.0.1:{free_port()}/tg/hook"  # the balancer's address: nothing listens
    receiver = WebhookReceiver(CARE_SECRET).start()
    replicas = []
    for n in (1, 2):
        env = bot_env(pg_url, emulator.base_url, tmp_path, token)  # one clock file for both
        env.update(
            WEBHOOK_URL=public,
            WEBHOOK_SECRET=SECRET,
            REDIS_URL=redis_url,
            DEFAULT_LOCALE="en",
            REMINDER_GRACE_MINUTES="600",  # one reminder per timer within the run: no re-posts
            TIMER_LEASE_SECONDS=str(LEASE_SECONDS),
            CARE_WEBHOOK_URL=receiver.url,
            CARE_WEBHOOK_SECRET=CARE_SECRET,
            CARE_QUIET_HOURS="off",
            CARE_SEND_PER_SECOND="100",
            # The emulator does not enforce Telegram's limits here; the bot's own pacing is raised so
            # 1 000 confirmations and the reminders do not take minutes.
            SEND_PER_GROUP_PER_MINUTE="600",
            SEND_PER_CHAT_PER_SECOND="10",
            SEND_CHAT_BURST="10",
            SEND_GLOBAL_PER_SECOND="100",
            SHUTDOWN_TIMEOUT_SECONDS="5",
        )
        replicas.append(Replica(env, tmp_path / f"replica{n}.log"))
    db = Database(pg_url)
    try:
        for replica in replicas:  # together: each migrates under the advisory lock, one waits
            replica.start()
        wait_until(lambda: all(r.serving() for r in replicas), timeout=60, what="both replicas to serve")
        c = Cluster(emulator, token, replicas, db, receiver)
        c.route_to(*replicas)
        yield c
    finally:
        for replica in replicas:
            replica.stop()
        receiver.stop()
        db.close()
        emulator.call("POST", "/control/webhook/backends", {"urls": [], "token": token})
        forget_bot(redis_url, token)


def forget_bot(redis_url: str, token: str) -> None:
    """Drop this run's update ledger and conversation state from the shared Redis database."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"touchpoint:*:{token.split(':')[0]}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def set_up_groups(c: Cluster) -> None:
    main_bot = {"id": int(TOKEN.split(":")[0]), "is_bot": True, "first_name": "main"}
    for g in range(GROUPS):
        chat_id = FIRST_GROUP - g
        c.emulator.create_chat(chat_id, title=f"Replica team {g}")
        for who in (LEAD, *(agent(g, n) for n in range(AGENTS_PER_GROUP))):
            c.emulator.add_member(chat_id, who)
        c.emulator.add_member(chat_id, main_bot, status="left")
        (bound,) = c.user(chat_id, LEAD).send("/bind")
        assert "Touchpoint team chat" in bound["text"], bound
        c.groups.append(chat_id)
    (auto,) = c.user(c.groups[0], LEAD).send("/care auto payment_reminder on")
    assert "without approval" in auto["text"], auto


def start_follow_ups(c: Cluster) -> None:
    """1 000 customers by shop event, then one /follow each, due 1 to SPREAD_MINUTES minutes on."""
    now = Clock(Path(c.env["SANDBOX_CLOCK_FILE"])).now().isoformat()
    customers = [
        {
            "id": f"upsert-{fu_customer(n)}",
            "type": "customer.upserted",
            "occurred_at": now,
            "data": {"customer_id": fu_customer(n), "nickname": fu_name(n)},
        }
        for n in range(1, FOLLOW_UPS + 1)
    ]
    post_batches(c, customers)
    commands = []
    for n in range(1, FOLLOW_UPS + 1):
        # Each minute's timers are spread over every group and agent: mostly single reminders, a
        # few digests (an agent with two due at once).
        g, owners = n % GROUPS, GROUPS * AGENTS_PER_GROUP
        who = agent(g, (n // GROUPS) % AGENTS_PER_GROUP)
        minutes = 1 + (n // owners) % SPREAD_MINUTES
        commands.append((c.groups[g], who, f"/follow {fu_customer(n)} no_reply {minutes}"))
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda cmd: c.post(*cmd), commands))
    wait_until(
        lambda: c.db.value("SELECT count(*) FROM follow_up") == FOLLOW_UPS,
        timeout=120,
        what="1 000 follow-ups",
    )


def plan_care(c: Cluster) -> None:
    """1 000 unpaid orders of new customers; each one's payment reminder (25 minutes after the order)
    falls due 1 to SPREAD_MINUTES minutes from now, half a minute before that minute's timers."""
    now = Clock(Path(c.env["SANDBOX_CLOCK_FILE"])).now()
    orders = []
    for n in range(1, CARE_MESSAGES + 1):
        due = now + timedelta(minutes=1 + n % SPREAD_MINUTES, seconds=-30)  # half a minute before timers
        created = (due - timedelta(minutes=25)).isoformat()
        orders.append(
            {
                "id": f"created-RO{n:04d}",
                "type": "order.created",
                "occurred_at": created,
                "data": {
                    "order_id": f"RO{n:04d}",
                    "customer_id": f"RC{n:04d}",
                    "amount": "88.00",
                    "created_at": created,
                },
            }
        )
    post_batches(c, orders)
    planned = "SELECT count(*) FROM care_message WHERE rule = 'payment_reminder' AND state = 'planned'"
    assert c.db.value(planned) == CARE_MESSAGES


def post_batches(c: Cluster, events: list[dict[str, Any]]) -> None:
    """The shop's events in batches of 500, taking turns between the replicas' event APIs."""
    for i, start in enumerate(range(0, len(events), 500)):
        batch = events[start : start + 500]
        status, body = post_events(c.replicas[i % 2].env, batch)
        assert status == 200 and body["accepted"] == len(batch), body


def reminder_counts(c: Cluster) -> Counter[int]:
    """How many reminders (single or digest lines) each follow-up customer got in the groups."""
    counts: Counter[int] = Counter()
    for chat_id in c.groups:
        for message in c.emulator.messages(chat_id):
            text = message.get("text") or ""
            if message.get("from", {}).get("is_bot") and text.startswith(REMINDER_HEADS):
                counts.update(int(n) for n in FU_NAME.findall(text))
    return counts


def progress(c: Cluster) -> tuple[int, int]:
    fired = c.db.value("SELECT count(*) FROM follow_up WHERE fired_at IS NOT NULL")
    delivered = c.db.value(
        "SELECT count(*) FROM care_message WHERE rule = 'payment_reminder' AND state = 'delivered'"
    )
    return fired, delivered


def test_two_replicas_fire_each_timer_and_deliver_each_message_once_through_a_crash(
    cluster: Cluster,
) -> None:
    c = cluster
    started = time.monotonic()
    set_up_groups(c)
    start_follow_ups(c)
    plan_care(c)
    set_up = time.monotonic() - started

    at_kill: AtKill | None = None
    victim = c.replicas[1]
    for step in range(1, SPREAD_MINUTES + LEASE_SECONDS // 60 + 2):
        if step == KILL_AT_STEP:
            victim = kill_mid_flow(c)
            at_kill = snapshot(c)
        else:
            advance(c.env, 1)
        time.sleep(STEP_SECONDS)
        if step == RESTART_AT_STEP:
            victim.start()
    wait_until(victim.serving, timeout=60, what="the killed replica to serve again")
    assert at_kill is not None

    def all_done() -> bool:
        return progress(c) == (FOLLOW_UPS, CARE_MESSAGES) and len(c.receiver.delivered) == CARE_MESSAGES

    wait_until(all_done, timeout=90, what="every reminder and delivery")
    time.sleep(2)  # anything fired twice would show by now
    counts = reminder_counts(c)
    resent = {int(key.removeprefix("tp-")) for key in c.receiver.duplicates}
    print(
        f"set-up {set_up:.0f} s, flow {time.monotonic() - started - set_up:.0f} s; at the kill "
        f"{at_kill.fired} timers fired, {at_kill.delivered} messages delivered, "
        f"{len(at_kill.firing)} reminders and {len(at_kill.sending)} deliveries under way; "
        f"re-sent after the kill: {len(resent)} deliveries (answered 409), "
        f"{sum(k > 1 for k in counts.values())} reminders"
    )

    # The kill came mid-way: some of each had gone out, some had not.
    assert 0 < at_kill.fired < FOLLOW_UPS and 0 < at_kill.delivered < CARE_MESSAGES, at_kill

    # Follow-ups: every timer fired and recorded once; every one reminded in its group once. The only
    # exception Telegram leaves room for: a reminder the killed replica had posted but not yet
    # recorded comes back when its claim lapses and is posted again.
    assert c.db.value("SELECT count(*) FROM follow_up WHERE state = 'firing' OR fired_at IS NULL") == 0
    fired_twice = c.db.value(
        "SELECT count(*) FROM (SELECT follow_up_id FROM follow_up_event WHERE action = 'fired' "
        "GROUP BY follow_up_id HAVING count(*) > 1) AS twice"
    )
    assert fired_twice == 0
    assert sorted(counts) == list(range(1, FOLLOW_UPS + 1)), "a timer with no reminder"
    twice = {n: k for n, k in counts.items() if k > 1}
    assert set(twice) <= at_kill.firing_customers and max(counts.values()) <= 2, (
        f"reminded more than once: {twice}; under way at the kill: {sorted(at_kill.firing_customers)}"
    )

    # Care: every payment reminder delivered once per idempotency key. Only a delivery the killed
    # replica had under way may be sent again (the gateway answers 409, the customer gets it once).
    assert len(c.receiver.delivered) == CARE_MESSAGES and set(c.receiver.delivered.values()) == {1}
    assert resent <= at_kill.sending, (
        f"sent twice though not under way at the kill: {sorted(resent - at_kill.sending)}\n"
        + diagnose(c, resent - at_kill.sending)
    )
    undelivered = "SELECT count(*) FROM care_message WHERE rule = 'payment_reminder' AND state <> 'delivered'"
    assert c.db.value(undelivered) == 0

    # The balancer sent updates to both replicas.
    backends = c.deliveries()["backends"]
    assert all(backends[r.backend]["ok"] > 0 for r in c.replicas), backends

    note_flow_across_replicas(c)


def posted(replica: Replica) -> int:
    """sendMessage calls the replica has made (its /metrics)."""
    url = f"http://127.0.0.1:{replica.env['HTTP_PORT']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        metrics = response.read().decode()
    found = re.search(r'^touchpoint_telegram_calls_total\{method="sendMessage"\} (\S+)$', metrics, re.M)
    return int(float(found.group(1))) if found else 0


def kill_mid_flow(c: Cluster) -> Replica:
    """Move the clock on a minute in two halves: the first brings the minute's care messages (held
    open at the gateway for a moment each, so they are still going out), the second its reminders.
    SIGKILL the replica that takes the reminders as soon as its first one is out: it dies holding the
    rest of them, and perhaps deliveries."""
    requests = len(c.receiver.requests)
    c.receiver.delay(0.5)
    try:
        advance(c.env, 0.5)
        wait_until(lambda: len(c.receiver.requests) > requests, what="the minute's deliveries to start")
        before = [posted(r) for r in c.replicas]
        advance(c.env, 0.5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            moved = [r for r, n in zip(c.replicas, before, strict=True) if posted(r) > n]
            if moved:
                moved[0].kill()
                return moved[0]
            time.sleep(0.005)
        raise AssertionError("no replica posted the minute's reminders")
    finally:
        c.receiver.delay(0)


@dataclass(frozen=True)
class AtKill:
    fired: int
    delivered: int
    firing: frozenset[int]  # follow-up ids claimed and not yet recorded
    firing_customers: frozenset[int]  # their customers' numbers (Rfan####)
    sending: frozenset[int]  # care message ids claimed for delivery and not yet recorded


def snapshot(c: Cluster) -> AtKill:
    """What was under way when the replica died: its claims stay until their lease lapses."""
    fired, delivered = progress(c)
    firing = c.db.rows(
        "SELECT f.id, c.external_id FROM follow_up f JOIN customer c ON c.id = f.customer_pk "
        "WHERE f.state = 'firing'"
    )
    sending = c.db.rows("SELECT id FROM care_message WHERE state = 'sending'")
    return AtKill(
        fired,
        delivered,
        frozenset(r[0] for r in firing),
        frozenset(int(r[1].removeprefix("RF")) for r in firing),
        frozenset(r[0] for r in sending),
    )


def diagnose(c: Cluster, ids: set[int]) -> str:
    """Each replica's log lines about these deliveries, and their attempts, for a failure message."""
    lines = []
    for mid in sorted(ids)[:5]:
        attempts = c.db.rows("SELECT outcome, detail, at FROM care_attempt WHERE care_message_id = $1", mid)
        lines.append(f"tp-{mid}: attempts {[tuple(a) for a in attempts]}")
        for replica in c.replicas:
            lines += [
                f"  {replica.log.name}: {line}"
                for line in replica.log.read_text().splitlines()
                if f"tp-{mid} " in line
            ]
    return "\n".join(lines)


def handled_by(c: Cluster) -> dict[str, int]:
    """Updates each replica answered 2xx since the counters were last zeroed (an update's delivery
    is counted once the handler has finished, a moment after its reply is in the chat)."""
    return {url: s["ok"] for url, s in c.deliveries()["backends"].items() if s["ok"]}


def note_flow_across_replicas(c: Cluster) -> None:
    """Note pressed on replica 1, its text handled by replica 2: the state must be in Redis."""
    first, second = c.replicas
    chat_id = c.groups[1]
    writer = c.user(chat_id, agent(1, 0))
    c.route_to(first)
    (card,) = writer.send(f"/card {fu_customer(1)}")
    c.emulator.call("DELETE", "/control/webhook/deliveries", token=c.token)
    writer.click(card, "Note")
    (prompt,) = writer.wait_new(card["message_id"])
    assert "reply with the note for Rfan0001" in prompt["text"]
    wait_until(lambda: handled_by(c) == {first.backend: 1}, what="the press to be handled by replica 1")

    c.route_to(second)
    c.emulator.call("DELETE", "/control/webhook/deliveries", token=c.token)
    (saved,) = writer.reply_to(prompt, "Prefers a call after 18:00")
    assert "Note saved for Rfan0001" in saved["text"]
    wait_until(lambda: handled_by(c) == {second.backend: 1}, what="the note to be handled by replica 2")
    refreshed = writer.click_and_wait_edit(card, "Refresh")
    assert "Prefers a call after 18:00" in refreshed["text"]
    c.route_to(first, second)
