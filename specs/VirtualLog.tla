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
(*  lTail[l], lSealed[l] loglet l: check_tail() -> (tail,   loglet         *)
(*                       sealed), seal()                    CheckTail, Seal*)
(*  acked                VirtualLog.append returned         loglet Commit  *)
(*  rpc, rTail, won      reconfig_* in progress; _install   (none yet)     *)
(*                       returns won                                       *)
(*                                                                         *)
(*  AppendEntry          VirtualLog.append (active segment) Append, Commit *)
(*  ZombieAppend         an append in flight at the seal    Store          *)
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
(* Abstractions.  The register is atomic (MetaStorePaxos shows the Paxos   *)
(* implementation of it).  A loglet is a sealable log: appends succeed     *)
(* only while it is unsealed; after the seal, appends that were in flight  *)
(* may still make its tail grow ("zombies", never acknowledged), so two    *)
(* racing check_tails may disagree on the stop.  NativeLoglet shows that   *)
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
    MaxPos        \* entries per loglet

ASSUME MaxVersion \in Nat /\ MaxVersion > 0 /\ MaxPos \in Nat

VARIABLES
    hist,         \* hist[v]: the chain of register version v; Len(hist) = version
    lTail,        \* lTail[l]: the tail of loglet l (entries [0, lTail[l]) written)
    lSealed,      \* lSealed[l]: loglet l is sealed
    acked,        \* acknowledged appends: [vpos, loglet, lpos]
    cache,        \* cache[c]: [version, chain] client c routes with
    rpc,          \* rpc[c]: "idle" | "sealed" | "checked" | "fetch"
    rTail,        \* rTail[c]: the sealed tail client c read in ExtCheck
    won           \* won[c]: whether c's last reconfiguration won

vars == <<hist, lTail, lSealed, acked, cache, rpc, rTail, won>>

Loglets == 1..MaxVersion
VPos == 0..(MaxVersion * MaxPos)
Segments == [start : VPos, stop : VPos, open : BOOLEAN, loglet : Loglets, cfg : {"hot", "cold"}]
Chains == Seq(Segments)
Entries == [vpos : VPos, loglet : Loglets, lpos : 0..MaxPos]

InitChain == <<[start |-> 0, stop |-> 0, open |-> TRUE, loglet |-> 1, cfg |-> "hot"]>>
Version == Len(hist)
Latest == [version |-> Len(hist), chain |-> hist[Len(hist)]]
Last(s) == s[Len(s)]
ActiveOf(ch) == Last(ch)

TypeOK ==
  /\ hist \in Seq(Chains) /\ 1 <= Len(hist) /\ Len(hist) <= MaxVersion
  /\ lTail \in [Loglets -> 0..MaxPos]
  /\ lSealed \in [Loglets -> BOOLEAN]
  /\ acked \subseteq Entries
  /\ \A c \in Clients : cache[c].version \in 1..MaxVersion /\ cache[c].chain \in Chains
  /\ rpc \in [Clients -> {"idle", "sealed", "checked", "fetch"}]
  /\ rTail \in [Clients -> 0..MaxPos]
  /\ won \in [Clients -> BOOLEAN]

Init ==
  /\ hist = <<InitChain>>
  /\ lTail = [l \in Loglets |-> 0]
  /\ lSealed = [l \in Loglets |-> FALSE]
  /\ acked = {}
  /\ cache = [c \in Clients |-> [version |-> 1, chain |-> InitChain]]
  /\ rpc = [c \in Clients |-> "idle"]
  /\ rTail = [c \in Clients |-> 0]
  /\ won = [c \in Clients |-> FALSE]

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

(* Route to the active segment of the cached chain; succeeds only while   *)
(* its loglet is unsealed (then it is the active segment of every newer   *)
(* chain too: a new chain is only installed after sealing).               *)
AppendEntry(c) ==
  LET seg == ActiveOf(cache[c].chain)
      l == seg.loglet
  IN  /\ ~ lSealed[l]
      /\ lTail[l] < MaxPos
      /\ lTail' = [lTail EXCEPT ![l] = @ + 1]
      /\ acked' = acked \cup {[vpos |-> seg.start + lTail[l], loglet |-> l, lpos |-> lTail[l]]}
      /\ UNCHANGED <<hist, lSealed, cache, rpc, rTail, won>>

(* An append in flight when the loglet was sealed may still land; its     *)
(* client got a sealed error (and fetches, then retries).                 *)
ZombieAppend(l) ==
  /\ lSealed[l]
  /\ lTail[l] < MaxPos
  /\ lTail' = [lTail EXCEPT ![l] = @ + 1]
  /\ UNCHANGED <<hist, lSealed, acked, cache, rpc, rTail, won>>

(* Fetch the latest chain: after a sealed error (then retry the append),  *)
(* or at the end of a reconfiguration (someone else may have won).        *)
Fetch(c) ==
  /\ rpc[c] \in {"idle", "fetch"}
  /\ cache' = [cache EXCEPT ![c] = Latest]
  /\ rpc' = [rpc EXCEPT ![c] = "idle"]
  /\ UNCHANGED <<hist, lTail, lSealed, acked, rTail, won>>

---------------------------------------------------------------------------
(* Reconfiguration.                                                       *)

ExtSeal(c) ==
  /\ rpc[c] = "idle"
  /\ lSealed' = [lSealed EXCEPT ![ActiveOf(cache[c].chain).loglet] = TRUE]
  /\ rpc' = [rpc EXCEPT ![c] = "sealed"]
  /\ UNCHANGED <<hist, lTail, acked, cache, rTail, won>>

(* Roll-forward: the active loglet is sealed and no newer chain appeared  *)
(* (its reconfigurer died): install a chain cloning its config.           *)
RollForward(c) ==
  /\ rpc[c] = "idle"
  /\ lSealed[ActiveOf(cache[c].chain).loglet]
  /\ cache[c].version = Len(hist)
  /\ rpc' = [rpc EXCEPT ![c] = "sealed"]
  /\ UNCHANGED <<hist, lTail, lSealed, acked, cache, rTail, won>>

ExtCheck(c) ==
  /\ rpc[c] = "sealed"
  /\ LET l == ActiveOf(cache[c].chain).loglet
     IN  /\ lSealed[l]
         /\ rTail' = [rTail EXCEPT ![c] = lTail[l]]
  /\ rpc' = [rpc EXCEPT ![c] = "checked"]
  /\ UNCHANGED <<hist, lTail, lSealed, acked, cache, won>>

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
  /\ UNCHANGED <<lTail, lSealed, acked, cache, rTail>>

(* Drop the oldest segment (after a trim); no seal.                       *)
Truncate(c) ==
  /\ rpc[c] = "idle"
  /\ Len(cache[c].chain) >= 2
  /\ cache[c].version < MaxVersion
  /\ WriteIf(c, cache[c].version, Tail(cache[c].chain))
  /\ rpc' = [rpc EXCEPT ![c] = "fetch"]
  /\ UNCHANGED <<lTail, lSealed, acked, cache, rTail>>

(* Change the config of a sealed segment (e.g. move it to cold storage).  *)
Modify(c, i) ==
  /\ rpc[c] = "idle"
  /\ i < Len(cache[c].chain)
  /\ cache[c].chain[i].cfg = "hot"
  /\ cache[c].version < MaxVersion
  /\ WriteIf(c, cache[c].version, [cache[c].chain EXCEPT ![i].cfg = "cold"])
  /\ rpc' = [rpc EXCEPT ![c] = "fetch"]
  /\ UNCHANGED <<lTail, lSealed, acked, cache, rTail>>

Abort(c) ==
  /\ rpc[c] \in {"sealed", "checked"}
  /\ rpc' = [rpc EXCEPT ![c] = "idle"]
  /\ UNCHANGED <<hist, lTail, lSealed, acked, cache, rTail, won>>

---------------------------------------------------------------------------

Next ==
  \/ \E c \in Clients :
       \/ AppendEntry(c) \/ Fetch(c)
       \/ ExtSeal(c) \/ RollForward(c) \/ ExtCheck(c) \/ ExtWrite(c)
       \/ Truncate(c) \/ Abort(c)
       \/ \E i \in 1..MaxVersion : Modify(c, i)
  \/ \E l \in Loglets : ZombieAppend(l)

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

Safety == /\ TypeOK /\ OneChainPerVersion /\ SegmentsContiguous /\ ClosedSegmentsSealed
          /\ AckedInPlace /\ UniquePositions /\ AppendsToActive
=============================================================================
