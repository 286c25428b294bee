"""The gate's patience: light and focus problems the person cannot fix end in a result."""

from edge.quality import Patience, Verdict

FPS = 15
PALE_ON_WHITE = {"brightness": 228.0}  # a pale hand on white paper: "too bright" however it is held
WHITE_FIELD = {"brightness": 250.0}  # nothing but white: nothing to classify


def play(patience: Patience, verdicts: list[Verdict], q: dict, t0: float = 0.0) -> list[tuple[Verdict, bool]]:
    return [patience.observe(v, q, t0 + i / FPS) for i, v in enumerate(verdicts)]


def test_a_lasting_light_problem_is_classified_after_accept_after_s_and_marked():
    out = play(Patience(2.0), [Verdict.TOO_BRIGHT] * (3 * FPS), PALE_ON_WHITE)
    first_ok = next(i for i, (v, _) in enumerate(out) if v == Verdict.OK)
    assert first_ok == 2 * FPS
    assert all(v == Verdict.TOO_BRIGHT and not r for v, r in out[:first_ok])
    assert all(v == Verdict.OK and r for v, r in out[first_ok:])


def test_blur_and_darkness_count_together_and_good_frames_between_keep_the_clock():
    seq = [Verdict.BLURRED, Verdict.OK, Verdict.TOO_DARK] * FPS
    out = play(Patience(2.0), seq, {"brightness": 60.0})
    relaxed = [i for i, (_, r) in enumerate(out) if r]
    assert relaxed and relaxed[0] >= 2 * FPS and all(out[i][0] == Verdict.OK for i in relaxed)


def test_leaving_or_coming_closer_starts_the_clock_again_a_tremor_does_not():
    for fixable in (Verdict.TOO_FAR, Verdict.ABSENT):
        p = Patience(2.0)
        play(p, [Verdict.TOO_BRIGHT] * (FPS + FPS // 2), PALE_ON_WHITE)
        assert p.observe(fixable, {}, 1.6) == (fixable, False)
        out = play(p, [Verdict.TOO_BRIGHT] * (2 * FPS), PALE_ON_WHITE, t0=1.7)
        assert not any(r for _, r in out[:-1])  # a fresh 2 s from 1.7 s
    p = Patience(2.0)
    out = play(p, ([Verdict.TOO_BRIGHT] * 4 + [Verdict.MOVING]) * FPS, PALE_ON_WHITE)
    assert any(r for _, r in out[2 * FPS:])  # a twitch now and then does not put the result off


def test_a_white_or_black_field_is_never_classified():
    p = Patience(1.0)
    assert not any(r for _, r in play(p, [Verdict.TOO_BRIGHT] * (5 * FPS), WHITE_FIELD))
    assert not any(r for _, r in play(Patience(1.0), [Verdict.TOO_DARK] * (5 * FPS), {"brightness": 4.0}))


def test_problems_the_person_can_fix_are_never_relaxed():
    for fixable in (Verdict.MOVING, Verdict.TOO_FAR, Verdict.ABSENT):
        assert all(v == fixable and not r for v, r in play(Patience(0.5), [fixable] * (3 * FPS), PALE_ON_WHITE))
