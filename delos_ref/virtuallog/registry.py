"""The loglet registry: from a segment's ``(kind, params)`` to a live Loglet (docs/design.md §7).

The chain names loglets by kind and opaque params, and the VirtualLog must turn each segment
it routes to into an object with the Loglet API. That is this registry's job, and it is what
makes a *hot swap* possible: to move the active segment from one implementation to another,
an operator runs ``reconfig_extend`` with a segment of another kind, and every client, on its
next sealed error, fetches the chain and builds the new loglet from it here.

A :class:`LogletKind` says, for one kind: the type of its config (a registered message,
encoded into ``Segment.params``), how to build a client of the loglet from it, and how to
*clone* it -- the config roll-forward installs when a reconfiguring client died after
sealing (§3.2: "any client installs a default new chain that clones the config of the
previous active segment"). A clone is the same config under a fresh loglet id: a new
instance on the same servers, since an id, once sealed, is sealed forever.

Kinds here:

* ``"memory"`` -- :class:`MemoryLogletConfig`: a :class:`~delos_ref.loglet.memory.MemoryLoglet`
  looked up by id in a :class:`MemoryLogletStore` shared by the clients of one process
  (tests, notebooks);
* ``"native"`` -- :class:`~delos_ref.loglet.native.NativeLogletConfig`: a
  :class:`~delos_ref.loglet.native.NativeLoglet` client on the given node;
* ``"bootstrap"`` -- :class:`~delos_ref.loglet.bootstrap.BootstrapLogletConfig`: a
  :class:`~delos_ref.loglet.bootstrap.BootstrapLoglet` client on the given node, its entries
  in a register of the Paxos acceptors (a clone: the same acceptors, a fresh id, so a fresh
  register).

* ``"striped"`` -- :class:`~delos_ref.loglet.striped.StripedLogletConfig`: a
  :class:`~delos_ref.loglet.striped.StripedLoglet` over stripes that are themselves segments'
  ``(kind, params)``, each built by this same registry (so a stripe may be of any kind it
  knows). A clone clones every stripe under ids ``<fresh_id>.<j>``; a diagnosis replaces the
  failing stripe by its own successor and clones the others (``striped_successor``).

* ``"cold"`` -- :class:`~delos_ref.loglet.cold.ColdLogletConfig`: a read-only
  :class:`~delos_ref.loglet.cold.ColdLoglet` over files in the cold store the config names
  (opened by a :class:`~delos_ref.loglet.cold.ColdStores`). Only a sealed segment is ever
  cold (``reconfig_modify``), so it has no clone: cloning one is a bug, and raises.
* ``"skip"`` -- :class:`~delos_ref.loglet.skip.SkipLogletConfig`: a sealed segment's loglet
  (built by this registry) with some entries read as skip markers (``delos-ref skip``).

A cluster adds the kinds of its loglet plugins (``delos_ref/plugins.py``: a user's module,
named in ``cluster.json``) in :func:`cluster_registry`.

The registry caches one loglet client per segment, so a client keeps what it learned about a
loglet (the NativeLoglet's ``known_tail``) across operations; a closed segment's stop is
taught to the loglet (``learn_tail``), because every position below it is committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from delos_ref.loglet.api import Loglet
from delos_ref.loglet.bootstrap import BootstrapLoglet, BootstrapLogletConfig, BootstrapOptions
from delos_ref.loglet.cold import COLD_BUGS, ColdLoglet, ColdLogletConfig, ColdStores
from delos_ref.loglet.memory import MemoryLoglet
from delos_ref.loglet.skip import SkipLoglet, SkipLogletConfig
from delos_ref.loglet.native import NativeLoglet, NativeLogletConfig, NativeOptions
from delos_ref.loglet.striped import STRIPED_BUGS, Stripe, StripedLoglet, StripedLogletConfig, StripedOptions, stripe_id
from delos_ref.runtime import Node
from delos_ref.virtuallog.chain import Segment
from transports.codec import decode_value, encode_value, message

MEMORY = "memory"
NATIVE = "native"
BOOTSTRAP = "bootstrap"
STRIPED = "striped"
COLD = "cold"
SKIP = "skip"
#: Bound on the loglet clients one registry caches (old segments are rarely read).
MAX_CACHED_LOGLETS = 256


class UnknownKind(LookupError):
    """A segment names a loglet kind this registry cannot build (local misconfiguration)."""


@message("virtuallog.memory.config")
class MemoryLogletConfig:
    """An in-process memory loglet, by id."""

    loglet_id: str

    def __post_init__(self) -> None:
        if not 0 < len(self.loglet_id) <= 128:
            raise ValueError("MemoryLogletConfig: loglet_id is 1..128 characters")


@dataclass
class MemoryLogletStore:
    """The memory loglets of one process, by id: what "the same memory loglet" means."""

    loglets: dict[str, MemoryLoglet] = field(default_factory=dict)

    def get(self, loglet_id: str) -> MemoryLoglet:
        return self.loglets.setdefault(loglet_id, MemoryLoglet())


@dataclass(frozen=True, slots=True)
class LogletKind:
    """How to build and clone the loglets of one kind. ``clone(config, fresh_id)``."""

    name: str
    config_type: type
    build: Callable[[Any], Loglet]
    clone: Callable[[Any, str], Any]


class LogletRegistry:
    """Builds (and caches) the loglet of each segment; see the module docstring."""

    def __init__(self, kinds: tuple[LogletKind, ...] = ()) -> None:
        self._kinds: dict[str, LogletKind] = {}
        self._cache: dict[tuple[str, bytes], Loglet] = {}
        for kind in kinds:
            self.add_kind(kind)

    def add_kind(self, kind: LogletKind) -> None:
        assert kind.name not in self._kinds, f"registry: kind {kind.name!r} registered twice"
        self._kinds[kind.name] = kind

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(sorted(self._kinds))

    def kind_of(self, config: Any) -> str:
        """The kind whose config type ``config`` is."""
        for kind in self._kinds.values():
            if type(config) is kind.config_type:
                return kind.name
        raise UnknownKind(f"no registered kind takes a {type(config).__name__}")

    def encode(self, config: Any) -> tuple[str, bytes]:
        """``(kind, params)`` for a segment holding the loglet ``config``."""
        return self.kind_of(config), encode_value(config)

    def config(self, segment: Segment) -> Any:
        """The decoded loglet config of ``segment``."""
        kind = self._kind(segment.kind)
        config = decode_value(segment.params)
        assert type(config) is kind.config_type, f"registry: a {segment.kind} segment holds a {type(config).__name__}"
        return config

    def loglet(self, segment: Segment) -> Loglet:
        """The (cached) loglet client of ``segment``."""
        key = (segment.kind, segment.params)
        loglet = self._cache.get(key)
        if loglet is None:
            if len(self._cache) >= MAX_CACHED_LOGLETS:
                self._cache.pop(next(iter(self._cache)))  # the oldest built: least likely read
            loglet = self._cache[key] = self._kind(segment.kind).build(self.config(segment))
        if segment.stop is not None and hasattr(loglet, "learn_tail"):
            loglet.learn_tail(segment.stop - segment.start)  # a closed segment is committed below its stop
        return loglet

    def build(self, kind: str, params: bytes) -> Loglet:
        """A new (uncached) client of the loglet ``(kind, params)``: a stripe of a striped one."""
        return self.loglet_uncached(Segment(0, None, kind, params))

    def loglet_uncached(self, segment: Segment) -> Loglet:
        return self._kind(segment.kind).build(self.config(segment))

    def clone(self, segment: Segment, fresh_id: str) -> tuple[str, bytes]:
        """``(kind, params)`` of a fresh instance configured like ``segment``'s loglet."""
        kind = self._kind(segment.kind)
        return kind.name, encode_value(kind.clone(self.config(segment), fresh_id))

    def _kind(self, name: str) -> LogletKind:
        kind = self._kinds.get(name)
        if kind is None:
            raise UnknownKind(f"loglet kind {name!r} is not registered (have {list(self.kinds)})")
        return kind


def memory_kind(store: MemoryLogletStore) -> LogletKind:
    return LogletKind(
        MEMORY,
        MemoryLogletConfig,
        build=lambda cfg: store.get(cfg.loglet_id),
        clone=lambda cfg, fresh_id: MemoryLogletConfig(fresh_id),
    )


def native_kind(node: Node, options: NativeOptions = NativeOptions(), bugs: frozenset[str] = frozenset()) -> LogletKind:
    """NativeLoglet clients on ``node``; a clone keeps the sequencer and the LogServers."""
    return LogletKind(
        NATIVE,
        NativeLogletConfig,
        build=lambda cfg: NativeLoglet(node, cfg, options=options, bugs=bugs),
        clone=lambda cfg, fresh_id: NativeLogletConfig(fresh_id, cfg.sequencer, cfg.logservers),
    )


def bootstrap_kind(node: Node, options: BootstrapOptions = BootstrapOptions()) -> LogletKind:
    """BootstrapLoglet clients on ``node``; a clone keeps the acceptors (a new register)."""
    return LogletKind(
        BOOTSTRAP,
        BootstrapLogletConfig,
        build=lambda cfg: BootstrapLoglet(node, cfg, options=options),
        clone=lambda cfg, fresh_id: BootstrapLogletConfig(fresh_id, cfg.acceptors),
    )


def striped_kind(registry: LogletRegistry, node: Node | None = None, options: StripedOptions = StripedOptions(), bugs: frozenset[str] = frozenset()) -> LogletKind:
    """StripedLoglet clients whose stripes ``registry`` builds (trace events on ``node``)."""
    emit = None
    if node is not None:
        emit = lambda event, **fields: node.trace.emit(node.node_id, "loglet", event, **fields)  # noqa: E731
    bugs = frozenset(bugs) & set(STRIPED_BUGS)

    def build(cfg: StripedLogletConfig) -> StripedLoglet:
        stripes = [registry.build(s.kind, s.params) for s in cfg.stripes]
        successor = lambda replacements, fresh_id: striped_successor(registry, cfg, replacements, fresh_id)  # noqa: E731
        return StripedLoglet(cfg.loglet_id, stripes, options=options, bugs=bugs, successor=successor, emit=emit)

    return LogletKind(STRIPED, StripedLogletConfig, build=build, clone=lambda cfg, fresh_id: striped_successor(registry, cfg, {}, fresh_id))


def cold_kind(stores: ColdStores, node: Node | None = None, bugs: frozenset[str] = frozenset()) -> LogletKind:
    """ColdLoglet clients over the stores ``stores`` opens (trace events on ``node``)."""
    emit = None
    if node is not None:
        emit = lambda event, **fields: node.trace.emit(node.node_id, "loglet", event, **fields)  # noqa: E731
    bugs = frozenset(bugs) & set(COLD_BUGS)

    def clone(cfg: ColdLogletConfig, fresh_id: str) -> Any:
        raise ValueError(f"cold loglet {cfg.loglet_id} is read-only: a cold segment is never active, so never cloned")

    return LogletKind(COLD, ColdLogletConfig, build=lambda cfg: ColdLoglet(cfg, stores.open(cfg.store), bugs=bugs, emit=emit), clone=clone)


def skip_kind(registry: LogletRegistry) -> LogletKind:
    """SkipLoglets over inner loglets ``registry`` builds. Never active, so never cloned."""

    def clone(cfg: SkipLogletConfig, fresh_id: str) -> Any:
        raise ValueError("a segment with skipped entries is sealed: never active, so never cloned")

    return LogletKind(SKIP, SkipLogletConfig, build=lambda cfg: SkipLoglet(cfg, registry.build(cfg.inner_kind, cfg.inner_params)), clone=clone)


def striped_successor(registry: LogletRegistry, cfg: StripedLogletConfig, replacements: dict[int, Any], fresh_id: str) -> StripedLogletConfig:
    """A striped loglet ``fresh_id`` like ``cfg``: stripe j is ``replacements[j]`` (an inner
    config, e.g. a NativeLoglet with a new sequencer) or a clone of ``cfg``'s stripe j."""
    stripes = []
    for j, s in enumerate(cfg.stripes):
        if j in replacements:
            stripes.append(Stripe(*registry.encode(replacements[j])))
        else:
            stripes.append(Stripe(*registry.clone(Segment(0, None, s.kind, s.params), stripe_id(fresh_id, j))))
    return StripedLogletConfig(fresh_id, tuple(stripes))


def striped_config(registry: LogletRegistry, loglet_id: str, inner: list[Any] | tuple[Any, ...]) -> StripedLogletConfig:
    """The striped loglet ``loglet_id`` over the inner loglet configs ``inner``, in stripe order."""
    return StripedLogletConfig(loglet_id, tuple(Stripe(*registry.encode(c)) for c in inner))


def default_registry(
    *,
    memory: MemoryLogletStore | None = None,
    node: Node | None = None,
    native_options: NativeOptions = NativeOptions(),
    bootstrap_options: BootstrapOptions = BootstrapOptions(),
    striped_options: StripedOptions = StripedOptions(),
    cold: ColdStores | None = None,
    bugs: frozenset[str] = frozenset(),
) -> LogletRegistry:
    """A registry with the memory kind (if a store is given), the native and bootstrap
    kinds (if a node is), the striped kind over whichever of them it has, and the cold kind
    over the filesystem (or the stores ``cold`` opens; ``bugs``: its bug switches)."""
    kinds = []
    if memory is not None:
        kinds.append(memory_kind(memory))
    if node is not None:
        kinds += [native_kind(node, native_options), bootstrap_kind(node, bootstrap_options)]
    registry = LogletRegistry(tuple(kinds))
    registry.add_kind(striped_kind(registry, node, striped_options))
    registry.add_kind(cold_kind(cold or ColdStores(), node, bugs))
    registry.add_kind(skip_kind(registry))
    return registry


def cluster_registry(
    node: Node, cluster_nodes: list[str] | tuple[str, ...], loglet_modules: list[str] | tuple[str, ...] = (), native_options: NativeOptions = NativeOptions()
) -> LogletRegistry:
    """The registry of a ``delos-ref up`` cluster's clients and nodes: every loglet kind a
    cluster runs, built on ``node``. ``cluster_nodes`` are the cluster's node ids (every node
    hosts a Paxos acceptor, a LogServer and a sequencer, so any of them can serve a native
    or a bootstrap loglet); ``loglet_modules``, its loglet plugins (``delos_ref/plugins.py``),
    whose kinds are added too."""
    from delos_ref import plugins

    assert cluster_nodes, "cluster_registry: a cluster has at least one node"
    registry = LogletRegistry((native_kind(node, native_options), bootstrap_kind(node)))
    registry.add_kind(striped_kind(registry, node))
    registry.add_kind(cold_kind(ColdStores(), node))
    registry.add_kind(skip_kind(registry))
    for plugin in plugins.load_all(loglet_modules):
        registry.add_kind(plugin.loglet_kind(node))
    return registry
