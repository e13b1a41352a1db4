"""What the contract allows but the register cannot hold is refused before any I/O, naming the field."""
from __future__ import annotations

import pytest

from services.listing.service_layer.dispatch import check_values
from services.listing.service_layer.handlers import InvalidMessage


def test_a_nul_character_in_a_text_is_refused_naming_the_field_not_the_value():
    with pytest.raises(InvalidMessage, match="profession") as refused:
        check_values({"profession": "läk\x00are"})
    assert "läk" not in str(refused.value)


def test_dates_outside_what_the_rules_compute_with_are_refused():
    with pytest.raises(InvalidMessage, match="effective_date"):
        check_values({"effective_date": "9999-12-31"})
    with pytest.raises(InvalidMessage, match="requested_at"):
        check_values({"requested_at": "0001-01-01T00:00:00Z"})


def test_ordinary_values_pass():
    check_values({"effective_date": "2026-03-01", "requested_at": "2026-03-01T09:00:00+01:00",
                  "fictive_lists": [{"name": "Vårdcentralen Norberg Dr X"}], "fte": 1.0})
