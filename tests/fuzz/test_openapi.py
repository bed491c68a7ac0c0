"""The API against its own OpenAPI document: schemathesis, every check, every phase.

`farm up` (conftest.py) serves `/openapi.json`; schemathesis generates requests from it
(schema examples, boundary values, random valid and invalid data, and stateful sequences
over links it infers: an asset's versions, uploads and comments, a job's tasks) and checks
every response: no server error, only declared status codes, headers and content types,
bodies that match the declared schema, invalid data refused, valid data accepted (but
for a refusal that applies a rule the operation documents, hooks.py), no object of one
studio readable by another, and the rest of `--checks all`.

`make test` runs a short version; `make fuzz` the long one. Environment:
  FARM_FUZZ_EXAMPLES   test cases per operation in each phase (default 10; `make fuzz`: 100)
  FARM_FUZZ_STATEFUL   stateful scenarios, sequences of calls (default 5 x FARM_FUZZ_EXAMPLES)
  FARM_FUZZ_SEED       seed, for a run that reproduces (default 1; `random`: a new one)
  FARM_FUZZ_TIMEOUT_S  wall-clock limit of the schemathesis run (default 420); past it the
                       test fails, saying so, rather than hang
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.system import BIN, FarmUp

CONFIG = Path(__file__).with_name("schemathesis.toml")
HOOKS = Path(__file__).with_name("hooks.py")
EXAMPLES = int(os.environ.get("FARM_FUZZ_EXAMPLES", "10"))
STATEFUL = int(os.environ.get("FARM_FUZZ_STATEFUL", str(5 * EXAMPLES)))
SEED = os.environ.get("FARM_FUZZ_SEED", "1")
TIMEOUT_S = float(os.environ.get("FARM_FUZZ_TIMEOUT_S", "420"))
# Starting `farm up` and stopping it again come on top of the run itself.
STACK_S = 300
# The run must reach objects made earlier in it in every part of the API: a request sent
# with an id taken from an earlier response (an inferred link, or an id drawn from the pool
# of responses) that the API answered with a 2xx. The coverage and fuzzing phases draw ids
# from that pool too; the stateful phase, whose sequences are the most random, must reach
# at least one part (its links work), not every part in every run.
LINKED = {
    "assets": re.compile(r"^/api/v1/assets/\{asset_id\}(/versions.*)?$"),
    "uploads": re.compile(r"^/api/v1/(uploads/\{upload_id\}|assets/\{asset_id\}/(uploads|file))"),
    "jobs": re.compile(r"^/api/v1/(jobs/\{job_id\}|tasks/\{task_id\})"),
    "review": re.compile(
        r"^/api/v1/(assets/\{asset_id\}/(comments|decisions)|comments/\{comment_id\})"),
}


def run_config(path: Path) -> Path:
    """schemathesis.toml plus the test cases per operation and the stateful scenarios.

    Both go in the file: `--max-examples` on the command line overrides every phase's own
    setting, the stateful one included, and ten scenarios reach too few links to count on.
    """
    path.write_text(f"{CONFIG.read_text()}\n[generation]\nmax-examples = {EXAMPLES}\n"
                    f"\n[phases.stateful.generation]\nmax-examples = {STATEFUL}\n")
    return path


def schemathesis_argv(api: str, config: Path, reports: Path) -> list[str]:
    argv = [str(BIN / "schemathesis"), "--config-file", str(config), "run",
            f"{api}/openapi.json",
            "--checks", "all",
            # Replaced, not dropped: hooks.py runs it and lets through only a refusal that
            # applies a rule the operation documents and a schema cannot state.
            "--exclude-checks", "positive_data_acceptance",
            "--phases", "examples,coverage,fuzzing,stateful",
            "--continue-on-failure",
            "--report", "junit,ndjson", "--report-dir", str(reports),
            "--no-color"]
    return argv if SEED == "random" else [*argv, "--seed", SEED]


def run_bounded(argv: list[str], env: dict[str, str], cwd: Path, log_path: Path,
                timeout_s: float) -> int | None:
    """Exit code, or None when it ran past `timeout_s` (then it is killed, all of it)."""
    with open(log_path, "wb") as log:
        # In `cwd` it keeps its cache of found failures (.schemathesis/), out of the tree.
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return None


def linked_steps(ndjson: Path) -> dict[str, set[str]]:
    """By phase, the paths of requests sent with ids from an earlier response and answered
    with a 2xx."""
    reached: dict[str, set[str]] = {}
    with ndjson.open() as events:
        for line in events:
            scenario = json.loads(line).get("ScenarioFinished")
            if not scenario:
                continue
            recorder = scenario["recorder"]
            for case_id, case in recorder.get("cases", {}).items():
                value = case["value"]
                linked = case.get("transition") or value.get("meta", {}).get("pool_draws")
                answer = (recorder.get("interactions", {}).get(case_id) or {}).get("response")
                if linked and answer and 200 <= answer["status_code"] < 300:
                    reached.setdefault(scenario.get("phase"), set()).add(value["path"])
    return reached


def run_figures(output: str) -> str:
    """Operations, test cases, stateful scenarios and links, as schemathesis printed them."""
    found = {name: re.search(pattern, output) for name, pattern in (
        ("operations", r"Tested:\s*(\d+)"), ("cases", r"Test cases:\s*\n\s*(.+)"),
        ("scenarios", r"Scenarios:\s*(\d+)"), ("links", r"API Links:\s*(.+)"))}
    text = {name: match.group(1).strip() if match else "?" for name, match in found.items()}
    return (f"{text['operations']} operations, {text['cases']}; stateful: "
            f"{text['scenarios']} scenarios, links {text['links']}")


def failures_summary(output: str, limit: int = 30_000) -> str:
    """Schemathesis's FAILURES and SUMMARY sections (the run's progress lines left out)."""
    start = output.find("FAILURES ===")
    if start < 0:
        start = output.find("SUMMARY ===")
    text = output[output.rfind("\n", 0, start) + 1:] if start >= 0 else output
    if len(text) > limit:
        text = text[:limit // 2] + "\n[... cut: the whole log is named below ...]\n" \
            + text[-limit // 2:]
    return text


@pytest.mark.timeout(TIMEOUT_S + STACK_S)
def test_the_api_keeps_its_openapi_contract(stack: FarmUp, auth_file: Path,
                                            tmp_path: Path) -> None:
    log_path, reports = tmp_path / "schemathesis.log", tmp_path / "reports"
    env = os.environ | {"FARM_FUZZ_AUTH_FILE": str(auth_file), "SCHEMATHESIS_HOOKS": str(HOOKS)}
    started = time.monotonic()
    argv = schemathesis_argv(stack.api, run_config(tmp_path / "schemathesis.toml"), reports)
    code = run_bounded(argv, env, tmp_path, log_path, TIMEOUT_S)
    output = log_path.read_text(errors="replace")
    took = time.monotonic() - started
    where = f"full log: {log_path}; JUnit and NDJSON reports: {reports}"
    if code is None:
        pytest.fail(f"schemathesis did not finish within {TIMEOUT_S:.0f} s "
                    f"(FARM_FUZZ_TIMEOUT_S); the API may hang on a request, or the machine "
                    f"is slower than usual. Last output:\n{output[-6000:]}\n{where}",
                    pytrace=False)
    print(f"schemathesis: exit {code} in {took:.0f} s; {run_figures(output)}")
    by_phase: dict[str, set[str]] = {}
    for path in reports.glob("*.ndjson"):
        for phase, paths in linked_steps(path).items():
            by_phase.setdefault(phase, set()).update(paths)
    reached = set().union(*by_phase.values())
    missing = [part for part, paths in LINKED.items()
               if not any(paths.match(path) for path in reached)]
    stateful = by_phase.get("stateful", set())
    problems = []
    if code != 0:
        problems.append(f"schemathesis found problems (exit {code}, {took:.0f} s):\n"
                        f"{failures_summary(output)}")
    if missing:
        problems.append(f"the run reached no existing object of {missing} "
                        f"(it reached {sorted(reached)})")
    if not any(paths.match(path) for paths in LINKED.values() for path in stateful):
        problems.append(f"the stateful phase reached no existing object "
                        f"(it reached {sorted(stateful)})")
    if problems:
        pytest.fail("\n".join([*problems, where]), pytrace=False)
