--------------------------- MODULE MCStripedLoglet ---------------------------
(* Model of StripedLoglet small enough for TLC: 2 stripes, 2 clients with  *)
(* 2 appends each, 2 positions per stripe (fillers included).  Constants   *)
(* in MCStripedLoglet.cfg.                                                  *)
EXTENDS StripedLoglet, TLC

(* Clients are interchangeable: the symmetry is sound.                     *)
Symm == Permutations(Clients)
=============================================================================
