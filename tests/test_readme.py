"""The code blocks of the README and of every page under docs/ run as written, in order (the README, then the
pages in the order its "Read more" table lists them), in a fresh folder, after what `make demo` runs.

Shell blocks run in bash as in a fresh shell of the clone: the venv is not on PATH until a block sources
`.venv/bin/activate` (which then holds for the blocks after it, as in one terminal), and there are no SIDFORGE_ or
DAGSTER_ settings. Python blocks run in one namespace, as pasted into one interpreter of the venv. `make demo` runs
the Makefile's own recipe; `make test` is this test suite, so it is not run again from inside it.
"""

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.M | re.S)
LINK = re.compile(r"^\| \[(docs/[\w.-]+\.md)\]", re.M)


def pages() -> list[str]:
    """The README, then the docs pages in the order its "Read more" table lists them."""
    return ["README.md", *dict.fromkeys(LINK.findall((ROOT / "README.md").read_text()))]


def readme_blocks() -> list[tuple[str, str, str]]:
    """(where, language, code) of every fenced block of the pages, in order."""
    blocks = []
    for page in pages():
        text = (ROOT / page).read_text()
        for m in BLOCK.finditer(text):
            blocks.append((f"{page} line {text[: m.start()].count(chr(10)) + 1}", m.group(1), m.group(2)))
    return blocks


def test_every_docs_page_is_listed_and_the_readme_is_a_front_page():
    assert sorted(pages()[1:]) == sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))
    assert len((ROOT / "README.md").read_text().splitlines()) < 250


def _recipe(target: str) -> str:
    """The Makefile's recipe of `target`, with the venv at `.venv` as the Makefile's `$(BIN)`."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip().replace("$(BIN)/", ".venv/bin/"))
    return "\n".join(recipe)


def _shell(code: str) -> str:
    out = []
    for line in code.splitlines():
        words = line.split("#")[0].split()
        if words[:1] == ["make"]:
            out.append(":" if words[1] == "test" else _recipe(words[1]))
        else:
            out.append(line)
    return "\n".join(out)


def test_every_block_says_its_language():
    languages = [lang for _, lang, _ in readme_blocks()]
    assert set(languages) <= {"bash", "python", "text"}, languages
    assert languages.count("bash") >= 4 and languages.count("python") >= 5


@pytest.mark.slow
def test_readme_blocks_run_in_order(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith(("SIDFORGE_", "DAGSTER_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".venv").symlink_to(sys.prefix)  # the clone's venv, as `make setup` leaves it
    venv_bin = str(Path(sys.prefix) / "bin")
    path = ":".join(p for p in os.environ["PATH"].split(":") if p != venv_bin)
    env = {**{k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}, "PATH": path}  # a fresh shell
    namespace: dict = {}
    ran = []
    sourced: list[str] = []  # one terminal: what a block sources (the venv) holds for the blocks after it
    for where, language, code in readme_blocks():
        if language == "bash":
            sourced += [line for line in code.splitlines() if line.startswith("source ")]
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", "\n".join([*sourced, _shell(code)])],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            assert done.returncode == 0, f"{where}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        elif language == "python":
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                exec(compile(code, where, "exec"), namespace)
            ours = [
                str(w.message)
                for w in caught  # not other tests' temporary folders collected meanwhile
                if not issubclass(w.category, DeprecationWarning | ResourceWarning)
            ]
            assert ours == [], f"{where} warned: {ours}"
        ran.append(language)
    assert (tmp_path / "data" / "demo.log").stat().st_size > 0
    assert (tmp_path / "data" / "export" / "algr-tsv.manifest.json").is_file()
    frame = namespace["store"].training_frame(namespace["events"])
    assert frame["sid"].null_count() == 0 and frame["build_id"].n_unique() == 1
    assert ran.count("bash") >= 4 and ran.count("python") >= 5
