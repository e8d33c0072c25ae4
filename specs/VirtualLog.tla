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
(* With Migrate (issue 19: delos_ref/migrate.py, delos_ref/loglet/cold.py, *)
(* delos_ref/loglet/skip.py):                                              *)
(*  cold[l]              the cold copy of loglet l's        migrate        *)
(*                       segment (ColdLogletConfig, files)  ColdWrite      *)
(*  Copy                 migrate_segment: copy the entries  ColdWrite      *)
(*  Verify               verify_copy: read back, compare    ColdVerified   *)
(*  Modify (CopyReady)   install: reconfig_modify to cold   ColdInstalled  *)
(*  Rot                  a cold file goes bad (its SHA-256  (fault)        *)
(*                       check fails every read)                           *)
(*  Skip                 skip_entry: reconfig_modify to a   Skip           *)
(*                       skip wrapper config                               *)
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
    MaxAppends,   \* appends per client (each with its own id)
    Migrate       \* TRUE: cold copies, migration and skip (issue 19; see "Migration")

ASSUME MaxVersion \in Nat /\ MaxVersion > 0 /\ MaxPos \in Nat /\ MaxAppends \in Nat
ASSUME Migrate \in BOOLEAN

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
    flying,       \* entries sent whose reply was lost: [id, loglet]; they may land
    cold,         \* cold[l]: the cold copy of loglet l's closed segment (Migrate only)
    skipped       \* history: the skips installed, [vpos, version] (Migrate only)

vars == <<hist, lLog, lSealed, acked, cache, rpc, rTail, won, next, app, flying, cold, skipped>>

Loglets == 1..MaxVersion
VPos == 0..(MaxVersion * MaxPos)
LPos == 0..(MaxPos - 1)
Segments == [start : VPos, stop : VPos, open : BOOLEAN, loglet : Loglets, cfg : {"hot", "cold"},
             skip : SUBSET LPos]
Chains == Seq(Segments)
Ids == Clients \X (1..MaxAppends)
Marker == <<"skipped", 0>>    \* what a skipped position reads as (no id has seq 0)
Garbage == <<"garbage", 0>>   \* what the bytes of a corrupt cold file decode to
(* A cold copy: the entries of loglet l's segment [start, stop), as written *)
(* (ids); st "copied" until verified; ok: the file's checksum still holds. *)
Copies == [st : {"none", "copied", "verified"}, start : VPos, stop : VPos, ids : Seq(Ids), ok : BOOLEAN]
NoCopy == [st |-> "none", start |-> 0, stop |-> 0, ids |-> <<>>, ok |-> TRUE]
Entries == [vpos : VPos, loglet : Loglets, lpos : 0..MaxPos, id : Ids]
Apps == [st : {"idle", "ready", "flight"}, loglet : Loglets, lo : 0..MaxPos]
lTail == [l \in Loglets |-> Len(lLog[l])]   \* loglet l's tail: entries [0, lTail[l]) written
(* The id of c's append in progress: a fresh one when c is idle.         *)
MyId(c) == <<c, IF app[c].st = "idle" THEN next[c] + 1 ELSE next[c]>>
Idle == [st |-> "idle", loglet |-> 1, lo |-> 0]    \* no append in progress
Ready == [st |-> "ready", loglet |-> 1, lo |-> 0]  \* to be sent to the active segment

InitChain == <<[start |-> 0, stop |-> 0, open |-> TRUE, loglet |-> 1, cfg |-> "hot", skip |-> {}]>>
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
  /\ cold \in [Loglets -> Copies]
  /\ skipped \subseteq [vpos : VPos, version : 1..MaxVersion]

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
  /\ cold = [l \in Loglets |-> NoCopy]
  /\ skipped = {}

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
      /\ UNCHANGED <<hist, lSealed, cache, rpc, rTail, won, flying, cold, skipped>>

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
      /\ UNCHANGED <<hist, lLog, lSealed, acked, cache, rpc, rTail, won, cold, skipped>>

(* A sent entry lands at the loglet's tail: while it is unsealed, or as a *)
(* zombie after the seal (its client got a sealed error or no answer),    *)
(* so the tail may still grow after the seal and racing check_tails may  *)
(* disagree on the stop.                                                  *)
Land(f) ==
  /\ lTail[f.loglet] < MaxPos
  /\ lLog' = [lLog EXCEPT ![f.loglet] = Append(@, f.id)]
  /\ flying' = flying \ {f}
  /\ UNCHANGED <<hist, lSealed, acked, cache, rpc, rTail, won, next, app, cold, skipped>>

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
  /\ UNCHANGED <<hist, lLog, lSealed, cache, rpc, rTail, won, next, flying, cold, skipped>>

(* Fetch the latest chain: after a sealed error (then retry the append),  *)
(* or at the end of a reconfiguration (someone else may have won).        *)
Fetch(c) ==
  /\ rpc[c] \in {"idle", "fetch"}
  /\ cache' = [cache EXCEPT ![c] = Latest]
  /\ rpc' = [rpc EXCEPT ![c] = "idle"]
  /\ UNCHANGED <<hist, lLog, lSealed, acked, rTail, won, next, app, flying, cold, skipped>>

---------------------------------------------------------------------------
(* Reconfiguration.                                                       *)

ExtSeal(c) ==
  /\ rpc[c] = "idle"
  /\ lSealed' = [lSealed EXCEPT ![ActiveOf(cache[c].chain).loglet] = TRUE]
  /\ rpc' = [rpc EXCEPT ![c] = "sealed"]
  /\ UNCHANGED <<hist, lLog, acked, cache, rTail, won, next, app, flying, cold, skipped>>

(* Roll-forward: the active loglet is sealed and no newer chain appeared  *)
(* (its reconfigurer died): install a chain cloning its config.           *)
RollForward(c) ==
  /\ rpc[c] = "idle"
  /\ lSealed[ActiveOf(cache[c].chain).loglet]
  /\ cache[c].version = Len(hist)
  /\ rpc' = [rpc EXCEPT ![c] = "sealed"]
  /\ UNCHANGED <<hist, lLog, lSealed, acked, cache, rTail, won, next, app, flying, cold, skipped>>

ExtCheck(c) ==
  /\ rpc[c] = "sealed"
  /\ LET l == ActiveOf(cache[c].chain).loglet
     IN  /\ lSealed[l]
         /\ rTail' = [rTail EXCEPT ![c] = lTail[l]]
  /\ rpc' = [rpc EXCEPT ![c] = "checked"]
  /\ UNCHANGED <<hist, lLog, lSealed, acked, cache, won, next, app, flying, cold, skipped>>

ExtWrite(c) ==
  /\ rpc[c] = "checked"
  /\ cache[c].version < MaxVersion
  /\ LET ch == cache[c].chain
         n == Len(ch)
         stop == ch[n].start + rTail[c]
         closed == [ch[n] EXCEPT !.stop = stop, !.open = FALSE]
         fresh == [start |-> stop, stop |-> 0, open |-> TRUE,
                   loglet |-> cache[c].version + 1, cfg |-> ch[n].cfg, skip |-> {}]
     IN  WriteIf(c, cache[c].version, Append([ch EXCEPT ![n] = closed], fresh))
  /\ rpc' = [rpc EXCEPT ![c] = "fetch"]
  /\ UNCHANGED <<lLog, lSealed, acked, cache, rTail, next, app, flying, cold, skipped>>

(* Drop the oldest segment (after a trim); no seal.                       *)
Truncate(c) ==
  /\ rpc[c] = "idle"
  /\ Len(cache[c].chain) >= 2
  /\ cache[c].version < MaxVersion
  /\ WriteIf(c, cache[c].version, Tail(cache[c].chain))
  /\ rpc' = [rpc EXCEPT ![c] = "fetch"]
  /\ UNCHANGED <<lLog, lSealed, acked, cache, rTail, next, app, flying, cold, skipped>>

(* Segment i of chain ch may be copied, moved or skipped: it is closed     *)
(* (so its loglet is sealed and its range final: ClosedSegmentsSealed).    *)
Migratable(ch, i) == i < Len(ch)

(* The range a copy of segment seg takes: [start, stop) (for an open        *)
(* segment, which only a broken migrate copies, up to its loglet's tail).  *)
CopyStop(seg) == IF seg.open THEN seg.start + lTail[seg.loglet] ELSE seg.stop

(* The entries a read of loglet l's cold copy returns: every read checks   *)
(* the file's checksum, and a corrupt file gives an error (no entries).    *)
ColdLog(l) == IF cold[l].ok THEN cold[l].ids ELSE <<>>

(* The copy of seg's loglet is verified and covers exactly seg's range.    *)
CopyReady(seg) ==
  /\ cold[seg.loglet].st = "verified"
  /\ cold[seg.loglet].start = seg.start
  /\ cold[seg.loglet].stop = CopyStop(seg)

(* Change the loglet of a sealed segment, never its range: move it to     *)
(* cold storage (cfg "cold": reads are served by its cold copy).  With     *)
(* Migrate, only once that copy is verified and covers the same range      *)
(* (CopyReady); without, the config changes and the entries stay where     *)
(* they are (the model as it was).                                         *)
Modify(c, i) ==
  /\ rpc[c] = "idle"
  /\ Migratable(cache[c].chain, i)
  /\ cache[c].chain[i].cfg = "hot"
  /\ cache[c].version < MaxVersion
  /\ ~ Migrate \/ CopyReady(cache[c].chain[i])
  /\ WriteIf(c, cache[c].version, [cache[c].chain EXCEPT ![i].cfg = "cold"])
  /\ rpc' = [rpc EXCEPT ![c] = "fetch"]
  /\ UNCHANGED <<lLog, lSealed, acked, cache, rTail, next, app, flying, cold, skipped>>

Abort(c) ==
  /\ rpc[c] \in {"sealed", "checked"}
  /\ rpc' = [rpc EXCEPT ![c] = "idle"]
  /\ UNCHANGED <<hist, lLog, lSealed, acked, cache, rTail, won, next, app, flying, cold, skipped>>

---------------------------------------------------------------------------
(* Migration and skip (Migrate; delos-ref migrate / skip, issue 19).      *)
(*                                                                         *)
(* migrate copies a closed segment's entries from its loglet into a cold  *)
(* file (Copy), reads the file back and compares every entry with the     *)
(* loglet's (Verify), then reconfig_modify installs the chain whose       *)
(* segment is served by the cold copy (Modify).  A copy may come out      *)
(* wrong (an entry short); verification finds it and the copy is redone. *)
(* A cold file may go bad at any time (Rot: a disk fault); its checksum   *)
(* then fails and every read of it fails clearly, never with wrong data. *)
(* skip POS (Skip) is a reconfig_modify that marks one position of a      *)
(* closed segment: every read at it through that chain and every later    *)
(* one returns the marker.                                                 *)

(* Copy segment i of c's cached chain into a fresh cold file: all of its  *)
(* entries, or (a faulty copy) all but the last.                          *)
Copy(c, i) ==
  LET seg == cache[c].chain[i]
      n == CopyStop(seg) - seg.start
  IN  /\ Migrate
      /\ Migratable(cache[c].chain, i)
      /\ seg.cfg = "hot"
      /\ cold[seg.loglet].st = "none"
      /\ \E k \in {n - 1, n} \cap Nat :
           cold' = [cold EXCEPT ![seg.loglet] = [st |-> "copied", start |-> seg.start, stop |-> seg.start + n,
                                                 ids |-> SubSeq(lLog[seg.loglet], 1, k), ok |-> TRUE]]
      /\ UNCHANGED <<hist, lLog, lSealed, acked, cache, rpc, rTail, won, next, app, flying, skipped>>

(* Read the copy back and compare every entry with its loglet's: equal,   *)
(* it is verified; not (or the file is corrupt), it is dropped (redo).     *)
Verify(l) ==
  /\ cold[l].st = "copied"
  /\ cold' = [cold EXCEPT ![l] = IF ColdLog(l) = SubSeq(lLog[l], 1, cold[l].stop - cold[l].start)
                                   THEN [@ EXCEPT !.st = "verified"]
                                   ELSE NoCopy]
  /\ UNCHANGED <<hist, lLog, lSealed, acked, cache, rpc, rTail, won, next, app, flying, skipped>>

(* A cold file goes bad (a disk fault): its checksum fails from now on.    *)
Rot(l) ==
  /\ cold[l].st # "none"
  /\ cold[l].ok
  /\ cold' = [cold EXCEPT ![l].ok = FALSE]
  /\ UNCHANGED <<hist, lLog, lSealed, acked, cache, rpc, rTail, won, next, app, flying, skipped>>

(* skip: reconfig_modify marks local position k of closed segment i; the  *)
(* history variable skipped records it, with its version, if it is       *)
(* installed.                                                              *)
Skip(c, i, k) ==
  LET seg == cache[c].chain[i]
  IN  /\ Migrate
      /\ rpc[c] = "idle"
      /\ Migratable(cache[c].chain, i)
      /\ k < CopyStop(seg) - seg.start
      /\ k \notin seg.skip
      /\ cache[c].version < MaxVersion
      /\ WriteIf(c, cache[c].version, [cache[c].chain EXCEPT ![i].skip = @ \cup {k}])
      /\ skipped' = IF Len(hist) = cache[c].version
                       THEN skipped \cup {[vpos |-> seg.start + k, version |-> Len(hist) + 1]}
                       ELSE skipped
      /\ rpc' = [rpc EXCEPT ![c] = "fetch"]
      /\ UNCHANGED <<lLog, lSealed, acked, cache, rTail, next, app, flying, cold>>

---------------------------------------------------------------------------

Next ==
  \/ \E c \in Clients :
       \/ AppendEntry(c) \/ SendUnknown(c) \/ Resolve(c) \/ Fetch(c)
       \/ ExtSeal(c) \/ RollForward(c) \/ ExtCheck(c) \/ ExtWrite(c)
       \/ Truncate(c) \/ Abort(c)
       \/ \E i \in 1..MaxVersion : Modify(c, i)
       \/ \E i \in 1..MaxVersion : i <= Len(cache[c].chain) /\ Copy(c, i)
       \/ \E i \in 1..MaxVersion : i <= Len(cache[c].chain) /\ \E k \in LPos : Skip(c, i, k)
  \/ \E f \in flying : Land(f)
  \/ \E l \in Loglets : Verify(l) \/ Rot(l)

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
(* the active one.  With Migrate, a cold segment is read from its cold    *)
(* copy (a corrupt one reads nothing), and a skipped position reads as    *)
(* the marker.                                                            *)
SegLog(seg) == IF Migrate /\ seg.cfg = "cold" THEN ColdLog(seg.loglet) ELSE lLog[seg.loglet]
Readable(seg, p) ==
  /\ seg.start <= p
  /\ p - seg.start < Len(SegLog(seg))
  /\ (seg.open \/ p < seg.stop)
IdAt(seg, p) == IF p - seg.start \in seg.skip THEN Marker ELSE SegLog(seg)[p - seg.start + 1]
Holding(id) ==
  LET ch == hist[Len(hist)] IN
  {p \in VPos : \E i \in 1..Len(ch) : Readable(ch[i], p) /\ IdAt(ch[i], p) = id}

(* Exactly-once appends: every client entry is at most once in the       *)
(* readable log ...                                                       *)
NoDuplicates == \A c \in Clients : \A n \in 1..MaxAppends : Cardinality(Holding(<<c, n>>)) <= 1

(* ... and an acknowledged entry (not truncated away) is exactly at its   *)
(* acknowledged position: not lost, not moved, not also elsewhere.  Two   *)
(* exceptions, both Migrate's and both deliberate: a position an operator *)
(* skipped (it reads as the marker: SkipSeenByAll), and one in a cold     *)
(* segment whose file went bad (a disk fault: reads of it fail, never     *)
(* return another entry: ReadsAgree).  Without Migrate there are none.    *)
SkippedPos(p) == \E s \in skipped : s.vpos = p
ColdFileBad(p) ==
  LET ch == hist[Len(hist)] IN
  \E i \in 1..Len(ch) : Covers(ch[i], p) /\ ch[i].cfg = "cold" /\ ~ cold[ch[i].loglet].ok
AckedOnce ==
  \A e \in acked : e.vpos >= hist[Len(hist)][1].start =>
    \/ Holding(e.id) = {e.vpos}
    \/ Migrate /\ (SkippedPos(e.vpos) \/ ColdFileBad(e.vpos)) /\ Holding(e.id) = {}

Safety == /\ TypeOK /\ OneChainPerVersion /\ SegmentsContiguous /\ ClosedSegmentsSealed
          /\ AckedInPlace /\ UniquePositions /\ AppendsToActive /\ NoDuplicates /\ AckedOnce

---------------------------------------------------------------------------
(* Safety of migration and skip (MCVirtualLogMigrate).                    *)

(* reconfig_modify changes a segment's loglet (its cfg) or its skips,     *)
(* never its range: two successive versions of the same length (neither  *)
(* an extension, which adds a segment, nor a truncation, which drops one)*)
(* have the same segments but for cfg and skip.                           *)
ModifyKeepsRange ==
  \A v \in 2..Len(hist) :
    Len(hist[v]) = Len(hist[v - 1]) =>
      \A i \in 1..Len(hist[v]) :
        /\ hist[v][i].start = hist[v - 1][i].start
        /\ hist[v][i].stop = hist[v - 1][i].stop
        /\ hist[v][i].open = hist[v - 1][i].open
        /\ hist[v][i].loglet = hist[v - 1][i].loglet

(* A chain names a cold copy only for a closed (so sealed) segment, once  *)
(* the copy is verified, covers the segment's range and holds, as         *)
(* written, exactly the loglet's entries of that range.                    *)
ColdCopiesVerified ==
  \A v \in 1..Len(hist) : \A i \in 1..Len(hist[v]) :
    LET seg == hist[v][i]
        cp == cold[seg.loglet]
    IN  seg.cfg = "cold" =>
          /\ i < Len(hist[v])
          /\ lSealed[seg.loglet]
          /\ cp.st = "verified"
          /\ cp.start = seg.start /\ cp.stop = seg.stop
          /\ cp.ids = SubSeq(lLog[seg.loglet], 1, seg.stop - seg.start)

(* Readers may read a migrated segment from either loglet: through any    *)
(* version of the chain (a reader's cache may be stale: before the        *)
(* migration it reads the LogServers, after it the cold copy), a read of  *)
(* an acknowledged position of a closed segment returns the acknowledged  *)
(* entry, or the marker where that version skips it, or fails (a corrupt  *)
(* cold file): never another entry.                                        *)
ReadsAgree ==
  \A v \in 1..Len(hist) : \A i \in 1..(Len(hist[v]) - 1) : \A e \in acked :
    LET seg == hist[v][i] IN
    Covers(seg, e.vpos) =>
      IF Readable(seg, e.vpos)
        THEN IdAt(seg, e.vpos) = IF e.vpos - seg.start \in seg.skip THEN Marker ELSE e.id
        ELSE Migrate /\ seg.cfg = "cold" /\ ~ cold[seg.loglet].ok

(* Skip only replaces an entry of a closed segment (final, sealed), and   *)
(* every reader through the chain that installed it or any later one      *)
(* (not truncated past it) sees the same marker there.  A reader through  *)
(* an older version still reads the entry: a skip is for an entry that no *)
(* replica can play (a poison entry), so none has played it.              *)
SkipSeenByAll ==
  \A s \in skipped :
    /\ \E i \in 1..(Len(hist[s.version]) - 1) : Covers(hist[s.version][i], s.vpos)
    /\ \A v \in s.version..Len(hist) : \A i \in 1..Len(hist[v]) :
         Covers(hist[v][i], s.vpos) =>
           /\ s.vpos - hist[v][i].start \in hist[v][i].skip
           /\ Readable(hist[v][i], s.vpos) => IdAt(hist[v][i], s.vpos) = Marker
=============================================================================
