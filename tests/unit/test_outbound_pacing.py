"""The send pacer books slots under Telegram's limits; a fake clock makes the schedule exact."""

from bot.outbound import SendPacer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def schedule(pacer: SendPacer, clock: Clock, chat: int, n: int) -> list[float]:
    """Absolute send times of n messages queued at once."""
    return [clock.now + pacer.reserve(chat) for _ in range(n)]


def test_private_chat_allows_a_short_burst_then_one_per_second() -> None:
    clock = Clock()
    pacer = SendPacer(per_chat_per_second=1, chat_burst=3, global_per_second=1000, clock=clock)
    times = [t - clock.now for t in schedule(pacer, clock, 42, 6)]
    assert max(times[:3]) < 0.01  # the burst goes at once (spaced only by the global pace)
    # Then one a second, a hair slower (slack for network jitter), never faster.
    assert all(k <= t <= k * 1.15 for k, t in zip((1, 2, 3), times[3:], strict=True)), times


def test_group_never_gets_more_than_twenty_a_minute() -> None:
    clock = Clock()
    pacer = SendPacer(
        per_chat_per_second=100, chat_burst=100, per_group_per_minute=20, global_per_second=1000, clock=clock
    )
    times = schedule(pacer, clock, -100, 45)
    for start in times:
        assert sum(1 for t in times if start <= t < start + 60) <= 20
    assert times[20] - times[0] >= 60


def test_whole_bot_stays_under_thirty_a_second_across_chats() -> None:
    clock = Clock()
    pacer = SendPacer(global_per_second=30, clock=clock)
    sent: list[float] = []
    while len(sent) < 90:  # senders for many chats all ready at once, polling the bot-wide pace
        wait = pacer.global_wait()
        if wait == 0:
            sent.append(clock.now)
        else:
            clock.now += wait
    for start in sent:
        assert sum(1 for t in sent if start <= t < start + 0.999) <= 30
    assert sent[-1] - sent[0] < 3.4  # 90 sends in about three seconds, a little slower for slack


def test_edits_do_not_use_up_the_groups_minute_budget() -> None:
    clock = Clock()
    pacer = SendPacer(
        per_chat_per_second=100, chat_burst=100, per_group_per_minute=2, global_per_second=1000, clock=clock
    )
    for _ in range(10):
        assert pacer.reserve(-5, counts_for_group=False) < 0.1
    assert pacer.reserve(-5) < 0.1 and pacer.reserve(-5) < 0.1
    assert pacer.reserve(-5) >= 59


def test_a_429_pushes_that_chat_back() -> None:
    clock = Clock()
    pacer = SendPacer(per_chat_per_second=1, chat_burst=3, global_per_second=1000, clock=clock)
    pacer.back_off(7, 5)
    assert pacer.reserve(7) >= 5
    assert pacer.reserve(8) == 0  # other chats are not held up


def test_a_send_held_up_by_the_bot_wide_pace_counts_when_it_really_goes() -> None:
    clock = Clock()
    pacer = SendPacer(
        per_chat_per_second=100, chat_burst=100, per_group_per_minute=20, global_per_second=1000, clock=clock
    )
    start = clock.now
    for n in range(20):  # all booked at once, but the bot-wide pace lets them out over 10 seconds
        booked = pacer.book(-7)
        clock.now = start + n * 0.5
        pacer.settle(-7, booked)
    clock.now = start + 10
    # Telegram saw them at +0, +0.5 … +9.5 s, so the 21st may go at +60 s (plus slack) but the 22nd
    # only a minute after the second real send, not after its earlier booking.
    assert pacer.book(-7) >= start + 60
    assert pacer.book(-7) >= start + 60.5 + 0.5
