--------------------------- MODULE MCNativeLoglet ---------------------------
(* Routine model of NativeLoglet (MCNativeLoglet.cfg): 3 LogServers, one   *)
(* client (seal / check_tail, aborts included), one position, no crashes.  *)
(* MCNativeLogletDeep is the larger model.                                 *)
EXTENDS NativeLoglet, TLC

(* LogServers are interchangeable (majorities by size; the model has no    *)
(* co-location), and so are clients: both symmetries are sound.            *)
Symm == Permutations(Servers) \cup Permutations(Clients)

(* No LogServer is down.  Sound for the safety invariants: a crash only    *)
(* disables a server's steps (up[s] is in enabling conditions, never in an *)
(* effect or an invariant, and state is durable), so every state reachable *)
(* with crashes is reachable without them, up to up itself.  Crashes       *)
(* matter for liveness, which MCNativeLogletLive checks without crashes.  *)
AllUp == \A s \in Servers : up[s]
=============================================================================
