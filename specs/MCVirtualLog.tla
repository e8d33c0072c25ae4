---------------------------- MODULE MCVirtualLog ----------------------------
(* Model of VirtualLog small enough for TLC: 2 racing clients, 3 register  *)
(* versions (so up to 3 loglets), 2 entries per loglet.  Constants in      *)
(* MCVirtualLog.cfg.                                                        *)
EXTENDS VirtualLog, TLC

(* Clients are interchangeable: the symmetry is sound.                     *)
Symm == Permutations(Clients)
=============================================================================
