--------------------------- MODULE MetaStorePaxos ---------------------------
(***************************************************************************)
(* The MetaStore: a versioned register with conditional write, built as a  *)
(* sequence of single-decree Paxos instances, one per version              *)
(* (docs/design.md sect. 3; OSDI'20 3.2, 4.1).  Version k of the register  *)
(* is the value chosen in instance k; version 0 is the empty register.     *)
(*                                                                         *)
(* Mapping to the implementation (package paxos, trace events of           *)
(* paxos/__init__.py):                                                     *)
(*                                                                         *)
(*  spec                    implementation                 trace event     *)
(*  ----------------------  -----------------------------  --------------- *)
(*  promised[a][i]          acceptor.Slot.promised         Promise.promised*)
(*  accepted[a][i].bal      acceptor.Slot.accepted_ballot  *.accepted_ballot*)
(*  accepted[a][i].val      acceptor.Slot.accepted_value   *.accepted_value*)
(*  msgs                    paxos.messages over transport  (none)          *)
(*  round[p], ballot <<r,p>> paxos.ballot.Ballot [round,proposer]  ballot  *)
(*  known[p]                register.MetaStoreClient._known_version        *)
(*  op[p], pc[p]            register.read / write_if call  (none)          *)
(*  lastResult[p]           return of read / write_if      ReadDone,       *)
(*                                                         WriteDone       *)
(*  StartAttempt            register._attempt (phase 1a)   (none)          *)
(*  Phase1b                 acceptor.on_prepare            Promise         *)
(*  RejectPrepare           acceptor.on_prepare (nack)     RejectPrepare   *)
(*  Phase2a                 register._attempt, proposer    Propose         *)
(*  NothingAccepted         proposer step NothingAccepted  (none)          *)
(*  Phase2b                 acceptor.on_accept             Accepted        *)
(*  RejectAccept            acceptor.on_accept (nack)      RejectAccept    *)
(*  Learn                   register._decide               Chosen          *)
(*  WriteStep (outcome)     register.write_if              WriteDone       *)
(*  ReadStep (outcome)      register.read                  ReadDone        *)
(*                                                                         *)
(* Abstractions: the network may lose, duplicate and reorder messages (the *)
(* set msgs only grows; any message may be received any number of times). *)
(* A proposer may abandon an attempt at any time (timeout or nack) and     *)
(* start a new one with a higher round.  Acceptor state is durable (the    *)
(* implementation syncs before replying), so acceptor crashes are          *)
(* stuttering.  The fast read path (Query/Current) is not modelled: reads  *)
(* settle instances one by one, which is the slow path of register.read.   *)
(* The value written is [writer, seq, data], unique per write, as in       *)
(* paxos.messages.Update.                                                  *)
(***************************************************************************)
EXTENDS Naturals, FiniteSets, TLC

CONSTANTS
    Acceptors,    \* the acceptors (an odd number in practice)
    Proposers,    \* MetaStore clients; positive naturals (they order ballots)
    Values,       \* the data a client may write
    MaxVersion,   \* instances 1..MaxVersion
    MaxRound,     \* ballots <<1..MaxRound, p>>
    MaxWrites,    \* write_if calls per proposer
    None          \* a model value: "no value"

ASSUME \A p \in Proposers : p \in Nat /\ p > 0
ASSUME MaxVersion \in Nat /\ MaxVersion > 0 /\ MaxRound \in Nat /\ MaxWrites \in Nat

VARIABLES
    promised,     \* promised[a][i]: the highest ballot acceptor a promised in instance i
    accepted,     \* accepted[a][i]: [bal, val] the last ballot/value a accepted in i
    msgs,         \* every message ever sent
    round,        \* round[p]: the round of p's latest ballot (0: none yet)
    known,        \* known[p]: highest version p knows to be chosen (all below too)
    knownVal,     \* knownVal[p]: the value chosen at known[p] (None for version 0)
    seq,          \* seq[p]: number of writes p has started
    op,           \* op[p]: the call in progress: [kind |-> "idle"|"read"|"write", ...]
    pc,           \* pc[p]: "idle" | "step" | "p1" | "p2"
    inst,         \* inst[p]: the instance of p's current attempt
    pval,         \* pval[p]: the value p wants in inst[p] (None: only settle it)
    prop,         \* prop[p]: the value p proposed in phase 2 (None before)
    lastResult    \* lastResult[p]: the outcome of p's last completed call

vars == <<promised, accepted, msgs, round, known, knownVal, seq, op, pc, inst,
          pval, prop, lastResult>>

Instances == 1..MaxVersion
Zero == <<0, 0>>
Ballots == {Zero} \cup ((1..MaxRound) \X Proposers)
Less(b, c) == \/ b[1] < c[1]
              \/ b[1] = c[1] /\ b[2] < c[2]
LessEq(b, c) == b = c \/ Less(b, c)
BallotOf(p) == <<round[p], p>>

Quorums == {Q \in SUBSET Acceptors : 2 * Cardinality(Q) > Cardinality(Acceptors)}

Updates == [writer : Proposers, seq : 1..MaxWrites, data : Values]
NoOp == [kind |-> "idle"]
Ops == {NoOp} \cup [kind : {"read"}]
        \cup [kind : {"write"}, expected : 0..(MaxVersion - 1), update : Updates]
Results == {[kind |-> "none"]}
           \cup [kind : {"read"}, version : 0..MaxVersion, value : Updates \cup {None}]
           \cup [kind : {"written", "conflict"}, expected : 0..(MaxVersion - 1),
                 update : Updates, version : 0..MaxVersion]

Messages ==
       [type : {"1a"}, inst : Instances, bal : Ballots]
  \cup [type : {"1b"}, inst : Instances, bal : Ballots, acc : Acceptors,
        mbal : Ballots, mval : Updates \cup {None}]
  \cup [type : {"2a"}, inst : Instances, bal : Ballots, val : Updates]
  \cup [type : {"2b"}, inst : Instances, bal : Ballots, val : Updates, acc : Acceptors]

TypeOK ==
  /\ promised \in [Acceptors -> [Instances -> Ballots]]
  /\ accepted \in [Acceptors -> [Instances -> [bal : Ballots, val : Updates \cup {None}]]]
  /\ msgs \subseteq Messages
  /\ round \in [Proposers -> 0..MaxRound]
  /\ known \in [Proposers -> 0..MaxVersion]
  /\ knownVal \in [Proposers -> Updates \cup {None}]
  /\ seq \in [Proposers -> 0..MaxWrites]
  /\ op \in [Proposers -> Ops]
  /\ pc \in [Proposers -> {"idle", "step", "p1", "p2"}]
  /\ inst \in [Proposers -> Instances]
  /\ pval \in [Proposers -> Updates \cup {None}]
  /\ prop \in [Proposers -> Updates \cup {None}]
  /\ lastResult \in [Proposers -> Results]

(* Value v is chosen in instance i: a quorum accepted it in one ballot.    *)
(* (Written with the set of voters rather than \E Q \in Quorums, the same *)
(* thing since quorums are the majorities: TLC checks it much faster.)     *)
Voters(i, b, v) == {m.acc : m \in {n \in msgs : n.type = "2b" /\ n.inst = i /\ n.bal = b /\ n.val = v}}
ChosenIn(i, v) == \E m \in msgs : /\ m.type = "2b" /\ m.inst = i /\ m.val = v
                                 /\ 2 * Cardinality(Voters(i, m.bal, v)) > Cardinality(Acceptors)
IsChosen(i) == \E m \in msgs : m.type = "2b" /\ m.inst = i /\ ChosenIn(i, m.val)

Send(m) == msgs' = msgs \cup {m}

Init ==
  /\ promised = [a \in Acceptors |-> [i \in Instances |-> Zero]]
  /\ accepted = [a \in Acceptors |-> [i \in Instances |-> [bal |-> Zero, val |-> None]]]
  /\ msgs = {}
  /\ round = [p \in Proposers |-> 0]
  /\ known = [p \in Proposers |-> 0]
  /\ knownVal = [p \in Proposers |-> None]
  /\ seq = [p \in Proposers |-> 0]
  /\ op = [p \in Proposers |-> NoOp]
  /\ pc = [p \in Proposers |-> "idle"]
  /\ inst = [p \in Proposers |-> 1]
  /\ pval = [p \in Proposers |-> None]
  /\ prop = [p \in Proposers |-> None]
  /\ lastResult = [p \in Proposers |-> [kind |-> "none"]]

---------------------------------------------------------------------------
(* Client calls.                                                           *)

BeginWrite(p, e, d) ==
  /\ pc[p] = "idle"
  /\ seq[p] < MaxWrites
  /\ seq' = [seq EXCEPT ![p] = @ + 1]
  /\ op' = [op EXCEPT ![p] = [kind |-> "write", expected |-> e,
                               update |-> [writer |-> p, seq |-> seq[p] + 1, data |-> d]]]
  /\ pc' = [pc EXCEPT ![p] = "step"]
  /\ UNCHANGED <<promised, accepted, msgs, round, known, knownVal, inst, pval, prop, lastResult>>

BeginRead(p) ==
  /\ pc[p] = "idle"
  /\ op' = [op EXCEPT ![p] = [kind |-> "read"]]
  /\ pc' = [pc EXCEPT ![p] = "step"]
  /\ UNCHANGED <<promised, accepted, msgs, round, known, knownVal, seq, inst, pval, prop, lastResult>>

Finish(p, result) ==
  /\ lastResult' = [lastResult EXCEPT ![p] = result]
  /\ op' = [op EXCEPT ![p] = NoOp]
  /\ pc' = [pc EXCEPT ![p] = "idle"]

(* Phase 1a of a fresh attempt on instance i, wanting value v (None: settle). *)
StartAttempt(p, i, v) ==
  /\ round[p] < MaxRound
  /\ round' = [round EXCEPT ![p] = @ + 1]
  /\ inst' = [inst EXCEPT ![p] = i]
  /\ pval' = [pval EXCEPT ![p] = v]
  /\ prop' = [prop EXCEPT ![p] = None]
  /\ pc' = [pc EXCEPT ![p] = "p1"]
  /\ Send([type |-> "1a", inst |-> i, bal |-> <<round[p] + 1, p>>])

(* register.write_if: gapless versions -- propose in expected+1 only once   *)
(* expected is known chosen; settle the next instance until then.          *)
WriteStep(p) ==
  /\ pc[p] = "step"
  /\ op[p].kind = "write"
  /\ LET e == op[p].expected
         u == op[p].update
     IN  \/ /\ e < known[p]
            /\ Finish(p, [kind |-> IF known[p] = e + 1 /\ knownVal[p] = u
                                   THEN "written" ELSE "conflict",
                          expected |-> e, update |-> u, version |-> known[p]])
            /\ UNCHANGED <<promised, accepted, msgs, round, known, knownVal, seq, inst, pval, prop>>
         \/ /\ e = known[p]
            /\ StartAttempt(p, e + 1, u)
            /\ UNCHANGED <<promised, accepted, known, knownVal, seq, op, lastResult>>
         \/ /\ e > known[p]
            /\ StartAttempt(p, known[p] + 1, None)
            /\ UNCHANGED <<promised, accepted, known, knownVal, seq, op, lastResult>>

(* register.read: settle instances upward from the known version.          *)
ReadStep(p) ==
  /\ pc[p] = "step"
  /\ op[p].kind = "read"
  /\ \/ /\ known[p] = MaxVersion
        /\ Finish(p, [kind |-> "read", version |-> known[p], value |-> knownVal[p]])
        /\ UNCHANGED <<promised, accepted, msgs, round, known, knownVal, seq, inst, pval, prop>>
     \/ /\ known[p] < MaxVersion
        /\ StartAttempt(p, known[p] + 1, None)
        /\ UNCHANGED <<promised, accepted, known, knownVal, seq, op, lastResult>>

(* A timeout or a nack: abandon the attempt, retry with a higher ballot.   *)
Abandon(p) ==
  /\ pc[p] \in {"p1", "p2"}
  /\ StartAttempt(p, inst[p], pval[p])
  /\ UNCHANGED <<promised, accepted, known, knownVal, seq, op, lastResult>>

---------------------------------------------------------------------------
(* Acceptors.                                                              *)

Phase1b(a) ==
  \E m \in msgs :
    /\ m.type = "1a"
    /\ LessEq(promised[a][m.inst], m.bal)
    /\ promised' = [promised EXCEPT ![a][m.inst] = m.bal]
    /\ Send([type |-> "1b", inst |-> m.inst, bal |-> m.bal, acc |-> a,
             mbal |-> accepted[a][m.inst].bal, mval |-> accepted[a][m.inst].val])
    /\ UNCHANGED <<accepted, round, known, knownVal, seq, op, pc, inst, pval, prop, lastResult>>

(* A Prepare below the promise: a nack, the acceptor's state is unchanged. *)
RejectPrepare(a) ==
  /\ \E m \in msgs : m.type = "1a" /\ Less(m.bal, promised[a][m.inst])
  /\ UNCHANGED vars

Phase2b(a) ==
  \E m \in msgs :
    /\ m.type = "2a"
    /\ LessEq(promised[a][m.inst], m.bal)
    /\ promised' = [promised EXCEPT ![a][m.inst] = m.bal]
    /\ accepted' = [accepted EXCEPT ![a][m.inst] = [bal |-> m.bal, val |-> m.val]]
    /\ Send([type |-> "2b", inst |-> m.inst, bal |-> m.bal, val |-> m.val, acc |-> a])
    /\ UNCHANGED <<round, known, knownVal, seq, op, pc, inst, pval, prop, lastResult>>

RejectAccept(a) ==
  /\ \E m \in msgs : m.type = "2a" /\ Less(m.bal, promised[a][m.inst])
  /\ UNCHANGED vars

---------------------------------------------------------------------------
(* Proposer phase 2 and learning.                                          *)

Promises(p, Q) == {m \in msgs : m.type = "1b" /\ m.inst = inst[p]
                                /\ m.bal = BallotOf(p) /\ m.acc \in Q}
QuorumPromised(p, Q) == \A a \in Q : \E m \in Promises(p, Q) : m.acc = a

(* Phase 2a with the P2c rule: adopt the value of the highest accepted     *)
(* ballot among a quorum of promises, else propose our own.                *)
Phase2a(p) ==
  /\ pc[p] = "p1"
  /\ \E Q \in Quorums :
       /\ QuorumPromised(p, Q)
       /\ LET ms == Promises(p, Q)
              withVal == {m \in ms : m.mval # None}
              top == CHOOSE m \in withVal : \A n \in withVal : LessEq(n.mbal, m.mbal)
              v == IF withVal = {} THEN pval[p] ELSE top.mval
          IN  /\ v # None
              /\ ~ \E m \in msgs : m.type = "2a" /\ m.inst = inst[p] /\ m.bal = BallotOf(p)
              /\ Send([type |-> "2a", inst |-> inst[p], bal |-> BallotOf(p), val |-> v])
              /\ prop' = [prop EXCEPT ![p] = v]
              /\ pc' = [pc EXCEPT ![p] = "p2"]
  /\ UNCHANGED <<promised, accepted, round, known, knownVal, seq, op, inst, pval, lastResult>>

(* Settling found nothing accepted in inst[p] by a quorum: nothing is      *)
(* chosen there now, so the current version is known[p] (= inst[p] - 1).   *)
NothingAccepted(p) ==
  /\ pc[p] = "p1"
  /\ pval[p] = None
  /\ \E Q \in Quorums :
       /\ QuorumPromised(p, Q)
       /\ \A m \in Promises(p, Q) : m.mval = None
  /\ IF op[p].kind = "read"
       THEN Finish(p, [kind |-> "read", version |-> known[p], value |-> knownVal[p]])
       ELSE Finish(p, [kind |-> "conflict", expected |-> op[p].expected,
                       update |-> op[p].update, version |-> known[p]])
  /\ UNCHANGED <<promised, accepted, msgs, round, known, knownVal, seq, inst, pval, prop>>

(* A quorum accepted our proposal: it is chosen; learn it and go on.       *)
Learn(p) ==
  /\ pc[p] = "p2"
  /\ \E Q \in Quorums : \A a \in Q :
       [type |-> "2b", inst |-> inst[p], bal |-> BallotOf(p), val |-> prop[p], acc |-> a] \in msgs
  /\ known' = [known EXCEPT ![p] = inst[p]]
  /\ knownVal' = [knownVal EXCEPT ![p] = prop[p]]
  /\ pc' = [pc EXCEPT ![p] = "step"]
  /\ UNCHANGED <<promised, accepted, msgs, round, seq, op, inst, pval, prop, lastResult>>

---------------------------------------------------------------------------

Next ==
  \/ \E p \in Proposers :
       \/ \E e \in 0..(MaxVersion - 1), d \in Values : BeginWrite(p, e, d)
       \/ BeginRead(p)
       \/ WriteStep(p) \/ ReadStep(p) \/ Abandon(p)
       \/ Phase2a(p) \/ NothingAccepted(p) \/ Learn(p)
  \/ \E a \in Acceptors :
       Phase1b(a) \/ RejectPrepare(a) \/ Phase2b(a) \/ RejectAccept(a)

Spec == Init /\ [][Next]_vars

---------------------------------------------------------------------------
(* Safety.                                                                 *)

(* At most one value chosen per instance: at most one chain per version.  *)
ChosenValues(i) == {v \in {m.val : m \in {n \in msgs : n.type = "2b" /\ n.inst = i}} : ChosenIn(i, v)}
OneValuePerInstance ==
  \A i \in Instances : Cardinality(ChosenValues(i)) <= 1

(* Versions are gapless: a value is proposed in i > 1 only once i-1 is    *)
(* chosen (hence nothing is ever chosen in i without i-1).                 *)
GaplessVersions ==
  \A m \in msgs : (m.type = "2a" /\ m.inst > 1) => IsChosen(m.inst - 1)

(* What a proposer knows is true.                                          *)
KnownIsChosen ==
  \A p \in Proposers : known[p] > 0 => ChosenIn(known[p], knownVal[p])

(* WriteIf is acknowledged only if its update is chosen at expected+1;     *)
(* a conflict is reported only if it is not.                               *)
WriteAckOnlyIfChosen ==
  \A p \in Proposers :
    /\ lastResult[p].kind = "written" =>
         /\ lastResult[p].version = lastResult[p].expected + 1
         /\ ChosenIn(lastResult[p].expected + 1, lastResult[p].update)
    /\ lastResult[p].kind = "conflict" =>
         ~ ChosenIn(lastResult[p].expected + 1, lastResult[p].update)

(* A read returns a chosen version with its value.                         *)
ReadReturnsChosen ==
  \A p \in Proposers :
    lastResult[p].kind = "read" /\ lastResult[p].version > 0 =>
      ChosenIn(lastResult[p].version, lastResult[p].value)

(* Acceptor local invariant: never accepted above the promise.             *)
AcceptedBelowPromise ==
  \A a \in Acceptors, i \in Instances : LessEq(accepted[a][i].bal, promised[a][i])

Safety == /\ TypeOK /\ OneValuePerInstance /\ GaplessVersions /\ KnownIsChosen
          /\ WriteAckOnlyIfChosen /\ ReadReturnsChosen /\ AcceptedBelowPromise

---------------------------------------------------------------------------
(* Liveness (model MCMetaStorePaxosLive): without timeouts -- no Abandon,  *)
(* the network loses nothing (msgs only grows) -- and with weak fairness   *)
(* on the proposers' and acceptors' steps, a write_if eventually returns:  *)
(* a lone proposer decides.  Reads are left out of LiveNext: each read     *)
(* spends rounds, which the model bounds (MaxRound).                       *)

LiveNext ==
  \/ \E p \in Proposers :
       \/ \E e \in 0..(MaxVersion - 1), d \in Values : BeginWrite(p, e, d)
       \/ WriteStep(p) \/ Phase2a(p) \/ NothingAccepted(p) \/ Learn(p)
  \/ \E a \in Acceptors :
       Phase1b(a) \/ RejectPrepare(a) \/ Phase2b(a) \/ RejectAccept(a)

LiveSpec ==
  /\ Init /\ [][LiveNext]_vars
  /\ \A p \in Proposers : WF_vars(WriteStep(p) \/ Phase2a(p) \/ NothingAccepted(p) \/ Learn(p))
  /\ \A a \in Acceptors : WF_vars(Phase1b(a) \/ Phase2b(a))

WriteReturns == \A p \in Proposers : op[p].kind = "write" ~> pc[p] = "idle"

=============================================================================
