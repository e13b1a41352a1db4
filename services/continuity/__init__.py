"""Continuity of care: COC, UPC, SECON, HHI, MMCI and KPC per patient, from visit events."""
