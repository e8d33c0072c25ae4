------------------------ MODULE MCMetaStorePaxosLive ------------------------
(* Liveness model of MetaStorePaxos: one proposer (a lone proposer), 3      *)
(* acceptors, one write; LiveSpec (no timeouts, weak fairness) must satisfy *)
(* WriteReturns.  No SYMMETRY: TLC's liveness checking is unsound with it.  *)
EXTENDS MetaStorePaxos, TLC
=============================================================================
