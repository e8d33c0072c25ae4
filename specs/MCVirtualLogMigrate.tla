------------------------- MODULE MCVirtualLogMigrate -------------------------
(* Model of VirtualLog with migration to cold storage and skip (Migrate =  *)
(* TRUE): 2 racing clients, each of which appends, reconfigures, migrates  *)
(* and skips; cold files may come out short or go bad.  Constants in       *)
(* MCVirtualLogMigrate.cfg.                                                 *)
EXTENDS VirtualLog, TLC

(* Clients are interchangeable: the symmetry is sound.                     *)
Symm == Permutations(Clients)

(* One client appends (one entry, perhaps with its reply lost, landing   *)
(* as a zombie and resolved); both reconfigure, migrate and skip.  The    *)
(* append interleavings of two appenders are MCVirtualLog's subject; here *)
(* the entry races with migration.  A state in which a second client has  *)
(* begun an append is checked, not expanded.                               *)
OneAppender == Cardinality({c \in Clients : next[c] > 0}) <= 1
=============================================================================
