from apiclab.engine import events as evt
from apiclab.engine.choices import Choices
from apiclab.engine.core import Engine, Signal, Sleep, Wait
from apiclab.engine.trace import Trace


def test_callbacks_run_in_time_then_scheduling_order():
    engine = Engine()
    seen = []
    engine.at(20, lambda: seen.append("b"))
    engine.at(10, lambda: seen.append("a"))
    engine.at(20, lambda: seen.append("c"))
    engine.run()
    assert seen == ["a", "b", "c"] and engine.now == 20


def test_cancelled_callback_does_not_run():
    engine = Engine()
    seen = []
    handle = engine.at(5, lambda: seen.append(1))
    handle.cancel()
    engine.run()
    assert seen == []


def test_wait_returns_true_when_signalled_and_false_at_deadline():
    engine = Engine()
    signal = Signal()
    results = []

    def process():
        results.append((yield Wait(signal, deadline=100)))
        results.append(engine.now)
        results.append((yield Wait(signal, deadline=engine.now + 50)))
        results.append(engine.now)

    engine.at(30, signal.fire)
    engine.run_process(process())
    assert results == [True, 30, False, 80]


def test_sleep_advances_virtual_time():
    engine = Engine()

    def process():
        yield Sleep(1_000)
        yield Sleep(500)

    engine.run_process(process())
    assert engine.now == 1_500


def test_choices_replay_reproduces_a_seeded_run():
    first = Choices(seed=3)
    values = [first.between(0, 100) for _ in range(10)]
    again = Choices(replay=first.drawn)
    assert [again.between(0, 100) for _ in range(10)] == values


def test_exhausted_replay_draws_zero():
    choices = Choices(replay=[5])
    assert choices.below(10) == 5 and choices.below(10) == 0


def test_trace_digest_changes_with_content():
    a, b = Trace(), Trace()
    a.record(1, evt.Fault, vector=1)
    b.record(1, evt.Fault, vector=2)
    assert a.digest() != b.digest()
    assert Trace.from_dicts([evt.to_dict(e) for e in a]).digest() == a.digest()
