"""What several commands share: failing with a message, output paths checked before a run, the
one policy of a file, the decision stages for short runs."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Iterator, NoReturn

import typer

DEFAULT_SIM_POLICY = "setpoint-default.yaml"  # bundled policies (controller.bundled)
DEFAULT_HPA_POLICY = "hpa-cpu.yaml"


class Scaler(str, Enum):
    """``--scaler`` of simulate and sweep: what scales the workload beside a health-only policy
    (simulators.runner.SCALERS)."""

    HPA = "hpa"
    FIXED = "fixed"


#: Columns of a table printed to a pipe or a file (a terminal's own width otherwise; $COLUMNS wins)
PIPED_WIDTH = 160


def table_console(**options):
    """A rich Console for tables on stdout: the terminal's width, or PIPED_WIDTH columns when the
    output goes to a pipe or a file (rich's 80 there folded headers into 'minute s' and 'change s',
    worse to read and to grep than a long line); ``$COLUMNS`` decides when set."""
    import os

    from rich.console import Console

    console = Console(**options)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(width=PIPED_WIDTH, **options)
    return console


def fail(errors: list) -> NoReturn:
    """Print each error on stderr, one per line, and exit 1 (bad input)."""
    for error in errors:
        typer.echo(str(error), err=True)
    raise typer.Exit(1)


def say_warnings(warnings) -> None:
    """Each warning (FieldError: ``FILE:LINE: FIELD.PATH: warning: ...``) on stderr, each once: a
    scenario's, before its run (a sweep's variants and seeds share the file's)."""
    for line in dict.fromkeys(str(w) for w in warnings):
        typer.echo(line, err=True)


@contextlib.contextmanager
def said_if_interrupted(what: str) -> Iterator[None]:
    """Ctrl-C (or SIGTERM) inside: ``interrupted: WHAT`` on stderr, then on out as before (exit
    130 / 143). For the commands that keep nothing of a run stopped midway, which ended with no
    word at all, their folder made and empty."""
    try:
        yield
    except KeyboardInterrupt:
        typer.echo(f"interrupted: {what}", err=True)
        raise


@dataclass(frozen=True)
class Refusal:
    """Why a command will not write where it was told, said before anything is written: ``text``
    as stderr shows it (``--out-dir: out/web.yaml exists; ...``), ``option`` the option at fault,
    ``file`` the path it is about (None: no one path)."""

    text: str
    option: str
    file: str | None = None

    def __str__(self) -> str:
        return self.text

    def to_json(self) -> dict:
        """As a FieldError's entry of a ``--format json`` document: the option is its field, no line."""
        return {"file": self.file, "line": None, "field": self.option,
                "message": self.text.removeprefix(f"{self.option}: ")}


def refuse_overwrite(paths: list[Path], force: bool, option: str) -> None:
    """Exit 1 with :func:`overwrite_refusals`, if any: called before anything is written (or
    computed), so that a refusal leaves every file as it was."""
    refusals = overwrite_refusals(paths, force, option)
    if refusals:
        fail(refusals)


def overwrite_refusals(paths: list[Path], force: bool, option: str) -> list[Refusal]:
    """Each of ``paths`` that is a device, pipe or socket (forced or not); else, unless ``force``,
    each that exists."""
    from controller.runtime.files import SPECIAL_FILE, special_file

    special = [p for p in paths if special_file(p)]  # --force or not: it would be replaced, not written to
    if special:
        return [Refusal(f"{option}: {p} {SPECIAL_FILE}; name a file", option, str(p)) for p in special]
    existing = [] if force else [p for p in paths if p.exists() or p.is_symlink()]
    kind = "folder" if option == "--out-dir" else "file"
    return [Refusal(f"{option}: {p} exists; pass --force to overwrite it, or name another {kind}", option, str(p))
            for p in existing]


def file_folder_writable(target: Path, option: str, given: Path | None = None) -> None:
    """Exit 1 with :func:`folder_refusals`, if any. Called before the command's work: a tune's
    search or an import is not lost at its last write, and the writer's temporary file
    (``.NAME.<hex>.tmp``) is never the name in the error."""
    refusals = folder_refusals(target, option, given)
    if refusals:
        fail(refusals)


def folder_refusals(target: Path, option: str, given: Path | None = None) -> list[Refusal]:
    """Why the folder of ``target`` (the file a command will write; ``given``: as the user named
    it, None for a default) cannot take it: missing, or not writable; [] if it can."""
    import os

    folder = target.absolute().parent
    if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK):
        return []
    named = given or folder
    return [Refusal(f"{option}: {named}: {'cannot write in' if folder.is_dir() else 'no such'} folder {folder}; "
                    "create it or name another file", option, str(named))]


def _nonempty_path(value: str | Path) -> Path:
    import typer

    if isinstance(value, Path):  # the option's default: typer (0.29) passes it through the parser too
        return value
    # typer would read ``-o ''`` as Path('.'), writing the results over the working folder's files
    if not value.strip():
        raise typer.BadParameter("expected a path, got an empty string (use . for the current folder)")
    return Path(value)


def output_file(value: str | Path) -> Path:
    """The ``parser`` of an option naming a file to write: not empty, not a folder (its folder:
    :func:`file_folder_writable`, once the command knows the file)."""
    import typer

    path = _nonempty_path(value)
    if path.is_dir():
        raise typer.BadParameter(f"{value} is a folder, not a file")
    return path


def output_folder(value: str | Path) -> Path:
    """The ``parser`` of an option naming a folder to write into: not empty (out_folder checks the
    rest before anything runs)."""
    return _nonempty_path(value)


def number_option(low: float | None = None, high: float | None = None) -> dict:
    """``typer.Option`` arguments of a float option: a finite number from ``low`` to ``high``
    (either may be None), e.g. ``typer.Option("--speed", **number_option(0.001, 1000))``. Its
    parser checks the number in place of typer's own ``min``/``max`` check, which let inf through a
    lone ``min`` and said of nan "should be less than or equal to 1000" (given a parser, typer 0.29
    checks no bounds itself and only shows them in --help). Every float option with bounds uses it."""
    import math

    if low is not None and high is not None:
        span = f" from {low:g} to {high:g}"
    else:
        span = f" >= {low:g}" if low is not None else f" <= {high:g}" if high is not None else ""

    def parse(value):
        if value is None or isinstance(value, (int, float)):  # the option's default: typer passes it through too
            return value
        try:
            number = float(value)
        except ValueError:
            raise typer.BadParameter(f"expected a number{span}, got {value!r}") from None
        if not math.isfinite(number):
            raise typer.BadParameter(f"expected a finite number{span}, got {value}")
        if (low is not None and number < low) or (high is not None and number > high):
            raise typer.BadParameter(f"expected a number{span}, got {value}")
        return number

    return {"parser": parse, "min": low, "max": high}


#: RFC 6750's b64token: what an ``Authorization: Bearer`` header may carry
BEARER_TOKEN_CHARS = "letters, digits and -._~+/ (then = padding at the end)"


def bearer_token(value):
    """The ``parser`` of a bearer token option (``sim serve --token``): RFC 6750's b64token,
    ``1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="``; a space, a control
    character or an empty token cannot be sent in the header (clients refuse or split it). The
    message never shows the token, a secret: only what is wrong with it and where."""
    import re

    if value is None:
        return None
    if re.fullmatch(r"[A-Za-z0-9._~+/-]+=*", value):
        return value
    if not value:
        raise typer.BadParameter(f"expected a bearer token of {BEARER_TOKEN_CHARS}, got an empty string")
    at = re.search(r"[^A-Za-z0-9._~+/=-]", value)
    if at is None:  # every character is one of them: an '=' is out of place (not only at the end)
        what = "'=' before its end" if value.strip("=") else "only '='"
        raise typer.BadParameter(f"expected a bearer token of {BEARER_TOKEN_CHARS}, got one with {what}")
    char = at.group()
    what = ("a space" if char == " " else "a control character" if not char.isprintable()
            else f"the character {char!r}")
    raise typer.BadParameter(f"expected a bearer token of {BEARER_TOKEN_CHARS}, got one with {what} "
                             f"(character {at.start() + 1} of {len(value)})")


#: The largest result.json whose writer out_folder reads (a bigger one is replaced unread).
MAX_RESULT_READ_BYTES = 256 * 1024 * 1024


def results_writer(result_file: Path) -> str | None:
    """The command whose results ``result_file`` (a result.json) holds: ``sweep``, ``backtest``
    or ``simulate``; None for a file none of them wrote, or one that cannot be read."""
    import json

    try:
        if not result_file.is_file() or result_file.stat().st_size > MAX_RESULT_READ_BYTES:
            return None
        data = json.loads(result_file.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    if data.get("kind") == "sweep":
        return "sweep"
    if "scenario" in data and "controllers" in data:
        return "backtest" if "backtest" in data else "simulate"
    return None


def out_folder(out: Path, option: str = "--out", files: tuple[str, ...] = (), folders: tuple[str, ...] = (),
               command: str | None = None) -> Path:
    """``out``, created, or exit 1 saying why it cannot hold the results (:func:`make_out_folder`)."""
    refusals = make_out_folder(out, option, files, folders, command)
    if refusals:
        fail(refusals)
    return out


def make_out_folder(out: Path, option: str = "--out", files: tuple[str, ...] = (), folders: tuple[str, ...] = (),
                    command: str | None = None) -> list[Refusal]:
    """Create ``out``, or say why it cannot hold the results ([] once it exists and can be written
    in): checked before a run, whose results would otherwise be lost after it finished (``files``
    it writes must not be folders there, nor ``folders`` files). ``command``: the command writing
    its result.json there, which replaces its own earlier results but not another command's (a
    long simulation's could not be made again from anything kept)."""
    import os

    from controller.runtime.files import special_file

    def refused(text: str, path: Path = out) -> Refusal:
        return Refusal(f"{option}: {text}", option, str(path))

    other = results_writer(out / "result.json") if command else None
    if other is not None and other != command:
        return [refused(f"{out} holds the results of `setpoint {other}` ({out / 'result.json'}); name another "
                        f"folder, or move them first")]
    wrong = [(out / n, "is a folder") for n in files if (out / n).is_dir()]
    wrong += [(out / n, "is a device, pipe or socket") for n in files if special_file(out / n)]
    wrong += [(out / n, "is a file") for n in folders if (out / n).exists() and not (out / n).is_dir()]
    if wrong:
        return [refused(f"{path} {what}, where the results go; move it or name another folder", path)
                for path, what in wrong]
    if out.exists() and not out.is_dir():
        return [refused(f"{out} is a file, not a folder; name a folder for the results")]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return [refused(f"{out}: cannot create the folder: {exc.strerror or exc}")]
    if not os.access(out, os.W_OK | os.X_OK):
        return [refused(f"{out}: cannot write in this folder")]
    return []


LOG_LEVELS = ("debug", "info", "warning", "error")


def parse_log_level(value: str) -> str:
    """``--log-level`` as logging reads it (``INFO``), or exit 1 naming the levels."""
    if value.strip().lower() not in LOG_LEVELS:
        fail([f"--log-level: expected {', '.join(LOG_LEVELS[:-1])} or {LOG_LEVELS[-1]}, got {value!r}"])
    return value.strip().upper()


#: Said in the help of every option and argument that takes policy files (``policy_path`` reads them).
EXAMPLES_HELP = ("Where no such file exists, the name of an example that ships with Setpoint (setpoint-healing, or "
                 "policies/setpoint-healing.yaml as the docs write it; a wrong name lists them).")


#: The shipped examples that ``policy_path`` resolved from a name in this command (``setpoint run``
#: says so at start-up; emptied as each ``main()`` starts); a path given as it is, even into the examples' folder, is the user's choice.
RESOLVED_EXAMPLES: set[Path] = set()


def policy_file(value: str) -> Path:
    """``-p FILE``: a policy file, or the name of an example policy that ships with Setpoint
    (``setpoint-healing.yaml``, ``setpoint-healing``, or as the docs write it,
    ``policies/setpoint-healing.yaml``), found when no such file is here: the docs' commands work
    from an installed wheel as from a checkout. Not a folder."""
    path = policy_path(value)
    if path.is_dir():
        raise typer.BadParameter(f"{value} is a folder: give one policy file")
    return path


def policy_path(value: str) -> Path:
    """``-p PATH``: as :func:`policy_file`, or a folder of policy files. The ``parser`` of every
    option and argument taking policy files or folders, so that all resolve names alike."""
    from controller.bundled import bundled_policy, bundled_policy_names

    path = Path(value)
    if path.exists():
        return path
    if path.parent in (Path("."), Path("policies")):
        name = path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml"
        if name in bundled_policy_names():
            found = bundled_policy(name)
            RESOLVED_EXAMPLES.add(found)
            return found
    if path == Path("policies"):  # the docs' folder (`setpoint validate policies/`), from a wheel: no such folder here
        folder = bundled_policy("")
        raise typer.BadParameter(f"{value} does not exist here. The example policies that ship with Setpoint are in "
                                 f"{folder}: name one ({', '.join(bundled_policy_names())}), or copy them to edit: "
                                 f"cp -r {folder} policies")
    raise typer.BadParameter(f"{value} does not exist, and no example policy that ships with Setpoint is named so "
                             f"(they are: {', '.join(bundled_policy_names())})")


def one_policy(path: Path, shown: str | None = None, option: str | None = None):
    """The one scaling policy of ``path``; ``shown`` replaces its file name in what the results
    show (the bundled name, or the path relative to the working directory); ``option``, the
    option that named the file, begins the error when it holds only health-only policies."""
    scaling, healer = policy_under_test(path, shown)
    if scaling is None:  # health-only: the commands calling this compare scaling controllers
        fail([f"{option + ': ' if option else ''}{path}: expected exactly one scaling policy, found 0: {healer.name} "
              "only heals (no scaling section)"])
    return scaling


def policy_under_test(path: Path, shown: str | None = None):
    """(the one scaling policy of ``path``, None) as before; or, for a file of health-only
    policies (no ``scaling``), (None, its one health-only policy): ``setpoint simulate`` runs that
    beside what scales the workload. Exit 1 naming the file otherwise. ``shown`` replaces the
    file name in what the results show (the bundled name, or the path relative to the working
    directory). A file with a scaling policy and health-only ones simulates the scaling one."""
    from dataclasses import replace

    from controller.errors import PolicyError
    from controller.policy import load_policies

    try:
        loaded = load_policies([path])
    except PolicyError as exc:
        fail(exc.errors)
    scaling = [p for p in loaded if p.scales]
    if len(scaling) > 1 or not loaded:
        fail([f"{path}: expected exactly one scaling policy, found {len(scaling)}; pass a file that holds one"])
    if not scaling and len(loaded) > 1:
        fail([f"{path}: expected one policy to simulate, found {len(loaded)} health-only policies "
              f"({', '.join(p.name for p in loaded)}) and no scaling one; pass a file that holds one of them"])
    chosen = scaling[0] if scaling else loaded[0]
    chosen = replace(chosen, file=shown) if shown else chosen
    return (chosen, None) if scaling else (None, chosen)


def numpy_unless_asked() -> None:
    """Decide on the numpy stages unless SETPOINT_COMPILED asks for the kernels (or for numpy).
    Set in the environment too, for worker processes that start from a forkserver."""
    import os

    from controller.core.scaling import compiled

    if compiled.switch == "":
        compiled.set_switch("0")
        os.environ[compiled.ENV_SWITCH] = "0"


def equal_cost_cells(e) -> list[str]:
    """The two frontier cells of a score-table row: HPA's violation minutes at the row's
    replica-hours (``*`` when extrapolated beyond the sweep) and the ratio with its verdict."""
    if e is None or e.hpa_slo_violation_minutes is None:
        return ["-", "-"]
    flag = "*" if e.extrapolated else ""
    ratio = f"{e.ratio:.2f}x" if e.ratio is not None else "-"
    return [f"{e.hpa_slo_violation_minutes:g}{flag}", f"{ratio} {e.verdict}"]


def worker_count(jobs: int | None) -> int:
    """``--jobs``, else one per CPU; a warning when it asks for more processes than CPUs (they
    only share them: no faster, and each holds a simulation in memory)."""
    import os
    import warnings

    from controller.policy.summary import plural

    cpus = os.cpu_count() or 1
    if jobs is not None and jobs > cpus:
        warnings.warn(f"--jobs {jobs}: more worker processes than this machine's {plural(cpus, 'CPU')}; they share them "
                      "(no faster, more memory)", stacklevel=2)
    return jobs or cpus


#: PrometheusConfig's fields by the options that set them (backtest, run).
PROMETHEUS_OPTIONS = {"url": "--prometheus", "timeout_s": "--prometheus-timeout", "target_labels": "--target-labels",
                      "bearer_token_file": "--prometheus-token-file", "ca_file": "--prometheus-ca-file"}


def prometheus_config(url: str, **fields):
    """``PrometheusConfig.from_url(url, **fields)``; its problems raised as a ValueError that names
    this command's options (``PROMETHEUS_OPTIONS``) instead of the fields."""
    from controller.adapters.prometheus import InvalidPrometheusConfig, PrometheusConfig

    try:
        return PrometheusConfig.from_url(url, **fields)
    except InvalidPrometheusConfig as exc:
        raise ValueError(exc.renamed(PROMETHEUS_OPTIONS)) from None


#: ``--target-labels``' help, shared by run and backtest.
TARGET_LABELS_HELP = (
    "Labels that name a series' workload: NS_LABEL,NAME_LABEL for every kind, or KIND=NS_LABEL,NAME_LABEL "
    "for one (KIND: deployment or statefulset; repeat the option). Default: Deployments by namespace and "
    "deployment, StatefulSets by namespace and statefulset (kube-state-metrics' labels); "
    "StatefulSet=namespace,deployment matches StatefulSets by deployment, as before per-kind labels.")


def parse_target_labels(values: list[str] | None):
    """``--target-labels`` (repeated) -> TargetLabels. ``NS,NAME`` sets every kind, then each
    ``KIND=NS,NAME`` its kind (whatever the order given); the rest keep the default. A kind set
    twice, two every-kind forms, an unknown kind or a malformed pair: ValueError naming the option."""
    from controller.model import DEFAULT_TARGET_LABELS, WORKLOAD_KINDS, TargetLabels

    kinds = {k.lower(): k for k in WORKLOAD_KINDS}
    every, per_kind = None, {}
    for text in values or ():
        kind_text, _, pair_text = text.rpartition("=")
        pair = tuple(x.strip() for x in pair_text.split(","))
        if len(pair) != 2 or not all(pair):
            raise ValueError(f"--target-labels: expected NS_LABEL,NAME_LABEL or KIND=NS_LABEL,NAME_LABEL "
                             f"(e.g. statefulset=namespace,statefulset), got {text!r}")
        if not kind_text:
            if every is not None:
                raise ValueError(f"--target-labels: NS_LABEL,NAME_LABEL for every kind given twice ({every[0]},"
                                 f"{every[1]} and {text}): give one, and KIND=... for a kind that differs")
            every = pair
            continue
        kind = kinds.get(kind_text.strip().lower())
        if kind is None:
            raise ValueError(f"--target-labels: unknown kind {kind_text.strip()!r} in {text!r}: expected "
                             f"{' or '.join(kinds)}")
        if kind in per_kind:
            raise ValueError(f"--target-labels: {kind_text.strip().lower()}= given twice")
        per_kind[kind] = pair
    labels = TargetLabels.every_kind(*every) if every else DEFAULT_TARGET_LABELS
    for kind, pair in per_kind.items():
        labels = labels.replaced(kind, pair)
    return labels
