"""Mutants of the specs: each breaks one protocol rule the specs claim to model, and TLC must
catch it (an invariant violation on the routine model). ``make tlc-mutants`` runs them all
(``specs/tools/run_tlc.py``); ``delos_ref.tlc`` applies each to a temporary copy of the specs.

A mutant whose replaced text is no longer in its spec fails loudly (and
``tests/test_tlc.py`` checks that every mutant still applies), so none silently rots into a
copy of the unchanged spec.
"""

import runpy
from pathlib import Path

from delos_ref.tlc import Mutant

PAXOS, LOGLET, VLOG = "MetaStorePaxos.tla", "NativeLoglet.tla", "VirtualLog.tla"

MUTANTS = [
    # ------------------------------------------------------------------ MetaStorePaxos
    Mutant(
        name="accept_below_promise",
        spec=PAXOS,
        model="MCMetaStorePaxos",
        rule="an acceptor accepts only at or above its promise (Phase2b)",
        edits=(('/\\ m.type = "2a"\n    /\\ LessEq(promised[a][m.inst], m.bal)', '/\\ m.type = "2a"'),),
        expect=("OneValuePerInstance", "WriteAckOnlyIfChosen", "KnownIsChosen"),
    ),
    Mutant(
        name="promise_below_promise",
        spec=PAXOS,
        model="MCMetaStorePaxos",
        rule="an acceptor promises only at or above its promise (Phase1b)",
        edits=(('/\\ m.type = "1a"\n    /\\ LessEq(promised[a][m.inst], m.bal)', '/\\ m.type = "1a"'),),
        expect=("AcceptedBelowPromise",),
    ),
    Mutant(
        name="ignore_accepted",
        spec=PAXOS,
        model="MCMetaStorePaxos",
        rule="phase 2a proposes the value of the highest accepted ballot among the promises (P2c)",
        edits=(("v == IF withVal = {} THEN pval[p] ELSE top.mval", "v == pval[p]"),),
        expect=("OneValuePerInstance", "WriteAckOnlyIfChosen", "KnownIsChosen"),
    ),
    Mutant(
        name="write_if_ignores_winner",
        spec=PAXOS,
        model="MCMetaStorePaxos",
        rule="write_if reports written only if its own update won version expected+1",
        edits=(("IF known[p] = e + 1 /\\ knownVal[p] = u", "IF known[p] = e + 1"),),
        expect=("WriteAckOnlyIfChosen",),
    ),
    Mutant(
        name="write_if_skips_version",
        spec=PAXOS,
        model="MCMetaStorePaxosVersions",
        rule="write_if proposes in expected+1 only once version expected is chosen (gapless versions)",
        edits=(("/\\ e > known[p]\n            /\\ StartAttempt(p, known[p] + 1, None)", "/\\ e > known[p]\n            /\\ StartAttempt(p, e + 1, u)"),),
        expect=("GaplessVersions",),
    ),
    # -------------------------------------------------------------------- NativeLoglet
    Mutant(
        name="seal_returns_after_one",
        spec=LOGLET,
        model="MCNativeLoglet",
        rule="seal() returns once a majority of LogServers set the seal bit",
        edits=(('/\\ cpc[c] = "seal"\n  /\\ Cardinality(Got(c)) >= Maj', '/\\ cpc[c] = "seal"\n  /\\ Cardinality(Got(c)) >= 1'),),
        expect=("SealReturnedOnMajority", "SealedAfterSeal"),
    ),
    Mutant(
        name="store_after_seal",
        spec=LOGLET,
        model="MCNativeLoglet",
        rule="a sealed LogServer refuses stores",
        edits=(("/\\ up[s]\n  /\\ ~ sealed[s]\n  /\\ ltail[s] < nextPos", "/\\ up[s]\n  /\\ ltail[s] < nextPos"),),
        expect=("SealedTailCoversAcked", "NoAckAfterSeal"),
    ),
    Mutant(
        name="ack_before_majority",
        spec=LOGLET,
        model="MCNativeLoglet",
        rule="the sequencer acknowledges a position once a majority stored it",
        edits=(("Cardinality({s \\in Servers : tails[s] >= k}) >= Maj", "Cardinality({s \\in Servers : tails[s] >= k}) >= 1"),),
        expect=("NoAckLost",),
    ),
    Mutant(
        name="sequencer_seals_on_one_refusal",
        spec=LOGLET,
        model="MCNativeLoglet",
        rule="the sequencer seals off once a majority refused",
        edits=(("seqSealed' = (Cardinality(sealedBy \\cup {s}) >= Maj)", "seqSealed' = (Cardinality(sealedBy \\cup {s}) >= 1)"),),
        expect=("SequencerSealSound",),
    ),
    Mutant(
        name="check_tail_hides_seal",
        spec=LOGLET,
        model="MCNativeLoglet",
        rule="check_tail reports the seal bit (all_sealed / some_sealed return sealed)",
        edits=(("tail |-> ctTail[c], sealed |-> TRUE,", "tail |-> ctTail[c], sealed |-> FALSE,"),),
        expect=("SealedAfterSeal",),
    ),
    Mutant(
        name="check_tail_without_repair",
        spec=LOGLET,
        model="MCNativeLoglet",
        rule="a sealed check_tail returns once its tail is on a majority (repair)",
        edits=(("/\\ Cardinality(holders[c]) >= Maj", "/\\ Cardinality(holders[c]) >= 1"),),
        expect=("RepairedOnMajority",),
    ),
    Mutant(
        name="some_sealed_as_all_sealed",
        spec=LOGLET,
        model="MCNativeLoglet",
        rule="some_sealed seals a majority before computing the tail (every probe is sealing: BookKeeper)",
        edits=(("\\/ /\\ sl = Got(c)                          \\* all_sealed", "\\/ /\\ sl # {}                             \\* all_sealed"),),
        expect=("SealedTailCoversAcked", "NoAckAfterSeal"),
    ),
    Mutant(
        name="none_sealed_without_wait",
        spec=LOGLET,
        model="MCNativeLoglet",
        rule="none_sealed returns once the known tail reaches the probed tail (it is committed)",
        edits=(("/\\ cpc[c] = \"wait\"\n  /\\ cKnown[c] >= ctTail[c]\n  /\\ Return(c)", "/\\ cpc[c] = \"wait\"\n  /\\ Return(c)"),),
        expect=("UnsealedTailCommitted",),
    ),
    Mutant(
        name="trim_past_known_tail",
        spec=LOGLET,
        model="MCNativeLoglet",
        rule="prefix_trim trims only below the committed tail (the client's clamp to its known tail); the LogServer's own clamp, its local tail, is not enough",
        edits=(("/\\ t <= Max({seqKnown, CommittedOf(ltail)})", "/\\ t <= Max({seqKnown, ltail[s]})"),),
        expect=("TrimsDropOnlyCommitted", "AckedEntryKept"),
    ),
    # ---------------------------------------------------------------------- VirtualLog
    Mutant(
        name="extend_without_seal",
        spec=VLOG,
        model="MCVirtualLog",
        rule="reconfig_extend seals the active loglet before reading its tail and closing its segment",
        edits=(
            ("/\\ lSealed' = [lSealed EXCEPT ![ActiveOf(cache[c].chain).loglet] = TRUE]\n  /\\ rpc' = [rpc EXCEPT ![c] = \"sealed\"]",
             "/\\ rpc' = [rpc EXCEPT ![c] = \"sealed\"]\n  /\\ UNCHANGED lSealed"),
            ("IN  /\\ lSealed[l]\n         /\\ rTail'", "IN  /\\ rTail'"),
        ),
        expect=("ClosedSegmentsSealed", "AckedInPlace", "AppendsToActive"),
    ),
    Mutant(
        name="append_to_sealed",
        spec=VLOG,
        model="MCVirtualLog",
        rule="an append is acknowledged only by an unsealed loglet",
        edits=(("/\\ ~ lSealed[l]\n      /\\ lTail[l] < MaxPos", "/\\ lTail[l] < MaxPos"),),
        expect=("AckedInPlace", "AppendsToActive", "UniquePositions"),
    ),
    Mutant(
        name="write_without_version",
        spec=VLOG,
        model="MCVirtualLog",
        rule="a chain is installed only as the successor of the version it was built from (conditional write)",
        edits=(("IF Len(hist) = expected", "IF Len(hist) < MaxVersion"),),
        expect=("AckedInPlace", "SegmentsContiguous", "ClosedSegmentsSealed", "AppendsToActive", "OneChainPerVersion", "UniquePositions"),
    ),
    Mutant(
        name="modify_changes_range",
        spec=VLOG,
        model="MCVirtualLog",
        rule="reconfig_modify changes a sealed segment's config, never its [start, stop)",
        edits=(('[cache[c].chain EXCEPT ![i].cfg = "cold"]', '[cache[c].chain EXCEPT ![i].cfg = "cold", ![i].stop = @ + 1]'),),
        expect=("SegmentsContiguous", "AckedInPlace"),
    ),
    Mutant(
        name="truncate_active_segment",
        spec=VLOG,
        model="MCVirtualLog",
        rule="reconfig_truncate drops only closed (sealed) segments, never the active one",
        edits=(("/\\ Len(cache[c].chain) >= 2", "/\\ Len(cache[c].chain) >= 1"),),
        expect=("TypeOK", "SegmentsContiguous"),
    ),
]

# The exactly-once rule (issue 17 item 1), on the VirtualLog spec.
MUTANTS.append(
    Mutant(
        name="reappend_unknown",
        spec=VLOG,
        model="MCVirtualLog",
        rule="an append whose outcome is unknown is looked for in its sealed segment before it is sent again",
        edits=(("IN  IF hits = {}\n", "IN  IF TRUE\n"),),
        expect=("NoDuplicates", "AckedOnce"),
    )
)

# Migration to cold storage and skip (issue 19), on the VirtualLog spec with Migrate = TRUE.
# The first three mirror the simulator's bug switches of the same names.
MUTANTS += [
    Mutant(
        name="migrate_unsealed",
        spec=VLOG,
        model="MCVirtualLogMigrate",
        rule="migrate copies and moves only a closed segment, whose loglet is sealed and range final",
        edits=(
            ('/\\ Migratable(cache[c].chain, i)\n      /\\ seg.cfg = "hot"', '/\\ i <= Len(cache[c].chain)\n      /\\ seg.cfg = "hot"'),
            ('/\\ Migratable(cache[c].chain, i)\n  /\\ cache[c].chain[i].cfg = "hot"', '/\\ i <= Len(cache[c].chain)\n  /\\ cache[c].chain[i].cfg = "hot"'),
        ),
        expect=("ColdCopiesVerified", "AckedOnce", "ReadsAgree"),
    ),
    Mutant(
        name="migrate_before_verified",
        spec=VLOG,
        model="MCVirtualLogMigrate",
        rule="reconfig_modify installs a cold copy only once every entry was read back and compared (verified)",
        edits=(('/\\ cold[seg.loglet].st = "verified"', '/\\ cold[seg.loglet].st # "none"'),),
        expect=("ColdCopiesVerified", "AckedOnce", "ReadsAgree"),
    ),
    Mutant(
        name="cold_read_unchecked",
        spec=VLOG,
        model="MCVirtualLogMigrate",
        rule="a read of a cold file whose checksum fails is an error, never the file's bytes",
        edits=(("ColdLog(l) == IF cold[l].ok THEN cold[l].ids ELSE <<>>", "ColdLog(l) == IF cold[l].ok THEN cold[l].ids ELSE [k \\in DOMAIN cold[l].ids |-> Garbage]"),),
        expect=("ReadsAgree", "AckedOnce"),
    ),
    Mutant(
        name="migrate_modify_changes_range",
        spec=VLOG,
        model="MCVirtualLogMigrate",
        rule="reconfig_modify moves a sealed segment to its cold copy, never changing its [start, stop)",
        edits=(('[cache[c].chain EXCEPT ![i].cfg = "cold"]', '[cache[c].chain EXCEPT ![i].cfg = "cold", ![i].stop = @ + 1]'),),
        expect=("ModifyKeepsRange", "SegmentsContiguous", "ColdCopiesVerified"),
    ),
    Mutant(
        name="skip_unsealed",
        spec=VLOG,
        model="MCVirtualLogMigrate",
        rule="skip marks a position of a closed segment only (its entry is final)",
        edits=(("/\\ Migratable(cache[c].chain, i)\n      /\\ k < CopyStop(seg) - seg.start", "/\\ i <= Len(cache[c].chain)\n      /\\ k < CopyStop(seg) - seg.start"),),
        expect=("SkipSeenByAll",),
    ),
]

# ------------------------------------------------------------------ StripedLoglet
# One per StripedLoglet bug switch; their table lives beside the striped spec
# (specs/striped_mutants.py, also run by tests/test_striped_spec.py).
_striped = runpy.run_path(str(Path(__file__).with_name("striped_mutants.py")))["STRIPED_MUTANTS"]
MUTANTS += [
    Mutant(name=m["name"], spec=m["spec"], model=m["model"], rule=m["why"], edits=((m["old"], m["new"]),), expect=(m["violates"],))
    for m in _striped
]
