--------------------------- MODULE TraceVirtualLog ---------------------------
(***************************************************************************)
(* Trace validation of VirtualLog: TLC replays the chains a trace reveals  *)
(* and the appends it acknowledges, and checks that each revealed chain is *)
(* what one of the spec's reconfigurations makes of the version below it,  *)
(* with the spec's invariants holding throughout.                          *)
(*                                                                         *)
(* Input: the NDJSON trace prepared by `delos-ref trace validate`          *)
(* (delos_ref/tracecheck/tla.py): a register version is revealed by a      *)
(* metastore Chosen (instance v) or ReadDone (version v) event, its value  *)
(* decoded into a chain of [start, stop, open, loglet, servers, config]   *)
(* records (config: the segment's kind and a digest of its params)        *)
(* (Reveal); virtuallog AppendAck events (AppendAck); a migrate          *)
(* ColdVerified event (the verified cold copy `loglet` of `source`'s      *)
(* [start, stop): the spec's Verify); and what the spec                    *)
(* abstracts a loglet to: a LogServer's Seal / Repair (ServerSealed; a     *)
(* loglet is lSealed once a majority of its LogServers is), a sealed       *)
(* check_tail's tail (SealedTail: ExtCheck's rTail), the sequencer's       *)
(* Activate (the loglet's LogServers).                                     *)
(*                                                                         *)
(* The register is the spec's hist; a client's cache, rpc and won are not  *)
(* logged.  Revealing hist[v+1] when hist[v] is known (or v when v+1 is)   *)
(* checks the write that installed it: ExtWrite, Truncate (several        *)
(* leading segments at once: several spec steps) or Modify.  A Modify     *)
(* that gives a segment another loglet needs a verified cold copy of the  *)
(* old one over the same range (CopyReady); one that keeps the loglet     *)
(* (a skip marker in its config) does not.  The Python transcription is   *)
(* delos_ref/tracecheck/virtuallog.py.                                     *)
(***************************************************************************)
EXTENDS Naturals, Sequences, FiniteSets, TLC, Json

CONSTANT TraceFile    \* the prepared NDJSON trace

Log == ndJsonDeserialize(TraceFile)
ToSet(seq) == {seq[k] : k \in DOMAIN seq}
Max(S) == CHOOSE m \in S : \A n \in S : n <= m

VARIABLES
    l,            \* the next line of the trace
    hist,         \* hist[v]: the chain of every revealed version v
    sealedBy,     \* <<loglet, server>>: the LogServers that set the seal bit
    rTails,       \* <<loglet, tail>>: the tails of sealed check_tails (ExtCheck)
    acked,        \* acknowledged appends: [vpos, loglet, lpos]
    copies        \* verified cold copies: [loglet, source, start, stop] (Verify)

vars == <<l, hist, sealedBy, rTails, acked, copies>>

Ev == Log[l]

(* Acknowledged appends with no revealed chain would be checked against   *)
(* nothing (AckedInPlace ranges over hist): such a trace is refused.       *)
ASSUME NonVacuous ==
  (\E k \in DOMAIN Log : Log[k].event = "AppendAck") => (\E k \in DOMAIN Log : Log[k].event = "Reveal")

LSealed(seg) ==
  \/ seg.servers = <<>>    \* not a NativeLoglet: its seal is not in the trace
  \/ 2 * Cardinality({s \in ToSet(seg.servers) : <<seg.loglet, s>> \in sealedBy})
       > Cardinality(ToSet(seg.servers))

Contiguous(ch) ==
  /\ Len(ch) >= 1
  /\ ch[Len(ch)].open
  /\ \A i \in 1..(Len(ch) - 1) :
       /\ ~ ch[i].open
       /\ ch[i].start <= ch[i].stop
       /\ ch[i].stop = ch[i + 1].start

ClosedSealed(ch) == \A i \in 1..(Len(ch) - 1) : LSealed(ch[i])

Used(g, w) == \E v \in DOMAIN hist : v < w /\ \E i \in DOMAIN hist[v] : hist[v][i].loglet = g

ExtWrite(old, new, w) ==
  /\ Len(new) = Len(old) + 1
  /\ SubSeq(new, 1, Len(old) - 1) = SubSeq(old, 1, Len(old) - 1)
  /\ LET closed == new[Len(old)]
         fresh == new[Len(new)]
         active == old[Len(old)]
     IN  /\ closed.start = active.start /\ closed.loglet = active.loglet /\ ~ closed.open
         /\ active.servers # <<>> => <<active.loglet, closed.stop - closed.start>> \in rTails
         /\ fresh.start = closed.stop /\ fresh.open
         /\ ~ Used(fresh.loglet, w)

Truncate(old, new) == \E k \in 1..(Len(old) - 1) : SubSeq(old, k + 1, Len(old)) = new

(* A Modify may give a segment loglet g instead of src: g is src, or a     *)
(* verified cold copy of src itself over exactly that range.              *)
CopyOf(g, src, start, stop) ==
  g = src \/ [loglet |-> g, source |-> src, start |-> start, stop |-> stop] \in copies

(* Segment range [start, stop) read from loglet g holds the entries of     *)
(* loglet src: g is src, or a verified cold copy over that range of a      *)
(* loglet that holds them -- a copy of a copy, when a cold segment was     *)
(* skipped (a wrapper: the same loglet) and then migrated again.  `seen`   *)
(* stops a cycle of copies (a bad trace) from recursing forever.  The      *)
(* Python transcription is VirtualLogChecker.holds_loglet.                 *)
RECURSIVE HoldsVia(_, _, _, _, _)
HoldsVia(g, src, start, stop, seen) ==
  \/ g = src
  \/ \E c \in copies : /\ c.loglet = g /\ c.start = start /\ c.stop = stop
                      /\ c.source \notin seen
                      /\ HoldsVia(c.source, src, start, stop, seen \cup {c.source})
HoldsLoglet(g, src, start, stop) == HoldsVia(g, src, start, stop, {g})

Modify(old, new) ==
  /\ Len(old) = Len(new)
  /\ \E i \in 1..(Len(old) - 1) :
       /\ \A j \in DOMAIN old : j # i => old[j] = new[j]
       /\ old[i] # new[i]
       /\ old[i].start = new[i].start /\ old[i].stop = new[i].stop
       /\ CopyOf(new[i].loglet, old[i].loglet, old[i].start, old[i].stop)

Successor(old, new, w) == ExtWrite(old, new, w) \/ Truncate(old, new) \/ Modify(old, new)

Init ==
  /\ l = 2
  /\ hist = [v \in {} |-> <<>>]
  /\ sealedBy = {}
  /\ rTails = {}
  /\ acked = {}
  /\ copies = {}

Activate ==
  /\ Ev.event = "Activate"
  /\ UNCHANGED <<hist, sealedBy, rTails, acked, copies>>

ServerSealed ==
  /\ Ev.event = "ServerSealed"
  /\ sealedBy' = sealedBy \cup {<<Ev.loglet, Ev.node>>}
  /\ UNCHANGED <<hist, rTails, acked, copies>>

ExtCheck ==
  /\ Ev.event = "SealedTail"
  /\ rTails' = rTails \cup {<<Ev.loglet, Ev.tail>>}
  /\ UNCHANGED <<hist, sealedBy, acked, copies>>

(* migrate verified a cold copy (the spec's Verify): of a closed segment  *)
(* of a revealed chain (Migratable), and one range per cold loglet.        *)
Verify ==
  /\ Ev.event = "ColdVerified"
  /\ \E v \in DOMAIN hist : \E i \in 1..(Len(hist[v]) - 1) :
       hist[v][i].loglet = Ev.source /\ hist[v][i].start = Ev.start /\ hist[v][i].stop = Ev.stop
  /\ \A c \in copies : c.loglet = Ev.loglet => c.source = Ev.source /\ c.start = Ev.start /\ c.stop = Ev.stop
  /\ copies' = copies \cup {[loglet |-> Ev.loglet, source |-> Ev.source, start |-> Ev.start, stop |-> Ev.stop]}
  /\ UNCHANGED <<hist, sealedBy, rTails, acked>>

(* A version of the register becomes known: the same chain as before, or  *)
(* a new one that is well formed and the successor of its neighbours.     *)
Reveal ==
  /\ Ev.event = "Reveal"
  /\ LET v == Ev.version
         ch == Ev.chain
     IN  IF v \in DOMAIN hist
           THEN /\ hist[v] = ch
                /\ UNCHANGED hist
           ELSE /\ Contiguous(ch)
                /\ ClosedSealed(ch)
                /\ (v - 1) \in DOMAIN hist => Successor(hist[v - 1], ch, v)
                /\ (v + 1) \in DOMAIN hist => Successor(ch, hist[v + 1], v + 1)
                /\ hist' = hist @@ (v :> ch)
  /\ UNCHANGED <<sealedBy, rTails, acked, copies>>

AppendEntry ==
  /\ Ev.event = "AppendAck"
  /\ Ev.vpos = Ev.start + Ev.lpos
  /\ ~ \E e \in acked : e.vpos = Ev.vpos
  /\ acked' = acked \cup {[vpos |-> Ev.vpos, loglet |-> Ev.loglet, lpos |-> Ev.lpos]}
  /\ UNCHANGED <<hist, sealedBy, rTails, copies>>

TraceNext ==
  /\ l <= Len(Log)
  /\ l' = l + 1
  /\ Activate \/ ServerSealed \/ ExtCheck \/ Verify \/ Reveal \/ AppendEntry

TraceDone ==
  /\ l > Len(Log)
  /\ UNCHANGED vars

Next == TraceNext \/ TraceDone

Spec == Init /\ [][Next]_vars

---------------------------------------------------------------------------
(* VirtualLog's invariants over the revealed chains.                      *)

SegmentsContiguous == \A v \in DOMAIN hist : Contiguous(hist[v])
ClosedSegmentsSealed == \A v \in DOMAIN hist : ClosedSealed(hist[v])
Covers(seg, p) == seg.start <= p /\ (seg.open \/ p < seg.stop)
AckedInPlace ==
  DOMAIN hist # {} =>
    LET ch == hist[Max(DOMAIN hist)] IN
    \A e \in acked :
      e.vpos >= ch[1].start =>
        \E i \in 1..Len(ch) : Covers(ch[i], e.vpos) /\ e.vpos = ch[i].start + e.lpos
                              /\ HoldsLoglet(ch[i].loglet, e.loglet, ch[i].start, ch[i].stop)
UniquePositions == \A e, f \in acked : e.vpos = f.vpos => e = f
=============================================================================
