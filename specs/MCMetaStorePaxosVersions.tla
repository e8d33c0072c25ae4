---------------------- MODULE MCMetaStorePaxosVersions ----------------------
(* Routine model of MetaStorePaxos (MCMetaStorePaxosVersions.cfg): the     *)
(* versioned register.  One proposer, 3 acceptors, 2 versions, 2 rounds,   *)
(* 2 write_if calls (any expected version) and reads: gapless versions,    *)
(* conditional writes, reads, retries after Abandon.  No contention: that  *)
(* is MCMetaStorePaxos (one instance) and MCMetaStorePaxosDeep.            *)
EXTENDS MetaStorePaxos, TLC

(* Acceptors are interchangeable: the symmetry is sound.                   *)
Symm == Permutations(Acceptors)
=============================================================================
