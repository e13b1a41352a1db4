"""Synthetic identities of the simulated region (tools.simulator.identities) and the vault's names."""
from __future__ import annotations

import base64
from datetime import date
from types import SimpleNamespace

import pytest
from cryptography.exceptions import InvalidTag
from stdnum.se import personnummer

from tools.mainjob.identities import IdentityEdge
from flk.security.pseudonym import PersonId
from flk.security.vault import IdentityVault
from tools.simulator.identities import (
    SyntheticIdentities, person_name, practitioner_name, published_test_personnummer,
)
from tests.support.builders import a_patient_key

pytestmark = pytest.mark.unit

VAULT = IdentityVault(base64.b64encode(bytes(range(32))).decode())


def test_the_shipped_list_is_skatteverkets_test_series_every_number_valid():
    numbers = published_test_personnummer()
    assert len(numbers) == 18_627 and len(set(numbers)) == len(numbers)
    assert all(personnummer.is_valid(n) for n in numbers)
    # the series' birth numbers by era (docs/simulator.md): mostly 980–989 for 1890–1919, 238–239 from 1990
    early = [n for n in numbers if n < "1920"]
    assert sum(n[8:10] == "98" for n in early) / len(early) > 0.99
    recent = [n for n in numbers if n >= "1990"]
    assert sum(n[8:11] in ("238", "239") for n in recent) / len(recent) > 0.99


def test_every_identity_is_a_number_of_the_series_given_once_and_the_same_key_gets_the_same():
    series = set(published_test_personnummer())
    ids = SyntheticIdentities()
    given = [ids.identity_for(a_patient_key(i), date(1931 + i % 60, 1 + i % 12, 1 + i % 28)) for i in range(3000)]
    numbers = [g.person.value for g in given]
    assert set(numbers) <= series and len(set(numbers)) == 3000
    assert ids.identity_for(a_patient_key(7), date(2001, 1, 1)) == given[7]
    assert ids.left == len(series) - 3000


def test_the_number_nearest_the_birth_date_is_taken_the_same_date_first():
    ids = SyntheticIdentities(["189001019802", "189001029819", "199401012399", "199401022380"])
    first = ids.identity_for("k1", date(1994, 1, 2))
    second = ids.identity_for("k2", date(1994, 1, 2))
    third = ids.identity_for("k3", date(1950, 1, 1))
    assert (first.person.value, second.person.value) == ("199401022380", "199401012399")
    assert third.person.value == "189001029819"  # the nearest left, whichever side
    assert ids.identity_for("k4", date(1890, 1, 1)).person.value == "189001019802"
    assert ids.identity_for("k5", date(1990, 1, 1)) is None  # the series is used up
    assert ids.left == 0


def test_the_name_follows_the_numbers_sex_digit_and_is_the_same_on_a_replay():
    ids, again = SyntheticIdentities(), SyntheticIdentities()
    for i in range(50):
        a = ids.identity_for(a_patient_key(i), date(1940, 5, 1))
        b = again.identity_for(a_patient_key(i), date(1940, 5, 1))
        assert a == b and len(a.name.split()) >= 2
    assert person_name("x", male=True) == person_name("x", male=True)
    assert practitioner_name("SE2321000016-D001") == practitioner_name("SE2321000016-D001")
    assert practitioner_name("SE2321000016-D001") != practitioner_name("SE2321000016-D002")


def test_an_identity_never_prints_its_number_or_name():
    identity = SyntheticIdentities().identity_for(a_patient_key(1), date(1990, 1, 1))
    assert identity.person.value not in repr(identity) and identity.name not in str(identity)


def test_the_register_edge_seals_registered_persons_and_keeps_a_protected_identity_marked():
    edge = IdentityEdge(VAULT, SyntheticIdentities())
    k1, k2 = a_patient_key(1), a_patient_key(2)
    items = [
        SimpleNamespace(event_type="person.registered.v1",
                        data={"patient_key": k1, "birth_date": "1932-04-02", "protected_identity": False}),
        SimpleNamespace(event_type="visit.recorded.v1", data={"patient_key": k1}),
        SimpleNamespace(event_type="person.registered.v1",
                        data={"patient_key": k2, "birth_date": "1950-07-30", "protected_identity": False}),
        SimpleNamespace(event_type="person.updated.v1", data={"patient_key": k2, "protected_identity": True,
                                                               "status": "folkbokford"}),
        SimpleNamespace(event_type="person.updated.v1", data={"patient_key": a_patient_key(3), "status": "deceased"}),
    ]
    rows = {key: (person, protected, name) for key, person, protected, name in edge.rows(items)}
    assert set(rows) == {k1, k2}
    assert rows[k1][1] is False and rows[k2][1] is True
    assert all(personnummer.is_valid(person.value) for person, _, _ in rows.values())


def test_a_name_is_sealed_for_its_patient_key_only():
    sealed = VAULT.seal_name(a_patient_key(1), "Karin Berg")
    assert b"Karin" not in sealed and VAULT.open_name(a_patient_key(1), sealed) == "Karin Berg"
    with pytest.raises(InvalidTag):
        VAULT.open_name(a_patient_key(2), sealed)
    with pytest.raises(InvalidTag):  # a name ciphertext does not open as the person id
        VAULT.open(a_patient_key(1), "personnummer", sealed)
    with pytest.raises(InvalidTag):
        VAULT.open_name(a_patient_key(1), VAULT.seal(a_patient_key(1), PersonId("personnummer", "189001019802")))
