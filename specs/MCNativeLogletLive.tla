------------------------- MODULE MCNativeLogletLive -------------------------
(* Liveness model of NativeLoglet: 3 LogServers, 1 client, 1 position;    *)
(* LiveSpec (no crashes, no aborts, weak fairness) must satisfy            *)
(* SealedCheckTailReturns.  No SYMMETRY (unsound for liveness in TLC).     *)
EXTENDS NativeLoglet, TLC
=============================================================================
