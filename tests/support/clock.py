"""A clock tests move by hand: `clock.now += 61` instead of sleeping."""


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now
