--------------------------- MODULE MCNativeLoglet ---------------------------
(* Model of NativeLoglet small enough for TLC: 3 LogServers, 2 clients     *)
(* racing seal / check_tail, 2 positions.  Constants in MCNativeLoglet.cfg.*)
EXTENDS NativeLoglet, TLC

(* LogServers are interchangeable (majorities by size; the model has no    *)
(* co-location), and so are clients: both symmetries are sound.            *)
Symm == Permutations(Servers) \cup Permutations(Clients)
=============================================================================
