------------------------- MODULE TraceMetaStorePaxos -------------------------
(***************************************************************************)
(* Trace validation of MetaStorePaxos (Cirstea, Kuppe, Merz et al. 2024;   *)
(* the etcd-raft and CCF trace validators): TLC replays an implementation  *)
(* trace line by line and checks that it is a behaviour of the spec.      *)
(*                                                                         *)
(* Input: the NDJSON trace prepared by `delos-ref trace validate`          *)
(* (delos_ref/tracecheck/tla.py): line 1 is a Config header naming the     *)
(* acceptors; then one line per acceptor / register-client event. Ballots *)
(* are <<round, rank>> (TLA+ has no order on strings: the proposer ids are *)
(* ranked in the order paxos.ballot.Ballot sorts them, ZERO = <<0, 0>>);   *)
(* values are canonical JSON strings, "" for none; a Propose also carries  *)
(* its value's writer, seq and data (TLA+ cannot parse a JSON string).     *)
(*                                                                         *)
(* The variables are MetaStorePaxos's that the trace determines: the       *)
(* acceptors' promised / accepted, and the 1b / 2a / 2b messages (as       *)
(* promises, proposals, votes).  The 1a messages and the proposers' local  *)
(* control state (op, pc, round, inst, pval, prop) are not logged: a       *)
(* Promise shows its Prepare was sent.  Each logged event takes the spec   *)
(* action of the same name with the logged parameters, and the logged     *)
(* acceptor state after it must equal the spec's (the CCF pattern).        *)
(* The Python transcription is delos_ref/tracecheck/metastore.py, with the *)
(* same names in the same order.                                           *)
(*                                                                         *)
(*   event (role)             action                                       *)
(*   Promise (acceptor)       Phase1b                                      *)
(*   RejectPrepare (acceptor) RejectPrepare                                *)
(*   Accepted (acceptor)      Phase2b                                      *)
(*   RejectAccept (acceptor)  RejectAccept                                 *)
(*   Query (acceptor)         QueryStatus (fast read path: stuttering)     *)
(*   Propose (metastore)      Phase2a (with P2c over some quorum)          *)
(*   Chosen (metastore)       Learn                                        *)
(*   WriteDone (metastore)    WriteStep (its outcome branch)               *)
(*   ReadDone (metastore)     ReadStep                                     *)
(*                                                                         *)
(* TLC accepts the trace if it reaches the end (TraceDone) with the        *)
(* invariants holding; a line no action explains is reported as a         *)
(* deadlock at that line (CHECK_DEADLOCK stays on).                        *)
(***************************************************************************)
EXTENDS Naturals, Sequences, FiniteSets, TLC, Json

CONSTANT TraceFile    \* the prepared NDJSON trace

Log == ndJsonDeserialize(TraceFile)
Acceptors == {Log[1].acceptors[k] : k \in DOMAIN Log[1].acceptors}
Instances == {Log[k].instance : k \in {j \in 2..Len(Log) : "instance" \in DOMAIN Log[j]}} \cup {1}
Quorums == {Q \in SUBSET Acceptors : 2 * Cardinality(Q) > Cardinality(Acceptors)}
Zero == <<0, 0>>
None == ""
Less(b, c) == \/ b[1] < c[1]
              \/ b[1] = c[1] /\ b[2] < c[2]
LessEq(b, c) == b = c \/ Less(b, c)
B(x) == <<x[1], x[2]>>

VARIABLES
    l,            \* the next line of the trace
    promised,     \* promised[a][i]
    accepted,     \* accepted[a][i]: [bal, val]
    promises,     \* the 1b messages: [inst, bal, acc, mbal, mval]
    proposals,    \* the 2a messages: [inst, bal, val, writer, seq, data]
    votes,        \* the 2b messages: [inst, bal, val, acc]
    known,        \* known[p] for the proposers that learned something
    conflicts     \* [inst, val] of every write_if that reported conflict

vars == <<l, promised, accepted, promises, proposals, votes, known, conflicts>>

Ev == Log[l]

ChosenIn(i, v) == \E m \in votes :
    /\ m.inst = i /\ m.val = v
    /\ 2 * Cardinality({n.acc : n \in {n \in votes : n.inst = i /\ n.bal = m.bal /\ n.val = v}})
         > Cardinality(Acceptors)
ChosenValues(i) == {m.val : m \in {n \in votes : n.inst = i /\ ChosenIn(i, n.val)}}

Init ==
  /\ l = 2
  /\ promised = [a \in Acceptors |-> [i \in Instances |-> Zero]]
  /\ accepted = [a \in Acceptors |-> [i \in Instances |-> [bal |-> Zero, val |-> None]]]
  /\ promises = {}
  /\ proposals = {}
  /\ votes = {}
  /\ known = [p \in {} |-> 0]
  /\ conflicts = {}

(* The acceptor's logged state after the step equals the spec's.          *)
SlotMatches(a, i, pr, acc) ==
  /\ B(Ev.promised) = pr[a][i]
  /\ B(Ev.accepted_ballot) = acc[a][i].bal
  /\ Ev.accepted_value = acc[a][i].val

---------------------------------------------------------------------------
(* Acceptors.                                                              *)

Phase1b ==
  /\ Ev.event = "Promise"
  /\ LET a == Ev.node
         i == Ev.instance
         b == B(Ev.ballot)
     IN  /\ LessEq(promised[a][i], b)
         /\ promised' = [promised EXCEPT ![a][i] = b]
         /\ SlotMatches(a, i, promised', accepted)
         /\ promises' = promises \cup {[inst |-> i, bal |-> b, acc |-> a,
                                        mbal |-> accepted[a][i].bal, mval |-> accepted[a][i].val]}
  /\ UNCHANGED <<accepted, proposals, votes, known, conflicts>>

RejectPrepare ==
  /\ Ev.event = "RejectPrepare"
  /\ Less(B(Ev.ballot), promised[Ev.node][Ev.instance])
  /\ SlotMatches(Ev.node, Ev.instance, promised, accepted)
  /\ UNCHANGED <<promised, accepted, promises, proposals, votes, known, conflicts>>

Phase2b ==
  /\ Ev.event = "Accepted"
  /\ LET a == Ev.node
         i == Ev.instance
         b == B(Ev.ballot)
         v == Ev.accepted_value
     IN  /\ \E m \in proposals : m.inst = i /\ m.bal = b /\ m.val = v
         /\ LessEq(promised[a][i], b)
         /\ promised' = [promised EXCEPT ![a][i] = b]
         /\ accepted' = [accepted EXCEPT ![a][i] = [bal |-> b, val |-> v]]
         /\ SlotMatches(a, i, promised', accepted')
         /\ votes' = votes \cup {[inst |-> i, bal |-> b, val |-> v, acc |-> a]}
  /\ UNCHANGED <<promises, proposals, known, conflicts>>

RejectAccept ==
  /\ Ev.event = "RejectAccept"
  /\ \E m \in proposals : m.inst = Ev.instance /\ m.bal = B(Ev.ballot)
  /\ Less(B(Ev.ballot), promised[Ev.node][Ev.instance])
  /\ SlotMatches(Ev.node, Ev.instance, promised, accepted)
  /\ UNCHANGED <<promised, accepted, promises, proposals, votes, known, conflicts>>

(* The fast read path's Query: stuttering; the reported top instance and   *)
(* its accepted value must be the spec's.                                  *)
TopOf(a) == LET held == {i \in Instances : accepted[a][i].val # None}
            IN IF held = {} THEN 0 ELSE CHOOSE i \in held : \A j \in held : j <= i
QueryStatus ==
  /\ Ev.event = "Query"
  /\ Ev.top = TopOf(Ev.node)
  /\ Ev.top > 0 => /\ B(Ev.accepted_ballot) = accepted[Ev.node][Ev.top].bal
                   /\ Ev.accepted_value = accepted[Ev.node][Ev.top].val
  /\ UNCHANGED <<promised, accepted, promises, proposals, votes, known, conflicts>>

---------------------------------------------------------------------------
(* Proposers.                                                              *)

(* Phase 2a with the P2c rule over some quorum of promises for the ballot. *)
Phase2a ==
  /\ Ev.event = "Propose"
  /\ LET i == Ev.instance
         b == B(Ev.ballot)
         v == Ev.value
     IN  /\ b[2] = Ev.proposer_rank
         /\ ~ \E m \in proposals : m.inst = i /\ m.bal = b
         /\ i = 1 \/ ChosenValues(i - 1) # {}
         /\ \E Q \in Quorums :
              LET ms == {m \in promises : m.inst = i /\ m.bal = b /\ m.acc \in Q}
                  withVal == {m \in ms : m.mval # None}
              IN  /\ \A a \in Q : \E m \in ms : m.acc = a
                  /\ IF withVal = {}
                       THEN Ev.own
                       ELSE \E m \in withVal : /\ \A n \in withVal : LessEq(n.mbal, m.mbal)
                                               /\ m.mval = v
         /\ proposals' = proposals \cup {[inst |-> i, bal |-> b, val |-> v, writer |-> Ev.writer,
                                           seq |-> Ev.seq, data |-> Ev.data]}
  /\ UNCHANGED <<promised, accepted, promises, votes, known, conflicts>>

Learn ==
  /\ Ev.event = "Chosen"
  /\ LET i == Ev.instance
         b == B(Ev.ballot)
         v == Ev.value
     IN  /\ \E m \in proposals : m.inst = i /\ m.bal = b /\ m.val = v
         /\ 2 * Cardinality({m \in votes : m.inst = i /\ m.bal = b /\ m.val = v}) > Cardinality(Acceptors)
         /\ known' = [p \in DOMAIN known \cup {Ev.proposer} |->
                        IF p = Ev.proposer THEN i ELSE known[p]]
  /\ UNCHANGED <<promised, accepted, promises, proposals, votes, conflicts>>

IsUpdate(v, w, s) == \E m \in proposals : m.val = v /\ m.writer = w /\ m.seq = s
Mine == {v \in ChosenValues(Ev.expected + 1) : IsUpdate(v, Ev.proposer, Ev.seq)}

(* WriteStep's Finish branch: written only if chosen at expected+1.        *)
WriteStep ==
  /\ Ev.event = "WriteDone"
  /\ IF Ev.outcome = "written"
       THEN /\ Ev.version = Ev.expected + 1
            /\ Mine # {}
            /\ UNCHANGED conflicts
       ELSE /\ Mine = {}
            /\ conflicts' = conflicts \cup
                 {[inst |-> Ev.expected + 1, val |-> m.val] :
                    m \in {n \in proposals : n.inst = Ev.expected + 1 /\ IsUpdate(n.val, Ev.proposer, Ev.seq)}}
  /\ UNCHANGED <<promised, accepted, promises, proposals, votes, known>>

ReadStep ==
  /\ Ev.event = "ReadDone"
  /\ Ev.version > 0 => \E m \in proposals : m.val \in ChosenValues(Ev.version) /\ m.data = Ev.data
  /\ UNCHANGED <<promised, accepted, promises, proposals, votes, known, conflicts>>

---------------------------------------------------------------------------

TraceNext ==
  /\ l <= Len(Log)
  /\ l' = l + 1
  /\ \/ Phase2a \/ Learn \/ WriteStep \/ ReadStep
     \/ Phase1b \/ RejectPrepare \/ Phase2b \/ RejectAccept \/ QueryStatus

(* The whole trace is explained: stutter at its end (not a deadlock).     *)
TraceDone ==
  /\ l > Len(Log)
  /\ UNCHANGED vars

Next == TraceNext \/ TraceDone

Spec == Init /\ [][Next]_vars

---------------------------------------------------------------------------
(* The invariants of MetaStorePaxos that the trace's variables determine. *)

OneValuePerInstance == \A i \in Instances : Cardinality(ChosenValues(i)) <= 1
AcceptedBelowPromise == \A a \in Acceptors, i \in Instances : LessEq(accepted[a][i].bal, promised[a][i])
WriteAckOnlyIfChosen == \A c \in conflicts : ~ ChosenIn(c.inst, c.val)
KnownIsChosen == \A p \in DOMAIN known : ChosenValues(known[p]) # {}
=============================================================================
