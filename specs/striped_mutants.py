"""Mutants of specs/StripedLoglet.tla: each breaks one rule, and TLC must catch it.

Each mutant is a textual replacement in the spec (``old`` occurs exactly once), checked with
the model ``MCStripedLoglet.cfg``; ``violates`` names the invariant TLC reports. Each mirrors
the bug switch of the same name in ``delos_ref/loglet/striped.py`` (the simulator's
``striped`` workload catches those). Run them with ``tests/test_striped_spec.py``.
"""

from __future__ import annotations

SPEC = "StripedLoglet.tla"
MODEL = "MCStripedLoglet"

STRIPED_MUTANTS = [
    {
        "name": "striped_acks_over_hole",
        "spec": SPEC,
        "model": MODEL,
        "why": "rule 2 dropped: an append is acknowledged as soon as its own stripe committed it",
        "old": "AckGuard(c) == \\A j \\in Stripes : committed[j] >= Need(j, pos[c])",
        "new": "AckGuard(c) == TRUE",
        "violates": "NoAckAboveHole",
    },
    {
        "name": "striped_partial_seal",
        "spec": SPEC,
        "model": MODEL,
        "why": "rule 5 weakened: seal() returns once one stripe is sealed",
        "old": "SealDone == \\A k \\in Stripes : sealed[k]",
        "new": "SealDone == \\E k \\in Stripes : sealed[k]",
        "violates": "SealGuarantee",
    },
    {
        "name": "striped_check_tail_half_sealed",
        "spec": SPEC,
        "model": MODEL,
        "why": "rule 4 dropped: check_tail reports the sealed tail once one stripe is sealed",
        "old": "CheckTailSealedGuard == \\A k \\in Stripes : sealed[k]",
        "new": "CheckTailSealedGuard == \\E k \\in Stripes : sealed[k]",
        "violates": "SealedTailCoversAcked",
    },
]
