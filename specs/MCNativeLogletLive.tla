------------------------- MODULE MCNativeLogletLive -------------------------
(* Liveness model of NativeLoglet: 3 LogServers, 2 clients, 2 positions;   *)
(* LiveSpec (no crashes, no aborts, weak fairness) must satisfy            *)
(* SealedCheckTailReturns.  No SYMMETRY (unsound for liveness in TLC).     *)
EXTENDS NativeLoglet, TLC
=============================================================================
