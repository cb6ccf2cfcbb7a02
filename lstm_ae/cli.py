"""The entry scripts' command line: a ``--help`` that lists only what a script can use, and overrides checked
before Hydra runs.

``--help`` (the template in ``conf/hydra/default.yaml``) lists, through the resolver ``${lstm_ae_groups:}``, each
config group with a one-line description and the options this script offers (``*``: the one chosen), never the
schemas (``schema/*``). :func:`check` runs before ``hydra.main``: a mistyped key or option, a dataset another
script trains on, a task the script's data cannot serve, or a bad value (single runs) stops in one line naming the
closest valid names, exit status 2, before any run or sweep folder exists (in a sweep: before any job)::

    Error: model.hiden_size: no such key; did you mean model.hidden_size?

Which options a script offers is declared once, in :data:`SCRIPTS`; the tasks follow from the data's
``provides`` and each task class's ``needs_labels`` / ``needs_next`` (lstm_ae/tasks.py). A dataset or search
option that no script claims (a new one, docs/extending.md) is offered to every script.
"""
from __future__ import annotations

import difflib
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from omegaconf import DictConfig, ListConfig

CONF = Path(__file__).resolve().parents[1] / "conf"


@dataclass(frozen=True)
class Script:
    file: str  # how it is run, for messages
    dataset: Optional[str]  # its dataset option
    provides: Tuple[str, ...] = ()  # what that data has beyond the sequences: "class labels", "next-step targets"
    searches: Tuple[str, ...] = ()  # its hparams_search options (tuned on its data)


# primary config (conf/<name>.yaml) -> what its script offers
SCRIPTS: Dict[str, Script] = {
    "toy": Script("lstm_ae_toy.py", "toy", (), ("toy_grid", "toy_optuna")),
    "mnist": Script("lstm_ae_mnist.py", "mnist", ("class labels",)),
    "snp500": Script("lstm_ae_snp500.py", "sp500", ("next-step targets",)),
    "series": Script("lstm_ae_series.py", "csv", ("next-step targets",)),
    "nab": Script("python -m bench.nab_search", None, (), ("nab_optuna",)),
}

# the application's config groups, in --help's order, each with its one line
GROUPS: Dict[str, str] = {
    "dataset": "the data",
    "task": "what is trained and measured",
    "model": "the LSTM autoencoder: sizes, initialisation",
    "optimizer": "the optimiser (optimizer.lr: its learning rate)",
    "scheduler": "the learning-rate schedule over the epochs",
    "trainer": "epochs, batch size, device, precision, checkpoints, resume",
    "logger": "where metrics go besides metrics.csv",
    "hparams_search": "a hyperparameter search (with -m)",
}


def script_file(config_name: str) -> str:
    return SCRIPTS[config_name].file if config_name in SCRIPTS else f"--config-name {config_name}"


def _owner(group: str, option: str) -> Optional[str]:
    """The primary config whose script claims ``option`` of ``group`` (dataset, hparams_search), or None."""
    for name, script in SCRIPTS.items():
        if option is not None and (option == script.dataset) if group == "dataset" else (option in script.searches):
            return name
    return None


def task_needs(option: str) -> List[str]:
    """What task ``option`` needs of the data, from its class (``needs_labels``, ``needs_next``); [] if unknown."""
    from hydra.utils import get_class

    from lstm_ae.config import SCHEMAS

    schema = SCHEMAS["task"].get(option)
    if schema is None:
        return []
    cls = get_class(schema._target_)
    return [what for what, flag in (("class labels", "needs_labels"), ("next-step targets", "needs_next"))
            if getattr(cls, flag, False)]


def _provides(dataset: str) -> Optional[Tuple[str, ...]]:
    owner = _owner("dataset", dataset)
    return None if owner is None else SCRIPTS[owner].provides


def offered(config_name: str, group: str, options: Iterable[str], dataset: Optional[str] = None) -> List[str]:
    """The options of ``group`` that the script of ``config_name`` can use (``dataset``: the chosen one)."""
    options = sorted(options)
    script = SCRIPTS.get(config_name)
    if script is None:
        return options
    if group in ("dataset", "hparams_search"):
        return [o for o in options if _owner(group, o) in (None, config_name)]
    if group == "task":
        provides = _provides(dataset or script.dataset)
        return [o for o in options if provides is None or set(task_needs(o)) <= set(provides)]
    return options


def _refusal(config_name: str, group: str, option: str, options: Sequence[str], dataset: Optional[str]) -> Optional[str]:
    """One line if the script of ``config_name`` cannot use ``group=option`` (an existing option), else None."""
    if config_name not in SCRIPTS or option in offered(config_name, group, options, dataset):
        return None
    own = ", ".join(offered(config_name, group, options, dataset)) or "none"
    if group == "task":
        data = dataset or SCRIPTS[config_name].dataset
        missing = [n for n in task_needs(option) if n not in (_provides(data) or ())]
        return (f"task={option} needs {' and '.join(missing)}, which dataset={data} does not have; "
                f"{script_file(config_name)}'s tasks: {own}")
    owner = _owner(group, option)
    return (f"{group}={option} belongs to {script_file(owner)}; {script_file(config_name)}'s {group}: {own}"
            if owner else f"{group}={option}: not an option of {script_file(config_name)} ({group}: {own})")


# --------------------------------------------------------------------------- --help
def groups_help() -> str:
    """The resolver ``${lstm_ae_groups:}`` of the help template (registered by lstm_ae.config): one line per
    group this script can use."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    config_name, choices = hydra_cfg.job.config_name, hydra_cfg.runtime.choices
    loader = GlobalHydra.instance().config_loader()
    groups = [g for g in loader.list_groups("") if g in choices and g != "hydra"]  # the primary config's (no schema/*)
    rows = []
    for group in sorted(groups, key=lambda g: (list(GROUPS).index(g) if g in GROUPS else len(GROUPS), g)):
        options = offered(config_name, group, loader.get_group_options(group), choices.get("dataset"))
        if options:
            listed = ", ".join(o + ("*" if o == choices.get(group) else "") for o in options)
            rows.append((f"{group}: {listed}", GROUPS.get(group, "")))
    width = max((len(left) for left, _ in rows), default=0)
    return "\n".join(f"{left:<{width}}  {about}".rstrip() for left, about in rows)


# ---------------------------------------------------------------------- the check
def _closest(word: str, candidates: Iterable[str]) -> List[str]:
    """The candidates nearest to ``word`` (difflib's ratio >= 0.6, within 0.05 of the best), best first."""
    scored = sorted(((difflib.SequenceMatcher(None, word, c).ratio(), c) for c in set(candidates)),
                    key=lambda rc: (-rc[0], rc[1]))
    if not scored or scored[0][0] < 0.6:
        return []
    return [c for r, c in scored if r >= scored[0][0] - 0.05][:3]


def _node(cfg: DictConfig, key: str) -> Tuple[bool, object, str]:
    """(whether ``key`` is in ``cfg``, the deepest node on its path that is, that node's dotted key)."""
    node: object = cfg
    seen: List[str] = []
    for part in key.split("."):
        try:
            if isinstance(node, DictConfig) and not node._is_none() and part in node.keys():
                node = node._get_node(part)
            elif isinstance(node, ListConfig) and part.isdigit() and int(part) < len(node):
                node = node._get_node(int(part))
            else:
                return False, node, ".".join(seen)
        except Exception:  # a None or missing container on the path
            return False, node, ".".join(seen)
        seen.append(part)
    return True, node, key


def _keys(cfg: DictConfig, prefix: str = "") -> Iterable[str]:
    for k in cfg.keys():
        path = f"{prefix}{k}"
        yield path
        child = cfg._get_node(k)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_missing():
            yield from _keys(child, f"{path}.")


def _key_problem(cfg: DictConfig, override, selected: Dict[str, str]) -> Optional[str]:
    """One line if ``override``'s key is not in ``cfg`` (or is, for a ``+key``); ``selected``: the group options
    ``cfg`` was composed with."""
    key = override.key_or_group
    exists, parent, parent_key = _node(cfg, key)
    if exists:
        return f"+{key}: {key} is already a key; drop the +: {override.input_line[1:]}" if override.is_add() else None
    top = key.split(".")[0]
    where = f" with {top}={selected[top]}" if top in selected else ""
    if "." in key and parent_key == key.rsplit(".", 1)[0] and isinstance(parent, DictConfig):
        siblings = [str(k) for k in parent.keys()]  # a mistyped last part: the parent's keys
        close = [f"{parent_key}.{c}" for c in _closest(key.rsplit(".", 1)[1], siblings)]
        rest = f"{parent_key} has {', '.join(siblings)}"
    else:
        depth = key.count(".")
        close = _closest(key, [k for k in _keys(cfg) if k.count(".") == depth])
        rest = f"the config's keys are {', '.join(str(k) for k in cfg.keys())} (and theirs)"
    return f"{key}: no such key{where}; " + (f"did you mean {' or '.join(close)}?" if close else rest)


def _is_glob(override) -> bool:
    from hydra.core.override_parser.types import ValueType

    return override.value_type == ValueType.GLOB_CHOICE_SWEEP


def _values(override) -> Optional[List[str]]:
    """The options a group override selects (each of a sweep's), or None where they cannot be listed."""
    if override.is_delete():
        return None
    if override.is_sweep_override():
        return list(override.sweep_string_iterator()) if override.is_discrete_sweep() and not _is_glob(override) else None
    value = override.value()
    return [value] if isinstance(value, str) else None


def _one_line(err: Exception) -> str:
    """Hydra's error (and its OmegaConf cause) in one line."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    lines = list(itertools.takewhile(lambda line: not line.startswith("Config search path"), lines)) or [type(err).__name__]
    cause = getattr(err.__cause__, "msg", None) or (str(err.__cause__) if err.__cause__ else "")
    if cause.strip():
        return f"{lines[0].rstrip('.')}: {cause.strip().splitlines()[0]}"
    return "; ".join(lines)


def problem(config_name: str, overrides: Sequence[str], multirun: bool = False) -> Optional[str]:
    """The first problem with ``overrides`` of the primary config ``config_name`` as one line, or None.

    Hydra's own overrides (``hydra.*``, ``hydra/*``) are Hydra's to check. Keys are looked up in the config
    composed with each combination of the group options given (a sweep over ``optimizer=adam,sgd`` checks
    ``optimizer.betas`` against both); single runs are then composed with every override, values included.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException, OverrideParseException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except OverrideParseException as err:
        return ": ".join(line.strip() for line in str(err).splitlines()[:2] if line.strip())
    parsed = [o for o in parsed if o.key_or_group != "hydra" and not o.is_hydra_override()]
    if not parsed or GlobalHydra.instance().is_initialized():
        return None
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        groups = {g for g in loader.list_groups("") if g not in ("hydra", "schema")}
        selected: Dict[str, List[str]] = {}
        prefixes: Dict[str, str] = {}
        keys = []
        for o in parsed:
            if o.key_or_group not in groups:
                keys.append(o)
                continue
            values = _values(o)
            if values is None:
                continue
            group = o.key_or_group
            options = loader.get_group_options(group)
            for value in values:
                if value not in options and value != "null":
                    close = [f"{group}={c}" for c in _closest(value, options)]
                    hint = f"did you mean {' or '.join(close)}?" if close else f"{group}'s options: {', '.join(sorted(options))}"
                    return f"{group}={value}: no such option; {hint}"
            selected[group], prefixes[group] = values, o.input_line[: len(o.input_line) - len(o.input_line.lstrip("+~"))]
        datasets = selected.get("dataset", [None])
        for group, values in selected.items():
            options = loader.get_group_options(group)
            for value, dataset in itertools.product(values, datasets if group == "task" else [None]):
                refusal = _refusal(config_name, group, value, options, dataset)
                if refusal:
                    return refusal
        if keys:
            combos = list(itertools.islice(itertools.product(*selected.values()), 64))
            for combo in combos:
                chosen = [f"{prefixes[g]}{g}={v}" for g, v in zip(selected, combo)]
                try:
                    cfg = compose(config_name, overrides=chosen)
                except HydraException:
                    return None  # Hydra reports it in its own words
                for o in keys:
                    found = _key_problem(cfg, o, dict(zip(selected, combo)))
                    if found:
                        return found
        if not multirun:
            try:
                compose(config_name, overrides=list(overrides))
            except HydraException as err:
                return _one_line(err)
    return None


def check(config_name: str, argv: Optional[Sequence[str]] = None) -> None:
    """Before an entry script's ``hydra.main``: exit 2 with one line if the command line has a :func:`problem`."""
    from hydra._internal.utils import get_args_parser

    args = get_args_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.hydra_help or args.info or args.shell_completion or args.config_path or args.config_dir:
        return  # Hydra's own business
    multirun = args.multirun or "hydra.mode=MULTIRUN" in args.overrides
    found = problem(args.config_name or config_name, args.overrides, multirun=multirun)
    if found:
        print(found if found.startswith("Error") else f"Error: {found}", file=sys.stderr, flush=True)
        sys.exit(2)
