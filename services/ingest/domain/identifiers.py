"""Swedish identifiers as HL7 Sweden's base profiles name them, and the patient key made of them.

Identifier systems (the URI form of the Swedish base profiles and the OID form used in RIV-TA and
older FHIR profiles; both are accepted):

=================  ======================================================  ==========================
identifier         URI                                                     OID
=================  ======================================================  ==========================
personnummer       http://electronichealth.se/identifier/personnummer      urn:oid:1.2.752.129.2.1.3.1
samordningsnummer  http://electronichealth.se/identifier/samordningsnummer urn:oid:1.2.752.129.2.1.3.3
HSA-id             http://electronichealth.se/identifier/hsaid             urn:oid:1.2.752.29.4.19,
                                                                           urn:oid:1.2.752.129.2.1.4.1
=================  ======================================================  ==========================

A person id is turned into the pseudonymous patient key here, at the boundary
(:func:`flk.security.pseudonym.patient_key`); the number itself never leaves this module's caller's
stack frame: it is not stored, logged or echoed in an error (errors name the FHIRPath, not the value).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from flk.security.pseudonym import InvalidPersonId, parse_person_id, patient_key

PERSONNUMMER_SYSTEMS = frozenset({
    "http://electronichealth.se/identifier/personnummer",
    "urn:oid:1.2.752.129.2.1.3.1",
})
SAMORDNINGSNUMMER_SYSTEMS = frozenset({
    "http://electronichealth.se/identifier/samordningsnummer",
    "urn:oid:1.2.752.129.2.1.3.3",
})
PERSON_ID_SYSTEMS = PERSONNUMMER_SYSTEMS | SAMORDNINGSNUMMER_SYSTEMS
HSA_ID_SYSTEMS = frozenset({
    "http://electronichealth.se/identifier/hsaid",
    "urn:oid:1.2.752.29.4.19",  # the Swedish base profiles' HSA OID
    "urn:oid:1.2.752.129.2.1.4.1",  # the HSA OID of RIV-TA service contracts
})
#: the HSA-id shape of the event contracts (schemas/events/common.v1.json#/$defs/hsa_id)
HSA_ID = re.compile(r"^SE[0-9]{10}-[0-9A-Za-z]{1,31}$")


class IdentifierProblem(ValueError):
    """Why an identifier was refused; the message never contains the identifier's value."""


@dataclass(frozen=True)
class PatientKeyMaker:
    """Person id (in a given identifier system) -> pseudonymous patient key."""

    pseudonym_key: bytes

    def patient_key(self, system: str | None, value: str | None) -> str:
        if system not in PERSON_ID_SYSTEMS:
            raise IdentifierProblem("not a personnummer or samordningsnummer identifier system")
        if not value:
            raise IdentifierProblem("the identifier has no value")
        try:
            person = parse_person_id(value)
        except InvalidPersonId:
            kind = "samordningsnummer" if system in SAMORDNINGSNUMMER_SYSTEMS else "personnummer"
            raise IdentifierProblem(f"not a valid {kind}") from None
        expected = "samordningsnummer" if system in SAMORDNINGSNUMMER_SYSTEMS else "personnummer"
        if person.kind != expected:
            raise IdentifierProblem(f"a {person.kind} under the {expected} identifier system")
        return patient_key(person, self.pseudonym_key)


def hsa_id(system: str | None, value: str | None) -> str:
    """The HSA-id, checked against the contracts' shape."""
    if system not in HSA_ID_SYSTEMS:
        raise IdentifierProblem("not an HSA-id identifier system")
    if not value or not HSA_ID.match(value.strip()):
        raise IdentifierProblem("not a valid HSA-id (SE + 10 digits + '-' + 1–31 letters or digits)")
    return value.strip()
