"""The task registry: task definitions are data (YAML), not code.

Each YAML file declares a ``suite`` and a mapping of ``tasks``. The kit ships
``tasks/socialite.yaml`` (the paper's 26 tasks) and ``tasks/local.yaml`` (the 15 tasks of the
offline bundle). Users add tasks by dropping a YAML file with the same schema into a directory
passed as ``extra_dirs`` or listed in ``$SOCIALITE_TASKS_DIR`` (``os.pathsep``-separated).
See the README's "Add your own task" section for a worked example.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .metrics import metric_names
from .params import ParamError
from .runs import MarkedDict, load_yaml_strict
from .text_metrics import CORPUS_METRICS  # noqa: F401  (registers the generation metrics in the table)

CATEGORIES = (
    "humor_sarcasm",
    "offensive",
    "sentiment_emotion",
    "trustworthiness",
    "other_social_factors",
)
DEFAULT_BINARIZE = {
    "threshold": "median",
    "ties": "low",
}  # "high" means above the train median, as in the paper
TASK_TYPES = ("classification", "regression", "generation")
# Generation (rewriting) tasks have references instead of a label set; their category is one of these.
GENERATION_CATEGORIES = ("writing",)
GROUPS = ("seen", "related")
SOURCE_KINDS = ("local", "socialite_instructions", "socket", "writing_tasks")
# The fields each level of a task YAML may hold; anything else is a typo and an error.
TOP_LEVEL_FIELDS = ("suite", "description", "data_dir", "tasks")
VARIANT_FIELDS = ("instruction", "labels")
SOURCE_FIELDS = {  # the loader's keyword arguments a YAML source entry may set (see sources.load_source)
    "local": ("dir",),
    "socialite_instructions": ("task_type", "pair_sep", "repo_id", "revision"),
    "socket": ("config", "pair_sep", "repo_id", "revision"),
    "writing_tasks": ("dir",),
}
QUOTE_HINT = (
    'YAML reads unquoted yes/no/true/false/on/off as booleans; quote the word, e.g. labels: ["yes", "no"]'
)
BUILTIN_DIR = Path(__file__).parent / "tasks"
REGRESSION_LABELS = ["low", "high"]


@dataclass(frozen=True)
class Task:
    """One task: what it measures, how it is asked, what the answers are, where the data is."""

    name: str
    suite: str
    category: str
    type: str
    group: str
    labels: list[str]
    instruction: str
    label_map: dict[str, str] = field(default_factory=dict)
    pair: bool = False
    text_b_name: str | None = None
    text_name: str | None = None  # pair tasks: the first text's name in the prompt (None: no name)
    scale: list[float] | None = None
    # regression tasks: where low/high is split and which side a score equal to the threshold takes
    binarize: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_BINARIZE))
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    citation: str = ""
    variants: list[dict[str, Any]] = field(default_factory=list)
    defined_in: str = ""
    metrics: list[str] = field(default_factory=list)  # generation tasks: metric names, the first is primary
    no_data: str | None = None  # generation tasks declared without data: why (tables say "no data")

    @property
    def is_regression(self) -> bool:
        return self.type == "regression"

    @property
    def is_generation(self) -> bool:
        return self.type == "generation"

    def verbalize(self, raw: Any) -> str | None:
        """Map a raw source label to its verbalizer; None if it is not one of the task's labels."""
        key = str(raw).strip()
        if key in self.label_map:
            return self.label_map[key]
        low = key.lower()
        return low if low in self.labels else None


class RegistryError(ValueError):
    """A task definition is malformed; the message names the file, task and field."""


def _require(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise RegistryError(f"{where}: {msg}")


class _Where:
    """Where a problem of one task is: formatted, the file and the task; called with a field, the file, the line of
    that field (the strict loader keeps each key's line) and the task."""

    def __init__(self, path: Path, name: str, spec: Any, line: int = 0):
        self.path, self.name, self.spec, self.line = path, name, spec, line

    def __format__(self, format_spec: str) -> str:
        return f"{self.path}: task '{self.name}'"

    __str__ = __repr__ = lambda self: format(self)

    def __call__(self, key: Any, mapping: Any = None) -> str:
        mapping = self.spec if mapping is None else mapping
        line = mapping.line_of(key) if isinstance(mapping, MarkedDict) else self.line
        return f"{self.path}: line {line}: task '{self.name}'" if line else format(self)


def _plain(value: Any) -> Any:
    """``value`` with every :class:`MarkedDict` a plain dict (a Task holds plain data, whatever dumps it)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _at(path: Path, doc: Any, key: str) -> str:
    """``<file>: line N`` of a top-level field (just the file when the line is unknown)."""
    return f"{path}: line {doc.line_of(key)}" if isinstance(doc, MarkedDict) else str(path)


def _check_fields(mapping: dict, allowed: Any, where: str, at: str = "", level: str = "task level") -> None:
    """Reject keys of ``mapping`` not in ``allowed``, naming the key path ``at.key`` and the closest valid key."""
    allowed = sorted(str(a) for a in allowed)
    unknown = [str(k) for k in mapping if str(k) not in allowed]
    if not unknown:
        return
    prefix = f"{at}." if at else ""
    hints = [
        f"'{prefix}{close[0]}'" + (f" (for '{prefix}{key}')" if len(unknown) > 1 else "")
        for key in unknown
        if (close := difflib.get_close_matches(key, allowed, n=1, cutoff=0.5))
    ]
    raise RegistryError(
        f"{where}: unknown field(s) {[prefix + key for key in unknown]}"
        + (f"; did you mean {', '.join(hints)}?" if hints else "")
        + f" Allowed {f'in {at!r}' if at else f'at the {level}'}: {allowed}"
    )


def _check_word(value: Any, where: str, what: str) -> None:
    """A label word must be text; a YAML boolean means an unquoted yes/no/true/false/on/off."""
    _require(not isinstance(value, bool), where, f"{what} is the boolean {value}: {QUOTE_HINT}")


def _parse_task(name: str, spec: Any, suite: str, path: Path, line: int = 0) -> Task:
    where = _Where(path, name, spec, line)
    _require(isinstance(spec, dict), where, "must be a mapping of fields")
    known = {
        "category",
        "type",
        "group",
        "labels",
        "label_map",
        "instruction",
        "pair",
        "text_b_name",
        "text_name",
        "scale",
        "binarize",
        "sources",
        "citation",
        "variants",
        "metrics",
        "no_data",
    }
    _check_fields(spec, known, where)
    _require(re.fullmatch(r"[A-Za-z0-9_][\w.-]*", name) is not None, where,
             "a task name is a plain name (letters, digits, _ . -): it names files of the exports")  # fmt: skip
    for key in ("category", "type", "group", "instruction"):
        _require(key in spec, where, f"missing required field '{key}'")
    _require(isinstance(spec["instruction"], str) and spec["instruction"].strip() != "", where("instruction"),
             f"field 'instruction' must be a non-empty string, got {spec['instruction']!r}")  # fmt: skip
    if "pair" in spec:
        _require(isinstance(spec["pair"], bool), where("pair"),
                 f"field 'pair' must be true or false (unquoted), got {spec['pair']!r}")  # fmt: skip
    for key in ("text_b_name", "text_name"):
        if spec.get(key) is not None:
            _require(isinstance(spec[key], str) and spec[key].strip() != "", where(key),
                     f"field '{key}' must be a non-empty string, got {spec[key]!r}")  # fmt: skip
    _require("text_name" not in spec or spec.get("pair") is True, where("text_name"),
             "field 'text_name' names the first of two texts: it needs 'pair: true'")  # fmt: skip
    _require(spec["type"] in TASK_TYPES, where("type"), f"field 'type' must be one of {list(TASK_TYPES)}")
    if spec["type"] == "generation":
        return _parse_generation_task(name, spec, suite, path, where)
    _require(
        spec["category"] in CATEGORIES,
        where("category"),
        f"field 'category' must be one of {list(CATEGORIES)}",
    )
    _require(spec["group"] in GROUPS, where("group"), f"field 'group' must be one of {list(GROUPS)}")
    for key in ("metrics", "no_data"):
        _require(key not in spec, where(key), f"field '{key}' is for generation tasks only")
    labels = _parse_labels(spec, where)
    label_map = _parse_label_map(spec, labels, where)
    sources = _parse_sources(spec, where)
    variants = _parse_variants(spec, labels, where)
    return Task(
        name=name,
        suite=suite,
        category=spec["category"],
        type=spec["type"],
        group=spec["group"],
        labels=labels,
        instruction=" ".join(str(spec["instruction"]).split()),
        label_map=label_map,
        pair=bool(spec.get("pair", False)),
        text_b_name=spec.get("text_b_name"),
        text_name=spec.get("text_name"),
        scale=spec.get("scale"),
        binarize=_parse_binarize(spec, where),
        sources=_plain(sources),
        citation=str(spec.get("citation", "")),
        variants=_plain(variants),
        defined_in=str(path),
    )


def _parse_labels(spec: dict, where: _Where) -> list[str]:
    labels = spec.get("labels") or (REGRESSION_LABELS if spec["type"] == "regression" else None)
    at = where("labels")
    _require(
        isinstance(labels, list) and len(labels) >= 2, at, "field 'labels' needs at least two answer words"
    )
    for i, lab in enumerate(labels):
        _check_word(lab, at, f"labels[{i}]")
    labels = [str(lab) for lab in labels]
    for lab in labels:
        _require(lab == lab.lower().strip() and lab, at, f"label '{lab}' must be lower-case, non-empty")
    _require(len(set(labels)) == len(labels), at, "field 'labels' has duplicates")
    if spec["type"] == "regression":
        _require(labels == REGRESSION_LABELS, at, f"regression tasks use labels {REGRESSION_LABELS}")
        scale = spec.get("scale")
        _require(
            scale is None
            or (
                isinstance(scale, list)
                and len(scale) == 2
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in scale)
                and scale[0] < scale[1]
            ),
            where("scale"),
            f"field 'scale' must be [min, max], two numbers with min < max; got {scale!r}",
        )
    return labels


def _parse_binarize(spec: dict, where: _Where) -> dict[str, Any]:
    """A regression task's ``binarize: {threshold: median | midpoint | <number>, ties: low | high}``: the score
    that splits low from high (the train split's median by default; ``midpoint`` of ``scale``; or a number) and the
    side a score equal to it takes (``low`` by default, as the paper's "above the median is high")."""
    raw = spec.get("binarize")
    if raw is None:
        return dict(DEFAULT_BINARIZE)
    _require(
        spec["type"] == "regression", where("binarize"), "field 'binarize' applies to regression tasks only"
    )
    _require(
        isinstance(raw, dict),
        where("binarize"),
        "field 'binarize' must be a mapping {threshold: ..., ties: ...}",
    )
    _check_fields(raw, {"threshold", "ties"}, f"{where}: binarize")
    out = {**DEFAULT_BINARIZE, **raw}
    threshold, ties = out["threshold"], out["ties"]
    numeric = isinstance(threshold, int | float) and not isinstance(threshold, bool)
    _require(
        numeric or threshold in ("median", "midpoint"),
        where("threshold", raw),
        f"binarize.threshold must be 'median', 'midpoint' or a number; got {threshold!r}",
    )
    _require(
        threshold != "midpoint" or spec.get("scale") is not None,
        where("threshold", raw),
        "binarize.threshold 'midpoint' needs the task's 'scale: [min, max]'",
    )
    _require(
        ties in ("low", "high"), where("ties", raw), f"binarize.ties must be 'low' or 'high'; got {ties!r}"
    )
    return out


def _parse_label_map(spec: dict, labels: list[str], where: _Where) -> dict[str, str]:
    raw_map = spec.get("label_map") or {}
    _require(
        isinstance(raw_map, dict), where("label_map"), "field 'label_map' must map source labels to labels"
    )
    for k, v in raw_map.items():
        _check_word(k, where(k, raw_map), f"label_map key {k}")
        _check_word(v, where(k, raw_map), f"label_map[{k!r}]")
    label_map = {str(k).strip(): str(v) for k, v in raw_map.items()}
    for raw, verb in label_map.items():
        _require(
            verb in labels,
            where("label_map"),
            f"label_map maps '{raw}' to '{verb}', which is not in labels {labels}",
        )
    return label_map


def _parse_sources(spec: dict, where: _Where) -> dict:
    sources = spec.get("sources") or {}
    _require(isinstance(sources, dict), where("sources"), "field 'sources' must be a mapping")
    _check_fields(sources, SOURCE_KINDS, where, "sources")
    for kind, entry in sources.items():
        _require(
            entry is None or isinstance(entry, dict),
            where(kind, sources),
            f"'sources.{kind}' must be a mapping of fields",
        )
        _check_fields(entry or {}, SOURCE_FIELDS[kind], where, f"sources.{kind}")
    return sources


def _parse_variants(spec: dict, labels: list[str], where: _Where) -> list:
    variants = spec.get("variants") or []
    _require(isinstance(variants, list), where("variants"), "field 'variants' must be a list")
    for i, var in enumerate(variants):
        _require(
            isinstance(var, dict), where("variants"), f"variants[{i}] must be a mapping with an 'instruction'"
        )
        _check_fields(var, VARIANT_FIELDS, where, f"variants[{i}]")
        _require("instruction" in var, where("instruction", var), f"variants[{i}] needs an 'instruction'")
        remap = var.get("labels") or {}
        at = where("labels", var)
        _require(isinstance(remap, dict), at, f"variants[{i}].labels must map labels to new answer words")
        for orig, word in remap.items():
            _check_word(orig, at, f"variants[{i}].labels key {orig}")
            _check_word(word, at, f"variants[{i}].labels[{orig!r}]")
            _require(orig in labels, at, f"variants[{i}] remaps '{orig}', which is not in labels {labels}")
    return variants


def _parse_generation_task(name: str, spec: dict, suite: str, path: Path, where: _Where) -> Task:
    """A ``type: generation`` task: references instead of labels, metric names from text_metrics, and either
    a ``sources`` entry or ``no_data: <reason>`` (a task of the study whose data is missing)."""
    allowed = list(GENERATION_CATEGORIES)
    _require(
        spec["category"] in GENERATION_CATEGORIES,
        where("category"),
        f"field 'category' must be one of {allowed}",
    )
    _require(spec["group"] in GROUPS, where("group"), f"field 'group' must be one of {list(GROUPS)}")
    for key in ("labels", "label_map", "pair", "text_b_name", "text_name", "scale", "binarize"):
        _require(
            key not in spec,
            where(key),
            f"field '{key}' does not apply to generation tasks (they have references)",
        )
    no_data = spec.get("no_data")
    metrics = spec.get("metrics", [] if no_data else None)
    _require(
        isinstance(metrics, list) and (bool(metrics) or bool(no_data)),
        where("metrics"),
        "field 'metrics' needs at least one metric name",
    )
    for m in metrics:
        _require(
            m in metric_names("generation"),  # the metric table: one entry adds a metric
            where("metrics"),
            f"unknown metric '{m}' in 'metrics'; known: {list(metric_names('generation'))}",
        )
    sources = spec.get("sources") or {}
    _require(isinstance(sources, dict), where("sources"), "field 'sources' must be a mapping")
    for kind in sources:
        _require(
            kind in SOURCE_KINDS,
            where(kind, sources),
            f"unknown source kind '{kind}'; known: {list(SOURCE_KINDS)}",
        )
    _require(
        no_data is None or (isinstance(no_data, str) and no_data.strip()),
        where("no_data"),
        "'no_data' must be a reason",
    )
    _require(
        bool(sources) != bool(no_data),
        where,
        "give either 'sources' or 'no_data: <reason>', not both/neither",
    )
    variants = spec.get("variants") or []
    for i, var in enumerate(variants):
        _require(
            isinstance(var, dict) and set(var) == {"instruction"},
            where("variants"),
            f"variants[{i}] must be {{instruction: ...}} (generation tasks have no labels to remap)",
        )
    return Task(
        name=name,
        suite=suite,
        category=spec["category"],
        type="generation",
        group=spec["group"],
        labels=[],
        instruction=" ".join(str(spec["instruction"]).split()),
        sources=_plain(sources),
        citation=str(spec.get("citation", "")),
        variants=_plain(variants),
        defined_in=str(path),
        metrics=[str(m) for m in metrics],
        no_data=" ".join(no_data.split()) if no_data else None,
    )


def load_task_file(path: str | os.PathLike) -> tuple[str, dict[str, Task]]:
    """Parse one registry YAML file -> (suite name, tasks)."""
    path = Path(path)
    doc = load_yaml_strict(
        path, RegistryError, marks=True
    )  # duplicate keys and aliases refused, with the line
    _require(isinstance(doc, dict), str(path), "top level must be a mapping with 'suite' and 'tasks'")
    _check_fields(doc, TOP_LEVEL_FIELDS, str(path), level="top level of a suite file")
    _require("suite" in doc and "tasks" in doc, str(path), "needs top-level 'suite' and 'tasks'")
    _require(
        isinstance(doc["tasks"], dict), _at(path, doc, "tasks"), "'tasks' must map task names to definitions"
    )
    suite = str(doc["suite"])
    _require(
        re.fullmatch(r"[A-Za-z0-9_][\w.-]*", suite) is not None,
        _at(path, doc, "suite"),
        f"suite name {suite!r} must be a plain name",
    )
    lines = doc["tasks"]
    tasks = {
        name: _parse_task(str(name), spec, suite, path, lines.line_of(name)) for name, spec in lines.items()
    }
    if "data_dir" in doc:
        tasks = _own_data_dir(tasks, doc["data_dir"], path, _at(path, doc, "data_dir"))
    return suite, tasks


def _own_data_dir(tasks: dict[str, Task], data_dir: Any, path: Path, where: str = "") -> dict[str, Task]:
    """A suite file's ``data_dir`` (relative to the file): its tasks' local data lives there, whatever bundle the
    other suites read, so your tasks and the bundled ones run together (``suite: local+mine``)."""
    _require(
        isinstance(data_dir, str) and data_dir.strip(),
        where or str(path),
        "'data_dir' must be a folder (a string)",
    )
    root = (path.parent / data_dir).resolve()
    out = {}
    for name, task in tasks.items():
        local = task.sources.get("local")
        if local is not None or not task.sources:
            sub = (local or {}).get("dir", task.name)
            task = replace(task, sources={**task.sources, "local": {**(local or {}), "dir": str(root / sub)}})
        out[name] = task
    return out


def _registry_files(extra_dirs: list[str | os.PathLike] | None) -> list[Path]:
    dirs: list[Path] = [BUILTIN_DIR]
    env = os.environ.get("SOCIALITE_TASKS_DIR")
    if env:
        dirs += [Path(d) for d in env.split(os.pathsep) if d]
    dirs += [Path(d) for d in (extra_dirs or [])]
    files: list[Path] = []
    for d in dirs:
        if d.is_file():
            files.append(d)
        elif d.is_dir():
            files += sorted(list(d.glob("*.yaml")) + list(d.glob("*.yml")))
        else:
            raise RegistryError(f"task directory {d} does not exist")
    return files


def load_all_suites(extra_dirs: list[str | os.PathLike] | None = None) -> dict[str, dict[str, Task]]:
    """Every suite from the built-in and user YAML files: suite -> task name -> Task."""
    suites: dict[str, dict[str, Task]] = {}
    for path in _registry_files(extra_dirs):
        suite, tasks = load_task_file(path)
        bucket = suites.setdefault(suite, {})
        for name, task in tasks.items():
            if name in bucket:
                raise RegistryError(
                    f"{path}: task '{name}' is already defined in suite '{suite}' by {bucket[name].defined_in}"
                )
            bucket[name] = task
    return suites


def list_suites(extra_dirs: list[str | os.PathLike] | None = None) -> list[str]:
    """Names of all suites available."""
    return sorted(load_all_suites(extra_dirs))


def load_registry(suite: str, extra_dirs: list[str | os.PathLike] | None = None) -> dict[str, Task]:
    """All tasks of one suite, in definition order; ``"local+mine"`` joins suites (a task name may be defined in
    only one of them)."""
    suites = load_all_suites(extra_dirs)
    if "+" in suite:
        joined: dict[str, Task] = {}
        for part in suite.split("+"):
            for name, task in load_registry(part.strip(), extra_dirs).items():
                if name in joined:
                    raise RegistryError(
                        f"suites {suite!r}: task '{name}' is defined by {joined[name].defined_in} and by "
                        f"{task.defined_in}; rename one of them"
                    )
                joined[name] = task
        return joined
    if suite not in suites:
        hint = difflib.get_close_matches(suite, list(suites), n=3)
        raise KeyError(
            f"unknown suite '{suite}'"
            + (f"; did you mean {hint}?" if hint else "")
            + f" Available suites: {sorted(suites)}"
        )
    return suites[suite]


def task_names(value: str | Sequence[str] | None, param: str = "tasks") -> list[str] | None:
    """A ``tasks`` parameter as a list: None stays None; ``"a"`` or ``"a,b"`` -> ``["a", "b"]``; a list of names
    is kept. Anything else raises ValueError naming ``param``."""
    if value is None:
        return None
    if isinstance(value, str):
        return [n.strip() for n in value.split(",") if n.strip()]
    if isinstance(value, Sequence) and all(isinstance(n, str) for n in value):
        return list(value)
    raise ParamError(f"{param} = {value!r}: expected None, a task name, 'a,b' or a list of task names")


def select_tasks(registry: dict[str, Task], names: str | Sequence[str] | None) -> list[Task]:
    """The tasks named (all when ``names`` is None/empty; a string is one name or a comma-separated list);
    unknown names suggest close matches."""
    names = task_names(names)
    if not names:
        return list(registry.values())
    out = []
    for name in names:
        if name not in registry:
            hint = difflib.get_close_matches(name, list(registry), n=3, cutoff=0.5)
            if not hint:
                hint = [n for n in registry if n.lower() == name.lower()]
            raise KeyError(
                f"unknown task '{name}'"
                + (f"; did you mean {hint}?" if hint else "")
                + f" Known tasks: {', '.join(registry)}"
            )
        out.append(registry[name])
    return out


def get_task(name: str, suite: str, extra_dirs: list[str | os.PathLike] | None = None) -> Task:
    """One task by name from a suite."""
    return select_tasks(load_registry(suite, extra_dirs), [name])[0]
