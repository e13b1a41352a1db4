"""Settings one service needs from another service's configuration, derived once, here.

The region's listing policy profile (FLK_LISTING_PROFILE, the listing service's own setting)
decides whether RUB high-need patients must have a fast vårdkontakt (only Kalmar's does, seed
004). The notifier raises fast-vårdkontakt care gaps for those bands but knows no listing rules:
it reads FLK_NOTIFIER_FAST_VARDKONTAKT_RUB_BANDS, which the `flk` command fills in from the
profile, so a region still sets its profile once. A value set by hand that disagrees with the
profile stops the command with a clear error instead of alerting under other rules.
"""
from __future__ import annotations

import json
from collections.abc import MutableMapping
from datetime import date, datetime
from zoneinfo import ZoneInfo

from services.listing.domain.policy import known_profile, profile_for

LISTING_PROFILE = "FLK_LISTING_PROFILE"
NOTIFIER_FVK_BANDS = "FLK_NOTIFIER_FAST_VARDKONTAKT_RUB_BANDS"


class ProfileMismatch(ValueError):
    pass


def fast_vardkontakt_rub_bands(listing_profile: str, on: date) -> frozenset[int]:
    """The RUB bands whose patients must have a fast vårdkontakt under the profile's version valid on ``on``."""
    profile = profile_for(known_profile(listing_profile), on)
    return frozenset(profile.rub_high_need_bands) if profile.rub_high_need_requires_fast_vardkontakt else frozenset()


def derive_notifier_environment(environ: MutableMapping[str, str], on: date | None = None) -> None:
    """Fill the notifier's fast-vårdkontakt bands from the listing profile, when one is named."""
    name = environ.get(LISTING_PROFILE)
    if not name:
        return
    day = on or datetime.now(ZoneInfo("Europe/Stockholm")).date()
    bands = fast_vardkontakt_rub_bands(name, day)
    given = environ.get(NOTIFIER_FVK_BANDS)
    if given is None:
        environ[NOTIFIER_FVK_BANDS] = json.dumps(sorted(bands))
        return
    try:
        given_bands = frozenset(json.loads(given))
    except (ValueError, TypeError) as exc:
        raise ProfileMismatch(f"{NOTIFIER_FVK_BANDS} is not a JSON list of RUB bands: {given!r}") from exc
    if given_bands != bands:
        raise ProfileMismatch(
            f"{NOTIFIER_FVK_BANDS}={given} disagrees with {LISTING_PROFILE}={name}, whose fast-vårdkontakt "
            f"bands are {sorted(bands)}: unset {NOTIFIER_FVK_BANDS} to take the profile's")
