-------------------------- MODULE MCMetaStorePaxos --------------------------
(* Routine model of MetaStorePaxos (MCMetaStorePaxos.cfg): contention in   *)
(* one instance.  3 acceptors, 2 proposers with one ballot each (<<1, 1>>  *)
(* < <<1, 2>>), one write_if each, no reads.  MCMetaStorePaxosVersions     *)
(* covers versions and reads, MCMetaStorePaxosDeep both at once.           *)
EXTENDS MetaStorePaxos, TLC

(* Acceptors are interchangeable (quorums are majorities by size) and data *)
(* values are only compared for equality: both symmetries are sound.       *)
(* Proposers are not symmetric: their ids order the ballots.               *)
Symm == Permutations(Acceptors) \cup Permutations(Values)

(* Reads are not started (a state where one begins is checked, not         *)
(* expanded): a read spends a round, and the model has one per proposer.   *)
NoReads == \A p \in Proposers : op[p].kind # "read"
=============================================================================
