"""The per-region settings of gap detection."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class CarePolicy:
    """The per-region settings of gap detection (part of a policy profile).

    ``grace_days`` (default 14): a gap opens only when this many days (exact 24 h periods)
    have passed since the listing started, giving the unit time to assign an FLK.
    ``rub_threshold`` (default 4): RUB 4 and 5 are high care need. (Whether a declined FLK, F7,
    stops alerts is not a setting here: the region's listing profile decides it, and the decline
    event says so: one setting, not two that could disagree.)
    ``include_sabo`` (default True): SÄBO residents qualify whatever their RUB (G3).
    ``include_sabo_main_care_elsewhere`` (default False): whether a SÄBO resident recorded as
    getting their main health care elsewhere (not "i boendet", seed 001) qualifies by SÄBO too.
    By default they do not: G3 does not count them, so an alert would chase a figure that does not
    include them (they still qualify by RUB). A resident whose qualifier is not recorded qualifies,
    as G3 counts them.
    """

    grace_days: int = 14
    rub_threshold: int = 4
    include_sabo: bool = True
    include_sabo_main_care_elsewhere: bool = False
    fast_vardkontakt_rub_bands: frozenset[int] = frozenset()
    """The RUB bands whose listed patients must have a fast vårdkontakt (fast-vårdkontakt gaps);
    empty (the default): the region does not require one. Not a notifier setting of its own: the
    service takes it from the region's listing policy profile (``rub_high_need_bands`` when
    ``rub_high_need_requires_fast_vardkontakt``), see ``NotifierSettings.care_policy``."""

    def __post_init__(self) -> None:
        if self.grace_days < 0:
            raise ValueError("grace_days must be >= 0")
        if not 0 <= self.rub_threshold <= 5:
            raise ValueError("rub_threshold must be a RUB band 0..5")
        object.__setattr__(self, "fast_vardkontakt_rub_bands", frozenset(self.fast_vardkontakt_rub_bands))
        if any(not 0 <= b <= 5 for b in self.fast_vardkontakt_rub_bands):
            raise ValueError("fast_vardkontakt_rub_bands must be RUB bands 0..5")

    @property
    def requires_fast_vardkontakt(self) -> bool:
        return bool(self.fast_vardkontakt_rub_bands)

    @property
    def grace(self) -> timedelta:
        return timedelta(days=self.grace_days)
