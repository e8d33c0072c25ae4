------------------------- MODULE MCNativeLogletDeep -------------------------
(* The larger model of NativeLoglet (MCNativeLogletDeep.cfg): 3 LogServers, *)
(* 2 clients racing seal / check_tail, 2 positions, LogServer crashes.  Run *)
(* by hand (specs/README.md says how long it takes); make tlc runs the     *)
(* routine MCNativeLoglet instead.                                         *)
EXTENDS NativeLoglet, TLC

(* LogServers and clients are interchangeable: both symmetries are sound.  *)
Symm == Permutations(Servers) \cup Permutations(Clients)
=============================================================================
