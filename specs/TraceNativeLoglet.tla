-------------------------- MODULE TraceNativeLoglet --------------------------
(***************************************************************************)
(* Trace validation of NativeLoglet: TLC replays an implementation trace  *)
(* (NativeLoglet events of every loglet in it) and checks that, loglet by  *)
(* loglet, it is a behaviour of the spec.                                  *)
(*                                                                         *)
(* Input: the NDJSON trace prepared by `delos-ref trace validate`          *)
(* (delos_ref/tracecheck/tla.py): line 1 is a Config header with each      *)
(* loglet's LogServers (the sequencer's Activate; else those seen); then   *)
(* one line per sequencer / LogServer / client / nemesis event. A Stored   *)
(* is split by its sealed bit (Stored, StoredRefused), a CheckTail by its  *)
(* result (CheckTailUnsealed, CheckTailSealed); maps become parallel      *)
(* sequences (sealers / seal_tails, probed / probe_tails).                 *)
(*                                                                         *)
(* The variables are NativeLoglet's, one instance per loglet g.  The       *)
(* clients' control state (cpc, probes, ctTail, holders, cKnown) is not    *)
(* logged: what a client returns is checked against the servers' state at  *)
(* SealDone, CTWaitDone and RepairDone.  Two mappings are looser than the  *)
(* spec's actions (both sound, see delos_ref/tracecheck/loglet.py): a      *)
(* Stored may carry any tail its server acknowledged earlier, and a Store  *)
(* batch is several StoreAt steps.                                         *)
(*                                                                         *)
(*   event (role)                    action                                *)
(*   Activate (sequencer)            Activate (stuttering: the config)     *)
(*   Append (sequencer)              Assign (count times)                  *)
(*   Store (logserver)               StoreAt (hi - lo times)               *)
(*   StoreRefused (logserver)        StoreRefused                          *)
(*   Stored, sealed=false (sequencer) ReceiveStored                        *)
(*   Stored, sealed=true (sequencer) ReceiveRefused                        *)
(*   Commit (sequencer)              Commit (ReceiveStored's seqKnown')    *)
(*   SequencerSealed (sequencer)     SequencerSealed (ReceiveRefused's     *)
(*                                   seqSealed')                           *)
(*   crash / restart (nemesis)       Crash / Restart                       *)
(*   Seal (logserver)                SealServer                            *)
(*   Repair (logserver)              RepairServer                          *)
(*   Trim (logserver)                TrimHeld                              *)
(*   SealReturned (loglet client)    SealDone                              *)
(*   CheckTail none_sealed           CTWaitDone                            *)
(*   CheckTail all/some_sealed       RepairDone                            *)
(***************************************************************************)
EXTENDS Naturals, Sequences, FiniteSets, TLC, Json

CONSTANT TraceFile    \* the prepared NDJSON trace

Log == ndJsonDeserialize(TraceFile)
Cfg == Log[1]
Loglets == {Cfg.loglets[k] : k \in DOMAIN Cfg.loglets}
IndexOf(g) == CHOOSE k \in DOMAIN Cfg.loglets : Cfg.loglets[k] = g
ServersOf(g) == {Cfg.servers[IndexOf(g)][j] : j \in DOMAIN Cfg.servers[IndexOf(g)]}
AllServers == UNION {ServersOf(g) : g \in Loglets}
Maj(g) == (Cardinality(ServersOf(g)) \div 2) + 1
Max(S) == CHOOSE m \in S : \A n \in S : n <= m
ToSet(seq) == {seq[k] : k \in DOMAIN seq}

VARIABLES
    l,            \* the next line of the trace
    ltail,        \* ltail[g][s]
    sealed,       \* sealed[g][s]
    down,         \* the crashed nodes (up[s] = s \notin down)
    nextPos,      \* nextPos[g]
    seqTails,     \* seqTails[g][s]
    sealedBy,     \* sealedBy[g]
    seqSealed,    \* seqSealed[g]
    seqKnown,     \* seqKnown[g]
    ackedTail,    \* ackedTail[g][s]
    storedTails,  \* storedTails[g][s]: every local tail a Store of s reached
    sealedRes     \* sealedRes[g]: the tails of every sealed check_tail (ctRes)

vars == <<l, ltail, sealed, down, nextPos, seqTails, sealedBy, seqSealed, seqKnown,
          ackedTail, storedTails, sealedRes>>

Ev == Log[l]
G == Ev.loglet
S == Ev.node

CommittedOf(g, tails) ==
  Max({k \in {tails[s] : s \in ServersOf(g)} \cup {0} :
         Cardinality({s \in ServersOf(g) : tails[s] >= k}) >= Maj(g)})

Init ==
  /\ l = 2
  /\ ltail = [g \in Loglets |-> [s \in AllServers |-> 0]]
  /\ sealed = [g \in Loglets |-> [s \in AllServers |-> FALSE]]
  /\ down = {}
  /\ nextPos = [g \in Loglets |-> 0]
  /\ seqTails = [g \in Loglets |-> [s \in AllServers |-> 0]]
  /\ sealedBy = [g \in Loglets |-> {}]
  /\ seqSealed = [g \in Loglets |-> FALSE]
  /\ seqKnown = [g \in Loglets |-> 0]
  /\ ackedTail = [g \in Loglets |-> [s \in AllServers |-> 0]]
  /\ storedTails = [g \in Loglets |-> [s \in AllServers |-> {0}]]
  /\ sealedRes = [g \in Loglets |-> {}]

serverVars == <<ltail, sealed, ackedTail, storedTails>>
seqVars == <<nextPos, seqTails, sealedBy, seqSealed, seqKnown>>

---------------------------------------------------------------------------
(* Sequencer.                                                             *)

Activate ==
  /\ Ev.event = "Activate"
  /\ ToSet(Ev.logservers) = ServersOf(G)
  /\ UNCHANGED <<serverVars, down, seqVars, sealedRes>>

Assign ==
  /\ Ev.event = "Append"
  /\ ~ seqSealed[G]
  /\ Ev.first = nextPos[G]
  /\ nextPos' = [nextPos EXCEPT ![G] = @ + Ev.count]
  /\ UNCHANGED <<serverVars, down, seqTails, sealedBy, seqSealed, seqKnown, sealedRes>>

ReceiveStored ==
  /\ Ev.event = "Stored"
  /\ ~ seqSealed[G]
  /\ LET s == Ev.server
         t == Ev.local_tail
         tails == [seqTails[G] EXCEPT ![s] = IF t > @ THEN t ELSE @]
     IN  /\ t <= ackedTail[G][s]
         /\ t \in storedTails[G][s]
         /\ seqTails' = [seqTails EXCEPT ![G] = tails]
         /\ seqKnown' = [seqKnown EXCEPT ![G] = Max({@, CommittedOf(G, tails)})]
  /\ UNCHANGED <<serverVars, down, nextPos, sealedBy, seqSealed, sealedRes>>

ReceiveRefused ==
  /\ Ev.event = "StoredRefused"
  /\ ~ seqSealed[G]
  /\ sealed[G][Ev.server]
  /\ sealedBy' = [sealedBy EXCEPT ![G] = @ \cup {Ev.server}]
  /\ seqSealed' = [seqSealed EXCEPT ![G] = Cardinality(sealedBy[G] \cup {Ev.server}) >= Maj(G)]
  /\ UNCHANGED <<serverVars, down, nextPos, seqTails, seqKnown, sealedRes>>

(* The commit half of ReceiveStored: the logged known tail is seqKnown.   *)
Commit ==
  /\ Ev.event = "Commit"
  /\ Ev.known_tail = seqKnown[G]
  /\ UNCHANGED <<serverVars, down, seqVars, sealedRes>>

(* The seal-off half of ReceiveRefused.                                   *)
SequencerSealed ==
  /\ Ev.event = "SequencerSealed"
  /\ seqSealed[G]
  /\ Ev.known_tail = seqKnown[G] /\ Ev.next_pos = nextPos[G]
  /\ UNCHANGED <<serverVars, down, seqVars, sealedRes>>

---------------------------------------------------------------------------
(* LogServers.                                                            *)

StoreAt ==
  /\ Ev.event = "Store"
  /\ S \notin down
  /\ ~ sealed[G][S]
  /\ Ev.lo = ltail[G][S]
  /\ Ev.hi <= nextPos[G]
  /\ ltail' = [ltail EXCEPT ![G][S] = Ev.hi]
  /\ ackedTail' = [ackedTail EXCEPT ![G][S] = Ev.hi]
  /\ storedTails' = [storedTails EXCEPT ![G][S] = @ \cup {Ev.hi}]
  /\ UNCHANGED <<sealed, down, seqVars, sealedRes>>

StoreRefused ==
  /\ Ev.event = "StoreRefused"
  /\ S \notin down
  /\ sealed[G][S]
  /\ Ev.local_tail = ltail[G][S]
  /\ UNCHANGED <<serverVars, down, seqVars, sealedRes>>

Crash ==
  /\ Ev.event = "crash"
  /\ down' = down \cup {Ev.target}
  /\ UNCHANGED <<serverVars, seqVars, sealedRes>>

Restart ==
  /\ Ev.event = "restart"
  /\ down' = down \ {Ev.target}
  /\ UNCHANGED <<serverVars, seqVars, sealedRes>>

SealServer ==
  /\ Ev.event = "Seal"
  /\ S \notin down
  /\ Ev.local_tail = ltail[G][S]
  /\ sealed' = [sealed EXCEPT ![G][S] = TRUE]
  /\ UNCHANGED <<ltail, ackedTail, storedTails, down, seqVars, sealedRes>>

RepairServer ==
  /\ Ev.event = "Repair"
  /\ S \notin down
  /\ Ev.lo = ltail[G][S]
  /\ \E h \in ServersOf(G) \ {S} : ltail[G][h] >= Ev.hi
  /\ Ev.sealed /\ sealed[G][S]
  /\ ltail' = [ltail EXCEPT ![G][S] = Max({@, Ev.hi})]
  /\ UNCHANGED <<sealed, ackedTail, storedTails, down, seqVars, sealedRes>>

(* NativeLoglet's TrimHeld: a trim only below what a majority holds or    *)
(* the sequencer committed; the server then counts the trimmed positions  *)
(* as held (its logged local tail).  The spec's data and history of what   *)
(* was dropped need the entries, which the trace does not log: the guard   *)
(* is checked.                                                            *)
TrimHeld ==
  /\ Ev.event = "Trim"
  /\ S \notin down
  /\ Ev.trim_point <= Max({seqKnown[G], CommittedOf(G, ltail[G])})
  /\ IF Ev.local_tail > ltail[G][S]
       THEN /\ ltail' = [ltail EXCEPT ![G][S] = Ev.local_tail]
            /\ ackedTail' = IF sealed[G][S] THEN ackedTail ELSE [ackedTail EXCEPT ![G][S] = Ev.local_tail]
            /\ storedTails' = [storedTails EXCEPT ![G][S] = @ \cup {Ev.local_tail}]
       ELSE UNCHANGED <<ltail, ackedTail, storedTails>>
  /\ UNCHANGED <<sealed, down, seqVars, sealedRes>>

---------------------------------------------------------------------------
(* Clients: what seal and check_tail return.                              *)

SealDone ==
  /\ Ev.event = "SealReturned"
  /\ Len(Ev.sealers) >= Maj(G)
  /\ \A k \in DOMAIN Ev.sealers : /\ sealed[G][Ev.sealers[k]]
                                  /\ Ev.seal_tails[k] <= ltail[G][Ev.sealers[k]]
  /\ UNCHANGED <<serverVars, down, seqVars, sealedRes>>

CTWaitDone ==
  /\ Ev.event = "CheckTailUnsealed"
  /\ Ev.case = "none_sealed"
  /\ Ev.tail <= seqKnown[G]
  /\ UNCHANGED <<serverVars, down, seqVars, sealedRes>>

RepairDone ==
  /\ Ev.event = "CheckTailSealed"
  /\ Ev.case \in {"all_sealed", "some_sealed"}
  /\ Len(Ev.probed) >= Maj(G)
  /\ Ev.tail = Max(ToSet(Ev.probe_tails))
  /\ \A k \in DOMAIN Ev.probed : /\ sealed[G][Ev.probed[k]]
                                 /\ Ev.probe_tails[k] <= ltail[G][Ev.probed[k]]
  /\ Cardinality({s \in ServersOf(G) : ltail[G][s] >= Ev.tail}) >= Maj(G)
  /\ sealedRes' = [sealedRes EXCEPT ![G] = @ \cup {Ev.tail}]
  /\ UNCHANGED <<serverVars, down, seqVars>>

---------------------------------------------------------------------------

TraceNext ==
  /\ l <= Len(Log)
  /\ l' = l + 1
  /\ \/ Activate \/ Assign \/ StoreAt \/ StoreRefused \/ ReceiveStored \/ ReceiveRefused
     \/ Commit \/ SequencerSealed \/ Crash \/ Restart \/ SealServer \/ RepairServer
     \/ SealDone \/ CTWaitDone \/ RepairDone \/ TrimHeld

TraceDone ==
  /\ l > Len(Log)
  /\ UNCHANGED vars

Next == TraceNext \/ TraceDone

Spec == Init /\ [][Next]_vars

---------------------------------------------------------------------------
(* NativeLoglet's invariants, per loglet.                                 *)

NoAckLost ==
  \A g \in Loglets : Cardinality({s \in ServersOf(g) : ltail[g][s] >= seqKnown[g]}) >= Maj(g)
AckedTailDurable ==
  \A g \in Loglets : \A s \in ServersOf(g) : seqTails[g][s] <= ackedTail[g][s] /\ ackedTail[g][s] <= ltail[g][s]
KnownTailBound == \A g \in Loglets : seqKnown[g] <= nextPos[g]
SealedTailCoversAcked == \A g \in Loglets : \A t \in sealedRes[g] : seqKnown[g] <= t
RepairedOnMajority ==
  \A g \in Loglets : \A t \in sealedRes[g] : Cardinality({s \in ServersOf(g) : ltail[g][s] >= t}) >= Maj(g)
SequencerSealSound ==
  \A g \in Loglets : seqSealed[g] => Cardinality({s \in ServersOf(g) : sealed[g][s]}) >= Maj(g)
=============================================================================
