------------------------ MODULE MCMetaStorePaxosDeep ------------------------
(* The larger model of MetaStorePaxos, run by hand (make tlc runs the      *)
(* routine MCMetaStorePaxos and MCMetaStorePaxosVersions): 3 acceptors, 2   *)
(* proposers, 2 data values, 2 versions, 2 rounds per proposer, 1 write per *)
(* proposer, reads.  Constants in MCMetaStorePaxosDeep.cfg.                 *)
EXTENDS MetaStorePaxos, TLC

(* Acceptors are interchangeable (quorums are majorities by size) and data *)
(* values are only compared for equality: both symmetries are sound.       *)
(* Proposers are not symmetric: their ids order the ballots.               *)
Symm == Permutations(Acceptors) \cup Permutations(Values)
=============================================================================
