"""Finding the config (--config before or after the command, PUBLISHER_CONFIG), `config check`, and --help."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import tomli_w

from tests.conftest import Project, run_publisher

UNSET = ("PUBLISHER_CONFIG", "PUBLISHER_MAILER_KEY", "PUBLISHER_LOG_FORMAT")


def publisher(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m publisher ARGS`` in ``cwd``, in an environment without publisher's variables but ``env``."""
    return run_publisher(*args, cwd=cwd, env=env, unset=UNSET)


# -- where the config is --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [("--config", "{config}", "status"), ("status", "--config", "{config}"), ("status", "--config={config}")],
    ids=["before", "after", "after="],
)
def test_config_before_or_after_the_command(project: Project, tmp_path: Path, args: tuple[str, ...]) -> None:
    done = publisher(*(arg.format(config=project.config_path) for arg in args), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"store: sqlite:///{project.root}/publisher.db")


def test_config_after_a_nested_command(project: Project, tmp_path: Path) -> None:
    assert publisher("run", "--config", str(project.config_path), cwd=tmp_path).returncode == 0
    done = publisher("digest", "list", "--config", str(project.config_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\tsent\t") == 1


def test_publisher_config_in_the_environment(project: Project, tmp_path: Path) -> None:
    done = publisher("run", cwd=tmp_path, env={"PUBLISHER_CONFIG": str(project.config_path)})
    assert done.returncode == 0, done.stderr
    assert len(project.outbox_files()) == 1
    assert not (tmp_path / "publisher.db").exists()


def test_config_after_the_command_wins(project: Project, tmp_path: Path) -> None:
    other = tmp_path / "nowhere.toml"
    done = publisher("--config", str(other), "status", "--config", str(project.config_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = publisher("status", "--config", str(other), cwd=tmp_path, env={"PUBLISHER_CONFIG": str(project.config_path)})
    assert done.returncode == 2
    assert done.stderr.startswith(f"publisher: error: {other}: not found")


def test_a_missing_config_points_to_init(tmp_path: Path) -> None:
    done = publisher("run", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == (
        "publisher: error: publisher.toml: not found (`publisher init` writes one; or pass --config, "
        "set PUBLISHER_CONFIG, or cd to its folder)\n"
    )


# -- config check ---------------------------------------------------------------------------------


def test_config_check_of_a_good_project(project: Project) -> None:
    done = publisher("config", "check", cwd=project.root)

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert all(line.startswith("ok: ") for line in lines), lines
    assert lines[0] == f"ok: {project.config_path}: every setting is valid"
    assert "ok: publisher.toml: [digest] subject and templates (the bundled templates) compile" in lines
    assert f"ok: store: no store yet at sqlite:///{project.root}/publisher.db; `publisher run` creates it" in lines
    assert not (project.root / "publisher.db").exists()  # checked, not created

    assert publisher("run", cwd=project.root).returncode == 0
    again = publisher("config", "check", cwd=project.root)
    assert again.returncode == 0
    reached = [line for line in again.stdout.splitlines() if line.startswith("ok: store: sqlite:///")]
    assert len(reached) == 1 and "reached, schema v" in reached[0], again.stdout


def test_config_check_reports_each_error_on_one_line(project: Project, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "digest.html.j2").write_text("{% for a in articles %}", encoding="utf-8")
    (templates / "digest.txt.j2").write_text("text", encoding="utf-8")
    project.settings["digest"]["templates_dir"] = str(templates)
    project.settings["mailer"] |= {
        "provider": "mailgun",
        "domain": "mg.example.org",
        "url": "https://api.mailgun.invalid",
    }
    project.settings["articles"]["dir"] = "no-such-folder"
    project.config_path.write_text(tomli_w.dumps(project.settings), encoding="utf-8")

    done = publisher("config", "check", cwd=project.root)

    assert done.returncode == 2
    errors = [line for line in done.stdout.splitlines() if line.startswith("error: ")]
    assert len(errors) == 4, done.stdout
    assert "[articles] dir: folder not found" in errors[0]
    assert "[digest] templates_dir: " in errors[1] and "digest.html.j2:1:" in errors[1]
    assert "environment variable PUBLISHER_MAILER_KEY is not set" in errors[2]
    assert errors[3].startswith("error: publisher.toml: [mailer] url: api.mailgun.invalid does not resolve")
    assert done.stderr == ""


def test_config_check_resolves_the_provider_host(project: Project) -> None:
    project.configure(mailer={"provider": "webhook", "url": "http://localhost:9/digest"})
    done = publisher("config", "check", cwd=project.root)
    assert done.returncode == 0, done.stdout
    assert "ok: publisher.toml: [mailer] url: localhost resolves" in done.stdout.splitlines()


def test_config_check_of_a_broken_file_is_one_error(project: Project) -> None:
    project.config_path.write_text("[site\n", encoding="utf-8")
    done = publisher("config", "check", cwd=project.root)
    assert done.returncode == 2
    [line] = done.stdout.splitlines()
    assert line.startswith("error: publisher.toml: not valid TOML")


# -- help -----------------------------------------------------------------------------------------

COMMANDS = [
    ("init",),
    ("run",),
    ("ingest",),
    ("feed",),
    ("articles", "list"),
    ("articles", "remove"),
    ("config", "check"),
    ("digest", "preview"),
    ("digest", "list"),
    ("digest", "test"),
    ("digest", "send"),
    ("digest", "resume"),
    ("digest", "close"),
    ("digest", "hold"),
    ("digest", "release"),
    ("subscribers", "import"),
    ("subscribers", "add"),
    ("subscribers", "remove"),
    ("subscribers", "list"),
    ("subscribers", "sync-suppressions"),
    ("subscribers", "export"),
    ("subscribers", "forget"),
    ("sources", "list"),
    ("db", "upgrade"),
    ("db", "copy"),
    ("daemon",),
    ("status",),
    ("serve",),
]


def test_every_command_is_listed_here() -> None:
    import click

    from publisher.cli import main

    def leaves(group: click.Group, prefix: tuple[str, ...]) -> set[tuple[str, ...]]:
        found: set[tuple[str, ...]] = set()
        for name, command in group.commands.items():
            found |= leaves(command, (*prefix, name)) if isinstance(command, click.Group) else {(*prefix, name)}
        return found

    assert leaves(main, ()) == set(COMMANDS)


@pytest.mark.parametrize(
    "command",
    [(), *COMMANDS, ("articles",), ("digest",), ("subscribers",), ("config",), ("sources",), ("db",)],
    ids=str,
)
def test_every_help_has_an_example_and_nothing_cut_at_80_columns(command: tuple[str, ...], tmp_path: Path) -> None:
    done = publisher(*command, "--help", cwd=tmp_path, env={"COLUMNS": "80"})
    assert done.returncode == 0, done.stderr
    assert "  Examples:\n    publisher " in done.stdout
    if "Commands:\n" in done.stdout:  # click cuts a long short help with "..."
        listing = done.stdout.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
        assert not any(line.endswith("...") for line in listing.splitlines()), listing
    assert max(len(line) for line in done.stdout.splitlines()) <= 80, done.stdout


def test_the_top_level_list_fits_80_columns(tmp_path: Path) -> None:
    done = publisher("--help", cwd=tmp_path, env={"COLUMNS": "80"})
    listing = done.stdout.split("Commands:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(listing) == 13
    assert all(len(line) <= 80 and not line.endswith("...") for line in listing)
    assert any(line.split()[0] == "init" for line in listing)
