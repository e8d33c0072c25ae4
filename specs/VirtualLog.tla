----------------------------- MODULE VirtualLog -----------------------------
(***************************************************************************)
(* The VirtualLog (docs/design.md sect. 2-4; OSDI'20 3.2): a chain of      *)
(* segments kept in a versioned register with conditional write, clients   *)
(* that append through a cached copy of the chain, and racing              *)
(* reconfigurers (reconfig_extend, reconfig_truncate, reconfig_modify,     *)
(* roll-forward).                                                          *)
(*                                                                         *)
(* Mapping to the implementation (delos_ref/virtuallog; its own trace     *)
(* event is AppendAck, the others are the register's and the loglets' it  *)
(* is built from; TraceVirtualLog.tla validates traces against this spec): *)
(*                                                                         *)
(*  spec                 implementation                     trace event    *)
(*  -------------------  ---------------------------------  -------------- *)
(*  hist                 MetaStore register holding         paxos Chosen   *)
(*                       chain.encode_chain(Chain)          (instance k)   *)
(*  cache[c]             client.VirtualLog version/chain    paxos ReadDone *)
(*  lLog[l], lSealed[l]  loglet l: its entries' ids (their  loglet         *)
(*                       count is check_tail's tail),       CheckTail, Seal*)
(*                       seal()                                            *)
(*  acked                VirtualLog.append returned         AppendAck      *)
(*  next[c], app[c]      VirtualLog._next_seq; the append   (none)         *)
(*                       in progress (_Doubt: "flight")                    *)
(*  flying               entries sent whose reply was lost  (none)         *)
(*  rpc, rTail, won      reconfig_* in progress; _install   (none yet)     *)
(*                       returns won                                       *)
(*                                                                         *)
(*  AppendEntry          VirtualLog.append (_envelope, then Append, Commit *)
(*                       _append_on answered: active seg.)  AppendAck      *)
(*  SendUnknown          _append_on: may_have_landed error  (none)         *)
(*  Land                 a sent entry lands, perhaps late   Store          *)
(*                       (after the seal: a zombie append)                 *)
(*  Resolve              VirtualLog._resolve / _find        AppendAck      *)
(*  Fetch                VirtualLog.refresh (after a sealed ReadDone       *)
(*                       error: _after_failure; after                      *)
(*                       _install)                                         *)
(*  ExtSeal              reconfig_extend_raw: 1. seal       SealReturned   *)
(*  RollForward          _await_successor: no newer chain   (none)         *)
(*                       -> reconfig_extend_raw (re-seal is idempotent)    *)
(*  ExtCheck             2. check_tail: the sealed tail is  CheckTail      *)
(*                       the old segment's stop                            *)
(*  ExtWrite             Chain.extend + _install: 3. write_if  WriteDone   *)
(*                       4. fetch                                          *)
(*  Truncate             reconfig_truncate: Chain.truncate  WriteDone      *)
(*  Modify               reconfig_modify: Chain.modify      WriteDone      *)
(*  Abort                a reconfigurer dies mid-way        (none)         *)
(*                                                                         *)
(* Exactly-once appends.  Each entry carries its id <<client, seq>> (the   *)
(* envelope of virtuallog/entry.py).  An append whose reply is lost        *)
(* (SendUnknown) may land at any time, before or after the seal (Land).    *)
(* The client resolves it only once its loglet is a closed segment of its  *)
(* cached chain: it looks for the id between the tail it saw when it sent  *)
(* (lo) and the segment's stop; found, that position is acknowledged;      *)
(* absent, it appends again; truncated away, it gives up (unknown).        *)
(* NoDuplicates and AckedOnce say each entry is at most once in the        *)
(* readable log, and an acknowledged one exactly at its position.  The     *)
(* bug switch reappend_unknown (append again without looking) breaks them. *)
(*                                                                         *)
(* Abstractions.  The register is atomic (MetaStorePaxos shows the Paxos   *)
(* implementation of it).  A loglet is a sealable log: appends succeed     *)
(* only while it is unsealed; after the seal, appends that were in flight  *)
(* may still make its tail grow ("zombies": Land after the seal; one that  *)
(* is below the stop is acknowledged only by Resolve), so two racing       *)
(* check_tails may disagree on the stop.  NativeLoglet shows that          *)
(* the sealed tail covers every acknowledged position.  Loglet l is the    *)
(* loglet that the chain of version l installs (loglet 1: the initial      *)
(* chain), so racing extenders of the same version propose the same fresh *)
(* loglet (the implementation draws a fresh id per client and clone;      *)
(* losers' loglets are never used, so this changes nothing observable).   *)
(* Reconfigurers start from their cached chain, which may be stale (the   *)
(* implementation refreshes first: a subset of these behaviours).  A      *)
(* segment's config is reduced to "hot" / "cold" (modify moves a sealed   *)
(* segment to cold storage without changing its contents).  Truncate      *)
(* drops one leading segment at a time (the implementation drops all      *)
(* those wholly below the trim point: several such steps).  A             *)
(* segment is [start, stop) with open = TRUE for the active one (stop is   *)
(* then meaningless).  Reads and trims of loglets are not modelled.        *)
(***************************************************************************)
EXTENDS Naturals, Sequences, FiniteSets, TLC

CONSTANTS
    Clients,      \* clients: append, and reconfigure
    MaxVersion,   \* register versions 1..MaxVersion (also the loglets)
    MaxPos,       \* entries per loglet
    MaxAppends    \* appends per client (each with its own id)

ASSUME MaxVersion \in Nat /\ MaxVersion > 0 /\ MaxPos \in Nat /\ MaxAppends \in Nat

VARIABLES
    hist,         \* hist[v]: the chain of register version v; Len(hist) = version
    lLog,         \* lLog[l]: the ids of loglet l's entries, positions 0.. (its tail: Len)
    lSealed,      \* lSealed[l]: loglet l is sealed
    acked,        \* acknowledged appends: [vpos, loglet, lpos, id]
    cache,        \* cache[c]: [version, chain] client c routes with
    rpc,          \* rpc[c]: "idle" | "sealed" | "checked" | "fetch"
    rTail,        \* rTail[c]: the sealed tail client c read in ExtCheck
    won,          \* won[c]: whether c's last reconfiguration won
    next,         \* next[c]: how many appends client c has started (its last seq)
    app,          \* app[c]: c's append: [st |-> "idle"|"ready"|"flight", loglet, lo]
    flying        \* entries sent whose reply was lost: [id, loglet]; they may land

vars == <<hist, lLog, lSealed, acked, cache, rpc, rTail, won, next, app, flying>>

Loglets == 1..MaxVersion
VPos == 0..(MaxVersion * MaxPos)
Segments == [start : VPos, stop : VPos, open : BOOLEAN, loglet : Loglets, cfg : {"hot", "cold"}]
Chains == Seq(Segments)
Ids == Clients \X (1..MaxAppends)
Entries == [vpos : VPos, loglet : Loglets, lpos : 0..MaxPos, id : Ids]
Apps == [st : {"idle", "ready", "flight"}, loglet : Loglets, lo : 0..MaxPos]
lTail == [l \in Loglets |-> Len(lLog[l])]   \* loglet l's tail: entries [0, lTail[l]) written
(* The id of c's append in progress: a fresh one when c is idle.         *)
MyId(c) == <<c, IF app[c].st = "idle" THEN next[c] + 1 ELSE next[c]>>
Idle == [st |-> "idle", loglet |-> 1, lo |-> 0]    \* no append in progress
Ready == [st |-> "ready", loglet |-> 1, lo |-> 0]  \* to be sent to the active segment

InitChain == <<[start |-> 0, stop |-> 0, open |-> TRUE, loglet |-> 1, cfg |-> "hot"]>>
Version == Len(hist)
Latest == [version |-> Len(hist), chain |-> hist[Len(hist)]]
Last(s) == s[Len(s)]
ActiveOf(ch) == Last(ch)

TypeOK ==
  /\ hist \in Seq(Chains) /\ 1 <= Len(hist) /\ Len(hist) <= MaxVersion
  /\ lLog \in [Loglets -> Seq(Ids)] /\ \A l \in Loglets : Len(lLog[l]) <= MaxPos
  /\ lSealed \in [Loglets -> BOOLEAN]
  /\ acked \subseteq Entries
  /\ \A c \in Clients : cache[c].version \in 1..MaxVersion /\ cache[c].chain \in Chains
  /\ rpc \in [Clients -> {"idle", "sealed", "checked", "fetch"}]
  /\ rTail \in [Clients -> 0..MaxPos]
  /\ won \in [Clients -> BOOLEAN]
  /\ next \in [Clients -> 0..MaxAppends]
  /\ app \in [Clients -> Apps]
  /\ flying \subseteq [id : Ids, loglet : Loglets]

Init ==
  /\ hist = <<InitChain>>
  /\ lLog = [l \in Loglets |-> <<>>]
  /\ lSealed = [l \in Loglets |-> FALSE]
  /\ acked = {}
  /\ cache = [c \in Clients |-> [version |-> 1, chain |-> InitChain]]
  /\ rpc = [c \in Clients |-> "idle"]
  /\ rTail = [c \in Clients |-> 0]
  /\ won = [c \in Clients |-> FALSE]
  /\ next = [c \in Clients |-> 0]
  /\ app = [c \in Clients |-> Idle]
  /\ flying = {}

(* The conditional write of the register: install ch as version           *)
(* expected+1 iff the current version is expected.                        *)
WriteIf(c, expected, ch) ==
  IF Len(hist) = expected
    THEN /\ hist' = Append(hist, ch)
         /\ won' = [won EXCEPT ![c] = TRUE]
    ELSE /\ UNCHANGED hist
         /\ won' = [won EXCEPT ![c] = FALSE]

---------------------------------------------------------------------------
(* The data path.                                                         *)

(* A client sends an append: its next one (a fresh id, if it has appends  *)
(* left), or the one it resolved as absent ("ready", the same id).        *)
Sending(c) == app[c] = Ready \/ (app[c] = Idle /\ next[c] < MaxAppends)
Sent(c) == next' = [next EXCEPT ![c] = MyId(c)[2]]

(* Route to the active segment of the cached chain; succeeds only while   *)
(* its loglet is unsealed (then it is the active segment of every newer   *)
(* chain too: a new chain is only installed after sealing).               *)
AppendEntry(c) ==
  LET seg == ActiveOf(cache[c].chain)
      l == seg.loglet
  IN  /\ Sending(c)
      /\ ~ lSealed[l]
      /\ lTail[l] < MaxPos
      /\ lLog' = [lLog EXCEPT ![l] = Append(@, MyId(c))]
      /\ acked' = acked \cup {[vpos |-> seg.start + lTail[l], loglet |-> l, lpos |-> lTail[l], id |-> MyId(c)]}
      /\ app' = [app EXCEPT ![c] = Idle]
      /\ Sent(c)
      /\ UNCHANGED <<hist, lSealed, cache, rpc, rTail, won, flying>>

(* The append is sent to the active segment's loglet, and its reply is    *)
(* lost (the sequencer died, or the chain moved on while it was in        *)
(* flight): the entry may land, now or later (Land), or never.  The       *)
(* client remembers where it sent it and lo, the tail when it sent: the   *)
(* entry cannot land below.  (The implementation takes a lower bound of   *)
(* it, the loglet's committed prefix known_readable, and so reads a       *)
(* superset of the range: the id is unique, the answer is the same.)      *)
SendUnknown(c) ==
  LET l == ActiveOf(cache[c].chain).loglet
  IN  /\ Sending(c)
      /\ app' = [app EXCEPT ![c] = [st |-> "flight", loglet |-> l, lo |-> lTail[l]]]
      /\ flying' = flying \cup {[id |-> MyId(c), loglet |-> l]}
      /\ Sent(c)
      /\ UNCHANGED <<hist, lLog, lSealed, acked, cache, rpc, rTail, won>>

(* A sent entry lands at the loglet's tail: while it is unsealed, or as a *)
(* zombie after the seal (its client got a sealed error or no answer),    *)
(* so the tail may still grow after the seal and racing check_tails may  *)
(* disagree on the stop.                                                  *)
Land(f) ==
  /\ lTail[f.loglet] < MaxPos
  /\ lLog' = [lLog EXCEPT ![f.loglet] = Append(@, f.id)]
  /\ flying' = flying \ {f}
  /\ UNCHANGED <<hist, lSealed, acked, cache, rpc, rTail, won, next, app>>

(* Positions of loglet l from lo below stop (loglet positions) holding id. *)
Hits(l, id, lo, stop) == {k \in lo..(stop - 1) : k < lTail[l] /\ lLog[l][k + 1] = id}

(* Resolve an append whose reply was lost (VirtualLog._resolve): only     *)
(* once its loglet is a closed segment of the cached chain (sealed, its   *)
(* stop fixed; the client waits, fetches or rolls forward until then).    *)
(* Found between lo and the stop: acknowledged there.  Absent: append     *)
(* again ("ready").  Its segment truncated away: give up (the outcome     *)
(* stays unknown).                                                        *)
Resolve(c) ==
  LET ch == cache[c].chain
      l == app[c].loglet
      closed == {i \in 1..(Len(ch) - 1) : ch[i].loglet = l}
  IN  /\ app[c].st = "flight"
      /\ ActiveOf(ch).loglet # l
      /\ IF closed = {}
           THEN /\ app' = [app EXCEPT ![c] = Idle]
                /\ UNCHANGED acked
           ELSE LET seg == ch[CHOOSE i \in closed : TRUE]
                    hits == Hits(l, MyId(c), app[c].lo, seg.stop - seg.start)
                IN  IF hits = {}
                      THEN /\ app' = [app EXCEPT ![c] = Ready]
                           /\ UNCHANGED acked
                      ELSE LET k == CHOOSE k \in hits : TRUE
                           IN  /\ acked' = acked \cup {[vpos |-> seg.start + k, loglet |-> l, lpos |-> k, id |-> MyId(c)]}
                               /\ app' = [app EXCEPT ![c] = Idle]
  /\ UNCHANGED <<hist, lLog, lSealed, cache, rpc, rTail, won, next, flying>>

(* Fetch the latest chain: after a sealed error (then retry the append),  *)
(* or at the end of a reconfiguration (someone else may have won).        *)
Fetch(c) ==
  /\ rpc[c] \in {"idle", "fetch"}
  /\ cache' = [cache EXCEPT ![c] = Latest]
  /\ rpc' = [rpc EXCEPT ![c] = "idle"]
  /\ UNCHANGED <<hist, lLog, lSealed, acked, rTail, won, next, app, flying>>

---------------------------------------------------------------------------
(* Reconfiguration.                                                       *)

ExtSeal(c) ==
  /\ rpc[c] = "idle"
  /\ lSealed' = [lSealed EXCEPT ![ActiveOf(cache[c].chain).loglet] = TRUE]
  /\ rpc' = [rpc EXCEPT ![c] = "sealed"]
  /\ UNCHANGED <<hist, lLog, acked, cache, rTail, won, next, app, flying>>

(* Roll-forward: the active loglet is sealed and no newer chain appeared  *)
(* (its reconfigurer died): install a chain cloning its config.           *)
RollForward(c) ==
  /\ rpc[c] = "idle"
  /\ lSealed[ActiveOf(cache[c].chain).loglet]
  /\ cache[c].version = Len(hist)
  /\ rpc' = [rpc EXCEPT ![c] = "sealed"]
  /\ UNCHANGED <<hist, lLog, lSealed, acked, cache, rTail, won, next, app, flying>>

ExtCheck(c) ==
  /\ rpc[c] = "sealed"
  /\ LET l == ActiveOf(cache[c].chain).loglet
     IN  /\ lSealed[l]
         /\ rTail' = [rTail EXCEPT ![c] = lTail[l]]
  /\ rpc' = [rpc EXCEPT ![c] = "checked"]
  /\ UNCHANGED <<hist, lLog, lSealed, acked, cache, won, next, app, flying>>

ExtWrite(c) ==
  /\ rpc[c] = "checked"
  /\ cache[c].version < MaxVersion
  /\ LET ch == cache[c].chain
         n == Len(ch)
         stop == ch[n].start + rTail[c]
         closed == [ch[n] EXCEPT !.stop = stop, !.open = FALSE]
         fresh == [start |-> stop, stop |-> 0, open |-> TRUE,
                   loglet |-> cache[c].version + 1, cfg |-> ch[n].cfg]
     IN  WriteIf(c, cache[c].version, Append([ch EXCEPT ![n] = closed], fresh))
  /\ rpc' = [rpc EXCEPT ![c] = "fetch"]
  /\ UNCHANGED <<lLog, lSealed, acked, cache, rTail, next, app, flying>>

(* Drop the oldest segment (after a trim); no seal.                       *)
Truncate(c) ==
  /\ rpc[c] = "idle"
  /\ Len(cache[c].chain) >= 2
  /\ cache[c].version < MaxVersion
  /\ WriteIf(c, cache[c].version, Tail(cache[c].chain))
  /\ rpc' = [rpc EXCEPT ![c] = "fetch"]
  /\ UNCHANGED <<lLog, lSealed, acked, cache, rTail, next, app, flying>>

(* Change the config of a sealed segment (e.g. move it to cold storage).  *)
Modify(c, i) ==
  /\ rpc[c] = "idle"
  /\ i < Len(cache[c].chain)
  /\ cache[c].chain[i].cfg = "hot"
  /\ cache[c].version < MaxVersion
  /\ WriteIf(c, cache[c].version, [cache[c].chain EXCEPT ![i].cfg = "cold"])
  /\ rpc' = [rpc EXCEPT ![c] = "fetch"]
  /\ UNCHANGED <<lLog, lSealed, acked, cache, rTail, next, app, flying>>

Abort(c) ==
  /\ rpc[c] \in {"sealed", "checked"}
  /\ rpc' = [rpc EXCEPT ![c] = "idle"]
  /\ UNCHANGED <<hist, lLog, lSealed, acked, cache, rTail, won, next, app, flying>>

---------------------------------------------------------------------------

Next ==
  \/ \E c \in Clients :
       \/ AppendEntry(c) \/ SendUnknown(c) \/ Resolve(c) \/ Fetch(c)
       \/ ExtSeal(c) \/ RollForward(c) \/ ExtCheck(c) \/ ExtWrite(c)
       \/ Truncate(c) \/ Abort(c)
       \/ \E i \in 1..MaxVersion : Modify(c, i)
  \/ \E f \in flying : Land(f)

Spec == Init /\ [][Next]_vars

---------------------------------------------------------------------------
(* Safety.                                                                *)

(* At most one chain per version: every client's cached chain is the one *)
(* the register holds for that version.                                   *)
OneChainPerVersion ==
  \A c \in Clients : cache[c].version <= Len(hist) /\ cache[c].chain = hist[cache[c].version]

(* Segments are contiguous, only the last one is open, and every closed  *)
(* segment's loglet is sealed.                                            *)
Contiguous(ch) ==
  /\ Len(ch) >= 1
  /\ ActiveOf(ch).open
  /\ \A i \in 1..(Len(ch) - 1) :
       /\ ~ ch[i].open
       /\ ch[i].start <= ch[i].stop
       /\ ch[i].stop = ch[i + 1].start
SegmentsContiguous == \A v \in 1..Len(hist) : Contiguous(hist[v])
ClosedSegmentsSealed ==
  \A v \in 1..Len(hist) : \A i \in 1..(Len(hist[v]) - 1) : lSealed[hist[v][i].loglet]

(* A segment holds virtual position p.                                    *)
Covers(seg, p) == seg.start <= p /\ (seg.open \/ p < seg.stop)

(* No acknowledged position is lost or moved: each acknowledged entry not *)
(* truncated away lies in the segment of its loglet in the latest chain,  *)
(* at its local position, and below that segment's stop.                  *)
AckedInPlace ==
  LET ch == hist[Len(hist)] IN
  \A e \in acked :
    e.vpos >= ch[1].start =>
      \E i \in 1..Len(ch) :
        /\ Covers(ch[i], e.vpos)
        /\ ch[i].loglet = e.loglet
        /\ e.vpos = ch[i].start + e.lpos

(* Each virtual position is acknowledged at most once.                    *)
UniquePositions == \A e, f \in acked : e.vpos = f.vpos => e = f

(* Appends are routed to the active segment: an unsealed loglet that has *)
(* entries is the latest chain's active loglet.                           *)
AppendsToActive ==
  \A e \in acked : ~ lSealed[e.loglet] => e.loglet = ActiveOf(hist[Len(hist)]).loglet

(* The readable log of the latest chain: virtual position p of segment    *)
(* seg holds the id at its loglet position, below the stop of a closed    *)
(* segment (what lies above is a zombie, never read) or below the tail of *)
(* the active one.                                                        *)
Readable(seg, p) ==
  /\ seg.start <= p
  /\ p - seg.start < lTail[seg.loglet]
  /\ (seg.open \/ p < seg.stop)
IdAt(seg, p) == lLog[seg.loglet][p - seg.start + 1]
Holding(id) ==
  LET ch == hist[Len(hist)] IN
  {p \in VPos : \E i \in 1..Len(ch) : Readable(ch[i], p) /\ IdAt(ch[i], p) = id}

(* Exactly-once appends: every client entry is at most once in the       *)
(* readable log ...                                                       *)
NoDuplicates == \A c \in Clients : \A n \in 1..MaxAppends : Cardinality(Holding(<<c, n>>)) <= 1

(* ... and an acknowledged entry (not truncated away) is exactly at its   *)
(* acknowledged position: not lost, not moved, not also elsewhere.        *)
AckedOnce ==
  \A e \in acked : e.vpos >= hist[Len(hist)][1].start => Holding(e.id) = {e.vpos}

Safety == /\ TypeOK /\ OneChainPerVersion /\ SegmentsContiguous /\ ClosedSegmentsSealed
          /\ AckedInPlace /\ UniquePositions /\ AppendsToActive /\ NoDuplicates /\ AckedOnce
=============================================================================
