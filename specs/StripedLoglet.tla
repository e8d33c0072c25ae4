--------------------------- MODULE StripedLoglet ---------------------------
(***************************************************************************)
(* The StripedLoglet (docs/design.md section 6; OSDI'20 4.2.2): one loglet    *)
(* over N inner loglets ("stripes"); logical position l*N + k lives at     *)
(* position l of stripe k.  An append lands in one stripe and is           *)
(* acknowledged only once every earlier logical position is filled; seal  *)
(* seals every stripe; the sealed tail is the first hole.                  *)
(*                                                                         *)
(* Mapping to the implementation (delos_ref/loglet/striped.py; trace      *)
(* events of role loglet, see delos_ref/loglet/__init__.py):              *)
(*                                                                         *)
(*  spec                 implementation                     trace event    *)
(*  -------------------  ---------------------------------  -------------- *)
(*  log[k]               the entries stored in stripe k     (inner Store)  *)
(*  committed[k]         stripe k's committed prefix: what  (inner Commit) *)
(*                       StripedLoglet._filled learns from                 *)
(*                       inner acks and unsealed tails                     *)
(*  sealed[k]            stripe k's seal bit (on a majority)(inner Seal)   *)
(*  pc, pos, ent         one append of a client in flight                  *)
(*  acked                StripedLoglet.append returned pos  StripedAck     *)
(*  sealRet              a seal() call returned             StripedSeal    *)
(*  ctMin                the least sealed tail check_tail   StripedCheck-  *)
(*                       returned                           Tail (sealed)  *)
(*                                                                         *)
(*  Land(c, k)           append: rule 1, stripe k's append  StripedAppend  *)
(*                       gives the entry a position                        *)
(*  Fill(k)              rule 3: a filler b"" in stripe k   StripedFill    *)
(*  Commit(k)            stripe k commits a position                       *)
(*  Ack(c)               rule 2: every earlier logical      StripedAck     *)
(*                       position is filled                                *)
(*  SealStripe(k)        rule 5 (and rule 4: check_tail    (inner Seal)    *)
(*                       finishing a half-done seal)                       *)
(*  SealReturn           seal() returns once SealDone       StripedSeal    *)
(*  CheckTailSealed      rule 4: check_tail returns the     StripedCheck-  *)
(*                       sealed tail once every stripe is   Tail (sealed)  *)
(*                                                                         *)
(* Abstractions.  A stripe is an abstract sealable log that fills          *)
(* gaplessly (NativeLoglet.tla shows the NativeLoglet is one): entries     *)
(* land at its tail only while it is unsealed, and commit in order, only   *)
(* while unsealed, so every committed position of a stripe lies below its  *)
(* sealed tail (the NativeLoglet's SealedTailCoversAcked).  Its sealed     *)
(* tail is Len(log[k]), every entry it stored (zombies included).  A       *)
(* client's placement (rule 1) is any stripe: every policy is a subset of  *)
(* these behaviours.  A client acknowledges from what is committed, which  *)
(* over-approximates what it has learned.  Entries are <<client, i>>;      *)
(* fillers are <<"fill", k, l>>.  Reads and trims are not modelled.        *)
(***************************************************************************)
EXTENDS Naturals, Sequences, FiniteSets, TLC

CONSTANTS
    N,          \* stripes
    Clients,    \* appending clients
    MaxL,       \* positions per stripe (the model's bound)
    MaxAppends  \* appends per client

Stripes == 0 .. N - 1
Positions == 0 .. N * MaxL - 1
Entries == (Clients \X (1 .. MaxAppends)) \cup ({"fill"} \X Stripes \X (0 .. MaxL - 1))

VARIABLES
    log,        \* log[k]: the entries stored in stripe k, in position order
    committed,  \* committed[k]: stripe k's committed prefix, <= Len(log[k])
    sealed,     \* sealed[k]: stripe k's seal bit
    pc,         \* pc[c] \in {"idle", "landed", "done"}
    pos,        \* pos[c]: the logical position of c's append in flight
    count,      \* count[c]: appends c has started
    afterSeal,  \* afterSeal[c]: c's append in flight was invoked after seal() returned
    acked,      \* set of [pos |-> p, ent |-> e, late |-> b]: acknowledged appends
    sealRet,    \* seal() has returned
    ctMin       \* the least sealed tail a check_tail returned (N * MaxL: none yet)

vars == <<log, committed, sealed, pc, pos, count, afterSeal, acked, sealRet, ctMin>>

(* Entries stripe j holds below logical position p: ceil((p - j) / N).     *)
Need(j, p) == IF p > j THEN (p - j + N - 1) \div N ELSE 0

(* Rule 4: the first logical position not covered by the prefixes t.      *)
Combine(t) == CHOOSE m \in {t[j] * N + j : j \in Stripes} :
                  \A j \in Stripes : m <= t[j] * N + j

Filled(p) == committed[p % N] > p \div N

(* Rule 2: every earlier logical position is filled.                       *)
AckGuard(c) == \A j \in Stripes : committed[j] >= Need(j, pos[c])

(* Rule 5: seal() returns once every stripe is sealed.                     *)
SealDone == \A k \in Stripes : sealed[k]

(* Rule 4: check_tail reports sealed only once every stripe is (it seals   *)
(* the rest itself first: SealStripe steps).                               *)
CheckTailSealedGuard == \A k \in Stripes : sealed[k]

AllSealed == \A k \in Stripes : sealed[k]
SealedTail == Combine([k \in Stripes |-> Len(log[k])])

TypeOK ==
    /\ log \in [Stripes -> Seq(Entries)]
    /\ \A k \in Stripes : Len(log[k]) <= MaxL
    /\ committed \in [Stripes -> 0 .. MaxL]
    /\ sealed \in [Stripes -> BOOLEAN]
    /\ pc \in [Clients -> {"idle", "landed", "done"}]
    /\ pos \in [Clients -> Positions]
    /\ count \in [Clients -> 0 .. MaxAppends]
    /\ afterSeal \in [Clients -> BOOLEAN]
    /\ sealRet \in BOOLEAN
    /\ ctMin \in 0 .. N * MaxL

Init ==
    /\ log = [k \in Stripes |-> <<>>]
    /\ committed = [k \in Stripes |-> 0]
    /\ sealed = [k \in Stripes |-> FALSE]
    /\ pc = [c \in Clients |-> "idle"]
    /\ pos = [c \in Clients |-> 0]
    /\ count = [c \in Clients |-> 0]
    /\ afterSeal = [c \in Clients |-> FALSE]
    /\ acked = {}
    /\ sealRet = FALSE
    /\ ctMin = N * MaxL

(* Rule 1: c's next append lands at the tail of stripe k (unsealed).       *)
Land(c, k) ==
    /\ pc[c] = "idle" /\ count[c] < MaxAppends
    /\ ~sealed[k] /\ Len(log[k]) < MaxL
    /\ log' = [log EXCEPT ![k] = Append(@, <<c, count[c] + 1>>)]
    /\ pos' = [pos EXCEPT ![c] = Len(log[k]) * N + k]
    /\ count' = [count EXCEPT ![c] = @ + 1]
    /\ pc' = [pc EXCEPT ![c] = "landed"]
    /\ afterSeal' = [afterSeal EXCEPT ![c] = sealRet]
    /\ UNCHANGED <<committed, sealed, acked, sealRet, ctMin>>

(* Rule 3: a waiting client fills stripe k's next position.                *)
Fill(k) ==
    /\ \E c \in Clients : pc[c] = "landed"
    /\ ~sealed[k] /\ Len(log[k]) < MaxL
    /\ log' = [log EXCEPT ![k] = Append(@, <<"fill", k, Len(log[k])>>)]
    /\ UNCHANGED <<committed, sealed, pc, pos, count, afterSeal, acked, sealRet, ctMin>>

(* A stripe commits its next stored position, in order, while unsealed.    *)
Commit(k) ==
    /\ ~sealed[k] /\ committed[k] < Len(log[k])
    /\ committed' = [committed EXCEPT ![k] = @ + 1]
    /\ UNCHANGED <<log, sealed, pc, pos, count, afterSeal, acked, sealRet, ctMin>>

(* Rule 2: c's append is acknowledged, its own stripe having committed it. *)
Ack(c) ==
    /\ pc[c] = "landed"
    /\ Filled(pos[c])
    /\ AckGuard(c)
    /\ acked' = acked \cup {[pos |-> pos[c], ent |-> <<c, count[c]>>, late |-> afterSeal[c]]}
    /\ pc' = [pc EXCEPT ![c] = IF count[c] = MaxAppends THEN "done" ELSE "idle"]
    /\ UNCHANGED <<log, committed, sealed, pos, count, afterSeal, sealRet, ctMin>>

(* The append fails (sealed, or its deadline): the client moves on.        *)
GiveUp(c) ==
    /\ pc[c] = "landed"
    /\ \E k \in Stripes : sealed[k]
    /\ pc' = [pc EXCEPT ![c] = IF count[c] = MaxAppends THEN "done" ELSE "idle"]
    /\ UNCHANGED <<log, committed, sealed, pos, count, afterSeal, acked, sealRet, ctMin>>

(* Rules 4 and 5: a seal() or a check_tail seals stripe k.                 *)
SealStripe(k) ==
    /\ ~sealed[k]
    /\ sealed' = [sealed EXCEPT ![k] = TRUE]
    /\ UNCHANGED <<log, committed, pc, pos, count, afterSeal, acked, sealRet, ctMin>>

SealReturn ==
    /\ ~sealRet /\ SealDone
    /\ sealRet' = TRUE
    /\ UNCHANGED <<log, committed, sealed, pc, pos, count, afterSeal, acked, ctMin>>

(* Rule 4: a check_tail returns the sealed tail, the first hole of the     *)
(* stripes' tails.                                                         *)
CheckTailSealed ==
    /\ CheckTailSealedGuard
    /\ \E k \in Stripes : sealed[k]
    /\ ctMin' = IF SealedTail < ctMin THEN SealedTail ELSE ctMin
    /\ UNCHANGED <<log, committed, sealed, pc, pos, count, afterSeal, acked, sealRet>>

Next ==
    \/ \E c \in Clients, k \in Stripes : Land(c, k)
    \/ \E k \in Stripes : Fill(k) \/ Commit(k) \/ SealStripe(k)
    \/ \E c \in Clients : Ack(c) \/ GiveUp(c)
    \/ SealReturn
    \/ CheckTailSealed

Spec == Init /\ [][Next]_vars

-----------------------------------------------------------------------------
(* Invariants.                                                             *)

(* Nothing above a hole is ever acknowledged: below every acknowledged     *)
(* position, every logical position is filled (committed in its stripe).  *)
NoAckAboveHole ==
    \A a \in acked : \A q \in 0 .. a.pos : Filled(q)

(* No acknowledged logical position is lost or moved: its entry is at     *)
(* position pos \div N of stripe pos % N, and once every stripe is sealed  *)
(* it lies below the sealed tail (the first hole), so it stays readable.  *)
AckedInPlace ==
    \A a \in acked :
        /\ a.pos \div N < Len(log[a.pos % N])
        /\ log[a.pos % N][a.pos \div N + 1] = a.ent
        /\ AllSealed => a.pos < SealedTail

(* Nothing at or past a sealed tail that a check_tail returned is ever     *)
(* acknowledged, then or later.                                            *)
SealedTailCoversAcked ==
    \A a \in acked : a.pos < ctMin

(* Each logical position is acknowledged at most once.                     *)
UniquePositions ==
    \A a, b \in acked : a.pos = b.pos => a = b

(* The seal guarantee: no append invoked after seal() returned is ever     *)
(* acknowledged (seal() returns only once every stripe is sealed, so no    *)
(* later append lands, and no hole below one fills).                       *)
SealGuarantee ==
    \A a \in acked : ~a.late
=============================================================================
