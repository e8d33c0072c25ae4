---------------------------- MODULE NativeLoglet ----------------------------
(***************************************************************************)
(* One NativeLoglet instance (docs/design.md sect. 5; OSDI'20 4.2.1): an   *)
(* odd number of LogServers, each with a durable gapless log and a seal    *)
(* bit, one sequencer, and clients that seal and check the tail (with      *)
(* repair).                                                                *)
(*                                                                         *)
(* Mapping to the implementation (delos_ref/loglet/native, trace events of *)
(* delos_ref/loglet/__init__.py):                                          *)
(*                                                                         *)
(*  spec                 implementation                       trace event  *)
(*  -------------------  -----------------------------------  ------------ *)
(*  ltail[s]             logserver LogletState.local_tail     local_tail   *)
(*  sealed[s]            logserver LogletState.sealed         Seal         *)
(*  up[s]                the LogServer process is running     (none)       *)
(*  nextPos              sequencer _Loglet.next_pos           next_pos     *)
(*  seqTails[s]          sequencer _Loglet.tails[s]           Stored       *)
(*  sealedBy             sequencer _Loglet.sealed_by          Stored.sealed*)
(*  seqSealed            sequencer _Loglet.sealed             SequencerSealed*)
(*  seqKnown             sequencer _Loglet.known_tail         Commit.known_tail*)
(*  ackedTail[s]         the local_tail of s's latest         Store.local_tail*)
(*                       unsealed Stored reply (a history var)              *)
(*  cKnown[c]            client NativeLoglet._known_tail      (none)       *)
(*  cpc, probes, ctTail, client.seal / check_tail / _repair   CheckTail.*  *)
(*  holders, ctRes                                                         *)
(*  sealDone             some seal() has returned (history)   SealReturned *)
(*  ctAfterSeal[c]       c's check_tail began after a seal()  (none)       *)
(*                       returned (history)                                *)
(*  data[s]              the entries s's LMDB holds (ltail     (none)       *)
(*                       counts trimmed ones as held; data not)            *)
(*  dropped, safe        positions some trim dropped / those  (none)       *)
(*                       on a majority's data when first dropped (history) *)
(*                                                                         *)
(*  Assign               sequencer.on_append                  Append       *)
(*  StoreAt              logserver.on_store                   Store        *)
(*  StoreRefused         logserver.on_store (sealed)          StoreRefused *)
(*  ReceiveStored        sequencer.on_stored / _advance       Stored, Commit*)
(*  ReceiveRefused       sequencer.on_stored / _seal_off      Stored,      *)
(*                                                            SequencerSealed*)
(*  LearnKnownTail       client._await_known_tail query       (none)       *)
(*  SealServer           logserver.on_seal                    Seal         *)
(*  SealDone             client.seal returns                  SealReturned *)
(*  ProbeServer          logserver.on_tail_query              (none)       *)
(*  CTDecide             client._check_tail_round             CheckTail.case*)
(*  CTSealDone           some_sealed: client._seal_quorum     (none)       *)
(*  CTWaitDone           none_sealed return                   CheckTail    *)
(*  RepairServer         logserver.on_repair / client._repair_one  Repair  *)
(*  RepairDone           all/some_sealed return               CheckTail    *)
(*  Crash, Restart       LogServer process crash and restart  (none)       *)
(*  TrimHeld             logserver.on_trim (the source of a   Trim         *)
(*                       migrated segment drops it, migrate.py rule 4)     *)
(*                                                                         *)
(* Abstractions.  An entry is identified by its position: only the         *)
(* sequencer assigns positions, a retry resends the same entry to the same *)
(* position, and repair copies the holder's entry, so a server's log is    *)
(* its gapless prefix [0, ltail[s]) and "moved" entries cannot be          *)
(* expressed here (entry contents are for trace validation).  Entries a    *)
(* LogServer holds ahead of its prefix are volatile and not modelled.      *)
(* Every write is synced before any answer, so a LogServer crash loses     *)
(* nothing in ltail/sealed; it only stops the server until it restarts.    *)
(* Replies to clients are modelled as the server's state when it answered. *)
(* Stored replies are cumulative and monotone, so instead of a message set *)
(* the sequencer may at any time take a server's latest unsealed Stored    *)
(* tail (ackedTail[s]), or learn that a sealed server refuses; older       *)
(* replies arriving late change nothing (the sequencer keeps the maximum). *)
(* The LogServers' own known_tail, reads and sequencer crashes are not     *)
(* modelled (a dead sequencer only blocks appends).  A trim is (TrimHeld): *)
(* it drops a prefix of a server's entries, which the server then counts   *)
(* as held; data[s] is what it really holds, so that the spec can say      *)
(* which entries a trim may drop.                                          *)
(***************************************************************************)
EXTENDS Naturals, FiniteSets, TLC

CONSTANTS
    Servers,      \* the LogServers of this loglet
    Clients,      \* clients calling seal / check_tail
    MaxPos        \* the sequencer assigns positions 0..MaxPos-1

ASSUME MaxPos \in Nat

VARIABLES
    ltail, sealed, up,                          \* LogServers
    nextPos, seqTails, sealedBy, seqSealed, seqKnown,  \* sequencer
    ackedTail,                                  \* Stored replies (history)
    cKnown, cpc, probes, ctTail, holders, ctRes, \* clients
    sealDone, ctAfterSeal,                      \* history: what seal() promised
    data, dropped, safe                         \* entries held; history of trims

serverVars == <<ltail, sealed, up, data>>
seqVars == <<nextPos, seqTails, sealedBy, seqSealed, seqKnown>>
clientVars == <<cKnown, cpc, probes, ctTail, holders, ctRes, sealDone, ctAfterSeal>>
trimVars == <<dropped, safe>>
vars == <<ltail, sealed, up, nextPos, seqTails, sealedBy, seqSealed, seqKnown,
          ackedTail, cKnown, cpc, probes, ctTail, holders, ctRes, sealDone, ctAfterSeal,
          data, dropped, safe>>

Pos == 0..MaxPos
Positions == 0..(MaxPos - 1)   \* the positions themselves (Pos: tails, 0..MaxPos)
Maj == (Cardinality(Servers) \div 2) + 1
Majorities == {Q \in SUBSET Servers : Cardinality(Q) >= Maj}
Max(S) == CHOOSE m \in S : \A n \in S : n <= m

NoProbe == [got |-> FALSE, tail |-> 0, sealed |-> FALSE]
Probes == [got : BOOLEAN, tail : Pos, sealed : BOOLEAN]
(* afterSeal: the check_tail began after some seal() had returned.        *)
NoResult == [done |-> FALSE, tail |-> 0, sealed |-> FALSE, afterSeal |-> FALSE]
Results == [done : BOOLEAN, tail : Pos, sealed : BOOLEAN, afterSeal : BOOLEAN]

TypeOK ==
  /\ ltail \in [Servers -> Pos]
  /\ sealed \in [Servers -> BOOLEAN]
  /\ up \in [Servers -> BOOLEAN]
  /\ nextPos \in Pos
  /\ seqTails \in [Servers -> Pos]
  /\ sealedBy \subseteq Servers
  /\ seqSealed \in BOOLEAN
  /\ seqKnown \in Pos
  /\ ackedTail \in [Servers -> Pos]
  /\ cKnown \in [Clients -> Pos]
  /\ cpc \in [Clients -> {"idle", "seal", "ct", "ctseal", "wait", "repair"}]
  /\ probes \in [Clients -> [Servers -> Probes]]
  /\ ctTail \in [Clients -> Pos]
  /\ holders \in [Clients -> SUBSET Servers]
  /\ ctRes \in [Clients -> Results]
  /\ sealDone \in BOOLEAN
  /\ ctAfterSeal \in [Clients -> BOOLEAN]
  /\ data \in [Servers -> SUBSET Positions]
  /\ dropped \subseteq Positions
  /\ safe \subseteq Positions

Init ==
  /\ ltail = [s \in Servers |-> 0]
  /\ sealed = [s \in Servers |-> FALSE]
  /\ up = [s \in Servers |-> TRUE]
  /\ nextPos = 0
  /\ seqTails = [s \in Servers |-> 0]
  /\ sealedBy = {}
  /\ seqSealed = FALSE
  /\ seqKnown = 0
  /\ ackedTail = [s \in Servers |-> 0]
  /\ cKnown = [c \in Clients |-> 0]
  /\ cpc = [c \in Clients |-> "idle"]
  /\ probes = [c \in Clients |-> [s \in Servers |-> NoProbe]]
  /\ ctTail = [c \in Clients |-> 0]
  /\ holders = [c \in Clients |-> {}]
  /\ ctRes = [c \in Clients |-> NoResult]
  /\ sealDone = FALSE
  /\ ctAfterSeal = [c \in Clients |-> FALSE]
  /\ data = [s \in Servers |-> {}]
  /\ dropped = {}
  /\ safe = {}

---------------------------------------------------------------------------
(* Sequencer and LogServers: the append path.                             *)

(* The sequencer assigns the next position and sends it to all servers.   *)
Assign ==
  /\ ~ seqSealed
  /\ nextPos < MaxPos
  /\ nextPos' = nextPos + 1
  /\ UNCHANGED <<serverVars, seqTails, sealedBy, seqSealed, seqKnown, ackedTail, clientVars, trimVars>>

(* A LogServer extends its prefix by the next assigned position, syncs,   *)
(* and acknowledges with its local tail.                                  *)
StoreAt(s) ==
  /\ up[s]
  /\ ~ sealed[s]
  /\ ltail[s] < nextPos
  /\ ltail' = [ltail EXCEPT ![s] = @ + 1]
  /\ data' = [data EXCEPT ![s] = @ \cup {ltail[s]}]
  /\ ackedTail' = [ackedTail EXCEPT ![s] = ltail[s] + 1]
  /\ UNCHANGED <<sealed, up, seqVars, clientVars, trimVars>>

(* A sealed LogServer refuses, telling the sequencer it is sealed.        *)
StoreRefused(s) ==
  /\ up[s]
  /\ sealed[s]
  /\ ltail[s] < nextPos
  /\ UNCHANGED vars

(* The global tail from the sequencer's view: the majority-th greatest   *)
(* local tail (servers are gapless, so every earlier position is on a    *)
(* majority too).                                                         *)
CommittedOf(tails) == Max({k \in Pos : Cardinality({s \in Servers : tails[s] >= k}) >= Maj})

ReceiveStored(s) ==
  /\ ~ seqSealed
  /\ seqTails[s] < ackedTail[s]
  /\ seqTails' = [seqTails EXCEPT ![s] = ackedTail[s]]
  /\ seqKnown' = Max({seqKnown, CommittedOf([seqTails EXCEPT ![s] = ackedTail[s]])})
  /\ UNCHANGED <<serverVars, nextPos, sealedBy, seqSealed, ackedTail, clientVars, trimVars>>

(* A sealed server's refusal: once a majority refused, the sequencer      *)
(* seals off and fails its uncommitted appends.                           *)
ReceiveRefused(s) ==
  /\ ~ seqSealed
  /\ sealed[s]
  /\ s \notin sealedBy
  /\ sealedBy' = sealedBy \cup {s}
  /\ seqSealed' = (Cardinality(sealedBy \cup {s}) >= Maj)
  /\ UNCHANGED <<serverVars, nextPos, seqTails, seqKnown, ackedTail, clientVars, trimVars>>

---------------------------------------------------------------------------
(* Crashes: nothing synced is lost.                                       *)

Crash(s) ==
  /\ up[s]
  /\ up' = [up EXCEPT ![s] = FALSE]
  /\ UNCHANGED <<ltail, sealed, data, seqVars, ackedTail, clientVars, trimVars>>

Restart(s) ==
  /\ ~ up[s]
  /\ up' = [up EXCEPT ![s] = TRUE]
  /\ UNCHANGED <<ltail, sealed, data, seqVars, ackedTail, clientVars, trimVars>>

---------------------------------------------------------------------------
(* Trims: a LogServer drops a prefix of its entries.                      *)

(* p's entry is on a majority of LogServers' data (not only counted as    *)
(* held).                                                                 *)
OnMajority(p) == Cardinality({s \in Servers : p \in data[s]}) >= Maj

(* logserver.on_trim: s discards its entries below t, durably, and from   *)
(* then on counts [0, t) as held: its local tail rises to t ("positions   *)
(* below the trim point count as held"; an unsealed server's next Stored  *)
(* reply says so).  The rule: a trim point is at most what is committed   *)
(* -- on a majority, or acknowledged by the sequencer -- so the entries    *)
(* dropped are durable elsewhere.  The client keeps it: prefix_trim clamps *)
(* the point to its known tail, a lower bound of seqKnown (or, once       *)
(* sealed, the repaired tail, on a majority); a migration trims the source *)
(* of a sealed segment only once its verified copy is installed           *)
(* (delos_ref/migrate.py rule 4).  The LogServer's own clamp, its local   *)
(* tail or what it knows committed, would not be enough (mutant           *)
(* trim_past_known_tail).  A server that missed some positions of a       *)
(* sealed segment then reports a local tail it never stored, which is     *)
(* harmless only because of this rule.                                    *)
(* History: dropped gains [0, t); safe gains the positions dropped here   *)
(* for the first time while on a majority's data.                         *)
TrimHeld(s, t) ==
  /\ up[s]
  /\ t <= Max({seqKnown, CommittedOf(ltail)})
  /\ data' = [data EXCEPT ![s] = {p \in @ : p >= t}]
  /\ ltail' = [ltail EXCEPT ![s] = Max({@, t})]
  /\ ackedTail' = IF sealed[s] THEN ackedTail ELSE [ackedTail EXCEPT ![s] = Max({@, t})]
  /\ safe' = safe \cup {p \in Positions : p < t /\ p \notin dropped /\ OnMajority(p)}
  /\ dropped' = dropped \cup {p \in Positions : p < t}
  /\ UNCHANGED <<sealed, up, seqVars, clientVars>>

---------------------------------------------------------------------------
(* Clients: seal and check_tail.                                          *)

Got(c) == {s \in Servers : probes[c][s].got}
ProbeTail(c) == Max({probes[c][s].tail : s \in Got(c)})

StartSeal(c) ==
  /\ cpc[c] = "idle"
  /\ cpc' = [cpc EXCEPT ![c] = "seal"]
  /\ probes' = [probes EXCEPT ![c] = [s \in Servers |-> NoProbe]]
  /\ UNCHANGED <<serverVars, seqVars, ackedTail, cKnown, ctTail, holders, ctRes, sealDone, ctAfterSeal, trimVars>>

(* ctAfterSeal remembers whether a seal() had returned when this call     *)
(* began: such a check_tail must report the seal (SealedAfterSeal).        *)
StartCheckTail(c) ==
  /\ cpc[c] = "idle"
  /\ cpc' = [cpc EXCEPT ![c] = "ct"]
  /\ probes' = [probes EXCEPT ![c] = [s \in Servers |-> NoProbe]]
  /\ ctAfterSeal' = [ctAfterSeal EXCEPT ![c] = sealDone]
  /\ UNCHANGED <<serverVars, seqVars, ackedTail, cKnown, ctTail, holders, ctRes, sealDone, trimVars>>

(* The client gives up (a deadline, or the client dies).                  *)
(* The call returns (or gives up): back to idle.  Its scratch state is    *)
(* not read again before the next call starts, which resets it, so it is   *)
(* cleared here (this only keeps the model small: fewer distinct states).  *)
Return(c) ==
  /\ cpc' = [cpc EXCEPT ![c] = "idle"]
  /\ probes' = [probes EXCEPT ![c] = [s \in Servers |-> NoProbe]]
  /\ ctTail' = [ctTail EXCEPT ![c] = 0]
  /\ holders' = [holders EXCEPT ![c] = {}]
  /\ ctAfterSeal' = [ctAfterSeal EXCEPT ![c] = FALSE]

Abort(c) ==
  /\ cpc[c] # "idle"
  /\ Return(c)
  /\ UNCHANGED <<serverVars, seqVars, ackedTail, cKnown, ctRes, sealDone, trimVars>>

(* Set the seal bit (durably) and reply with the frozen local tail: a     *)
(* sealing probe, used by seal() and by check_tail's some_sealed case.    *)
SealServer(c, s) ==
  /\ cpc[c] \in {"seal", "ctseal"}
  /\ up[s]
  /\ ~ probes[c][s].got
  /\ sealed' = [sealed EXCEPT ![s] = TRUE]
  /\ probes' = [probes EXCEPT ![c][s] = [got |-> TRUE, tail |-> ltail[s], sealed |-> TRUE]]
  /\ UNCHANGED <<ltail, up, data, seqVars, ackedTail, cKnown, cpc, ctTail, holders, ctRes, sealDone, ctAfterSeal, trimVars>>

(* seal() returns once a majority set the bit (the seal is then a fault-  *)
(* tolerant register: every later majority of probes meets a sealed one).  *)
SealDone(c) ==
  /\ cpc[c] = "seal"
  /\ Cardinality(Got(c)) >= Maj
  /\ Return(c)
  /\ sealDone' = TRUE
  /\ UNCHANGED <<serverVars, seqVars, ackedTail, cKnown, ctRes, trimVars>>

(* TailQuery: (local tail, seal bit), no side effect.                     *)
ProbeServer(c, s) ==
  /\ cpc[c] = "ct"
  /\ up[s]
  /\ ~ probes[c][s].got
  /\ probes' = [probes EXCEPT ![c][s] = [got |-> TRUE, tail |-> ltail[s], sealed |-> sealed[s]]]
  /\ UNCHANGED <<serverVars, seqVars, ackedTail, cKnown, cpc, ctTail, holders, ctRes, sealDone, ctAfterSeal, trimVars>>

HoldersOf(c, t) == {s \in Got(c) : probes[c][s].tail >= t}

(* One round of check_tail on a majority of probes: the three cases.      *)
CTDecide(c) ==
  /\ cpc[c] = "ct"
  /\ Cardinality(Got(c)) >= Maj
  /\ LET sl == {s \in Got(c) : probes[c][s].sealed}
         t == ProbeTail(c)
     IN  \/ /\ sl = {}                              \* none_sealed
            /\ cpc' = [cpc EXCEPT ![c] = "wait"]
            /\ ctTail' = [ctTail EXCEPT ![c] = t]
            /\ UNCHANGED <<probes, holders>>
         \/ /\ sl = Got(c)                          \* all_sealed
            /\ cpc' = [cpc EXCEPT ![c] = "repair"]
            /\ ctTail' = [ctTail EXCEPT ![c] = t]
            /\ holders' = [holders EXCEPT ![c] = HoldersOf(c, t)]
            /\ UNCHANGED probes
         \/ /\ sl # {} /\ sl # Got(c)               \* some_sealed: seal the rest
            /\ cpc' = [cpc EXCEPT ![c] = "ctseal"]
            /\ probes' = [probes EXCEPT ![c] = [s \in Servers |-> NoProbe]]
            /\ UNCHANGED <<ctTail, holders>>
  /\ UNCHANGED <<serverVars, seqVars, ackedTail, cKnown, ctRes, sealDone, ctAfterSeal, trimVars>>

(* some_sealed: a majority of sealing probes; their max is the tail.      *)
CTSealDone(c) ==
  /\ cpc[c] = "ctseal"
  /\ Cardinality(Got(c)) >= Maj
  /\ cpc' = [cpc EXCEPT ![c] = "repair"]
  /\ ctTail' = [ctTail EXCEPT ![c] = ProbeTail(c)]
  /\ holders' = [holders EXCEPT ![c] = HoldersOf(c, ProbeTail(c))]
  /\ UNCHANGED <<serverVars, seqVars, ackedTail, cKnown, probes, ctRes, sealDone, ctAfterSeal, trimVars>>

(* knownTail: ask the sequencer (KnownTailQuery) and keep the maximum.    *)
LearnKnownTail(c) ==
  /\ cKnown[c] < seqKnown
  /\ cKnown' = [cKnown EXCEPT ![c] = seqKnown]
  /\ UNCHANGED <<serverVars, seqVars, ackedTail, cpc, probes, ctTail, holders, ctRes, sealDone, ctAfterSeal, trimVars>>

(* none_sealed: return once knownTail reaches the max local tail.         *)
CTWaitDone(c) ==
  /\ cpc[c] = "wait"
  /\ cKnown[c] >= ctTail[c]
  /\ Return(c)
  /\ ctRes' = [ctRes EXCEPT ![c] = [done |-> TRUE, tail |-> ctTail[c], sealed |-> FALSE,
                                      afterSeal |-> ctAfterSeal[c]]]
  /\ UNCHANGED <<serverVars, seqVars, ackedTail, cKnown, sealDone, trimVars>>

(* The sequencer reports sealed (or does not answer): probe again.        *)
CTWaitRetry(c) ==
  /\ cpc[c] = "wait"
  /\ cKnown[c] < ctTail[c]
  /\ cpc' = [cpc EXCEPT ![c] = "ct"]
  /\ probes' = [probes EXCEPT ![c] = [s \in Servers |-> NoProbe]]
  /\ UNCHANGED <<serverVars, seqVars, ackedTail, cKnown, ctTail, holders, ctRes, sealDone, ctAfterSeal, trimVars>>

(* Copy [ltail[s], ctTail[c]) from a live holder onto s; a repaired       *)
(* server is a sealed server (repair writes are allowed when sealed).     *)
RepairServer(c, s) ==
  /\ cpc[c] = "repair"
  /\ s \notin holders[c]
  /\ up[s]
  /\ \E h \in holders[c] :  \* copies h's entries of [ltail[s], ctTail[c])
       /\ up[h]
       /\ data' = [data EXCEPT ![s] = @ \cup {p \in data[h] : ltail[s] <= p /\ p < ctTail[c]}]
  /\ ltail' = [ltail EXCEPT ![s] = Max({@, ctTail[c]})]
  /\ sealed' = [sealed EXCEPT ![s] = TRUE]
  /\ holders' = [holders EXCEPT ![c] = @ \cup {s}]
  /\ UNCHANGED <<up, seqVars, ackedTail, cKnown, cpc, probes, ctTail, ctRes, sealDone, ctAfterSeal, trimVars>>

RepairDone(c) ==
  /\ cpc[c] = "repair"
  /\ Cardinality(holders[c]) >= Maj
  /\ Return(c)
  /\ ctRes' = [ctRes EXCEPT ![c] = [done |-> TRUE, tail |-> ctTail[c], sealed |-> TRUE,
                                      afterSeal |-> ctAfterSeal[c]]]
  /\ UNCHANGED <<serverVars, seqVars, ackedTail, cKnown, sealDone, trimVars>>

---------------------------------------------------------------------------

Next ==
  \/ Assign
  \/ \E s \in Servers : \/ StoreAt(s) \/ StoreRefused(s) \/ Crash(s) \/ Restart(s)
                        \/ ReceiveStored(s) \/ ReceiveRefused(s)
                        \/ \E t \in 1..MaxPos : TrimHeld(s, t)
  \/ \E c \in Clients :
       \/ StartSeal(c) \/ StartCheckTail(c) \/ Abort(c) \/ SealDone(c)
       \/ CTDecide(c) \/ CTSealDone(c) \/ LearnKnownTail(c)
       \/ CTWaitDone(c) \/ CTWaitRetry(c) \/ RepairDone(c)
       \/ \E s \in Servers : SealServer(c, s) \/ ProbeServer(c, s) \/ RepairServer(c, s)

Spec == Init /\ [][Next]_vars

---------------------------------------------------------------------------
(* Safety.                                                                *)

(* No acknowledged position is lost: every position below the sequencer's *)
(* known tail (appends are acknowledged in position order up to it) is    *)
(* durably on a majority, crashes notwithstanding.                        *)
NoAckLost ==
  \A p \in Pos : p < seqKnown => \E Q \in Majorities : \A s \in Q : ltail[s] > p

(* The sequencer counts only what a server durably stored while unsealed. *)
AckedTailDurable ==
  \A s \in Servers : seqTails[s] <= ackedTail[s] /\ ackedTail[s] <= ltail[s]

(* Acknowledged positions form a prefix that never exceeds what was      *)
(* assigned; every component's knownTail is a lower bound on it.         *)
KnownTailBound ==
  /\ seqKnown <= nextPos
  /\ \A c \in Clients : cKnown[c] <= seqKnown

(* A sealed check_tail covers every acknowledged position, now and later: *)
(* nothing at or beyond a sealed tail is ever acknowledged.               *)
SealedTailCoversAcked ==
  \A c \in Clients : ctRes[c].done /\ ctRes[c].sealed => seqKnown <= ctRes[c].tail

(* After repair, every position below the sealed tail is on a majority.   *)
RepairedOnMajority ==
  \A c \in Clients : ctRes[c].done /\ ctRes[c].sealed =>
    \E Q \in Majorities : \A s \in Q : ltail[s] >= ctRes[c].tail

(* An unsealed check_tail returns a committed tail.                       *)
UnsealedTailCommitted ==
  \A c \in Clients : ctRes[c].done /\ ~ ctRes[c].sealed => ctRes[c].tail <= seqKnown

(* Once the sequencer saw a majority sealed, a majority is sealed.        *)
SequencerSealSound ==
  seqSealed => \E Q \in Majorities : \A s \in Q : sealed[s]

(* What seal() guarantees (the seed's requirements 2-4).                   *)

(* 2. The seal is fault-tolerant: seal() returns only once a majority of   *)
(* LogServers has the bit set (durably: crashes do not clear it).          *)
SealReturnedOnMajority ==
  sealDone => \E Q \in Majorities : \A s \in Q : sealed[s]

(* 4. check_tail reports the seal: a check_tail that began after seal()    *)
(* returned reports sealed = TRUE.  (One that began earlier may still      *)
(* return unsealed: it is ordered before the seal.)                        *)
SealedAfterSeal ==
  \A c \in Clients : ctRes[c].done /\ ctRes[c].afterSeal => ctRes[c].sealed

(* 3. Appends are rejected after the seal: no append is acknowledged at or *)
(* above the tail that a check_tail begun after seal() reports, now or     *)
(* later.                                                                  *)
NoAckAfterSeal ==
  \A c \in Clients : ctRes[c].done /\ ctRes[c].afterSeal => seqKnown <= ctRes[c].tail

(* Trims (TrimHeld): a LogServer drops only entries that were on a        *)
(* majority's data when first dropped (committed, so durable elsewhere:   *)
(* never an entry still needed) ...                                       *)
TrimsDropOnlyCommitted == dropped \subseteq safe

(* ... so every acknowledged entry is still on a majority's data, or was *)
(* on one when it was dropped (NoAckLost counts trimmed positions as held; *)
(* this says what they stand for).                                         *)
AckedEntryKept ==
  \A p \in Positions : p < seqKnown => OnMajority(p) \/ p \in safe

Safety == /\ TypeOK /\ NoAckLost /\ AckedTailDurable /\ KnownTailBound /\ SealedTailCoversAcked
          /\ RepairedOnMajority /\ UnsealedTailCommitted /\ SequencerSealSound
          /\ SealReturnedOnMajority /\ SealedAfterSeal /\ NoAckAfterSeal
          /\ TrimsDropOnlyCommitted /\ AckedEntryKept

---------------------------------------------------------------------------
(* Liveness (model MCNativeLogletLive): without crashes and client aborts, *)
(* with weak fairness on the clients', LogServers' and sequencer's steps,  *)
(* a check_tail that runs once a majority is sealed eventually returns.    *)

SealedMajority == \E Q \in Majorities : \A s \in Q : sealed[s]

LiveNext ==
  \/ Assign
  \/ \E s \in Servers : \/ StoreAt(s) \/ StoreRefused(s) \/ ReceiveStored(s) \/ ReceiveRefused(s)
  \/ \E c \in Clients :
       \/ StartSeal(c) \/ StartCheckTail(c) \/ SealDone(c)
       \/ CTDecide(c) \/ CTSealDone(c) \/ LearnKnownTail(c)
       \/ CTWaitDone(c) \/ CTWaitRetry(c) \/ RepairDone(c)
       \/ \E s \in Servers : SealServer(c, s) \/ ProbeServer(c, s) \/ RepairServer(c, s)

LiveSpec ==
  /\ Init /\ [][LiveNext]_vars
  /\ \A s \in Servers : WF_vars(ReceiveStored(s) \/ ReceiveRefused(s))
  /\ \A c \in Clients :
       /\ WF_vars(SealDone(c) \/ CTDecide(c) \/ CTSealDone(c) \/ LearnKnownTail(c)
                  \/ CTWaitDone(c) \/ CTWaitRetry(c) \/ RepairDone(c))
       /\ \A s \in Servers : WF_vars(SealServer(c, s) \/ ProbeServer(c, s) \/ RepairServer(c, s))

SealedCheckTailReturns ==
  \A c \in Clients : (cpc[c] = "ct" /\ SealedMajority) ~> cpc[c] = "idle"

=============================================================================
