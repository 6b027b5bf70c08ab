"""The README's "Using it" and "Plain `_search`" sections, replayed as a user would: the commands are read from
README.md by this test (not retyped) and run in a shell from the repository's root, in order, against the
session's cluster, with no flag beyond what the README shows. The teardown at the end of "Using it" runs last,
after the plain searches that need what setup made."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from ..conftest import REPO
from .kit import one_line_only

pytestmark = pytest.mark.integration

SECTIONS = ("## Using it", "## Plain `_search` against what setup made")


def commands(heading: str) -> list[str]:
    """The shell commands of the first ```bash block under ``heading``, comments stripped."""
    text = (REPO / "README.md").read_text()
    section = text[text.index(heading + "\n") :]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, f"no bash block under {heading}"
    lines = []
    for line in block.group(1).splitlines():
        line = re.sub(r"\s+#\s.*$", "", line).strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def run(script: list[str], env: dict[str, str]) -> list[tuple[str, int, str, str]]:
    """Run the lines in one bash process (so variables carry over), each one's output kept apart."""
    marked = []
    for n, line in enumerate(script):
        marked += [f"echo '@@start {n}' >&2; echo '@@start {n}'", line, f'echo "@@rc {n} $?"']
    done = subprocess.run(
        ["bash", "-c", "\n".join(marked)], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800
    )
    results = []
    for n, line in enumerate(script):
        out = done.stdout.split(f"@@start {n}\n", 1)[1].split(f"@@rc {n} ", 1)
        rc = int(out[1].split("\n", 1)[0])
        err = done.stderr.split(f"@@start {n}\n", 1)[1].split("@@start", 1)[0]
        results.append((line, rc, out[0], err))
    return results


@one_line_only(
    "the README's commands run on its default line, 3.6.0, one node: every request they make runs on 2.19 and three "
    "nodes elsewhere in the suite (test_search_pipeline, test_end_to_end), to keep CI short"
)
def test_the_readme_runs_as_written(local_cluster):
    using, plain = (commands(h) for h in SECTIONS)
    assert any(c.startswith("osrerank setup") for c in using) and any(c.startswith("curl") for c in plain)
    last = [c for c in using if c.startswith("osrerank teardown")]
    first = [c for c in using if not c.startswith("osrerank teardown")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    results = run([*first, *plain, *last], env)
    for line, rc, _out, err in results:
        assert rc == 0, f"{line!r} exited {rc}:\n{err[-3000:]}"
        assert "Traceback" not in err, f"{line!r}:\n{err[-3000:]}"
    by_line = {line: out for line, _, out, _ in results}
    searches = [json.loads(by_line[c]) for c in plain if c.startswith("curl")]
    for reply in searches:
        assert "error" not in reply, reply
        scores = [h["_score"] for h in reply["hits"]["hits"]]
        assert len(scores) == 10 and scores == sorted(scores, reverse=True)
        assert len(set(scores)) == len(scores), "distinct documents reranked to equal scores: empty text?"
    titles_only = searches[-1]["hits"]["hits"]
    assert all(set(h["_source"]) == {"title"} and h["fields"]["rerank_text"] for h in titles_only)
    search = next(out for line, out in by_line.items() if line.startswith("osrerank search"))
    assert "no hits" not in search and "rerank_text" in search  # the recorded index and field, not the defaults
    assert "scifact" in by_line[next(c for c in using if c.startswith("osrerank status"))]
    assert "removed:" in by_line[last[0]] and "index scifact" in by_line[last[0]]
