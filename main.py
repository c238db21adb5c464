"""Be-Safe command line: one entry point for the server and every admin task.

python main.py run                  start web chat (and, later, Telegram and the staff app)
python main.py migrate              bring the database schema up to date
python main.py survey validate F..  check survey files, listing every problem with its line
python main.py survey list          the survey files and the versions stored in the database
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from config.settings import Settings, SettingsError, load_settings


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        print(f"Be-Safe cannot start: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from config.logging import configure_logging
    from web.app import create_app

    settings = _settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    log = logging.getLogger("besafe")
    host = args.host or settings.host
    port = args.port or settings.port
    log.info(
        "starting", extra={"url": f"http://{host}:{port}/", "environment": settings.environment}
    )
    try:
        web.run_app(
            create_app(settings),
            host=host,
            port=port,
            print=None,
            access_log_format='%a "%r" %s %b %Tfs',
            shutdown_timeout=10,
        )
    except OSError as error:
        log.error("could not start the web server", extra={"error": str(error)})
        return 1
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from storage.db import current_revision, migrate

    settings = _settings_or_exit()
    url = settings.effective_database_url
    migrate(url)
    print(f"database is at revision {current_revision(url)}")
    return 0


def cmd_survey_validate(args: argparse.Namespace) -> int:
    from surveys.definition import load_survey_file

    failed = 0
    for name in args.files:
        path = Path(name)
        result = load_survey_file(path)
        if result.problems:
            failed += 1
            for problem in result.problems:
                print(str(problem))
        else:
            survey = result.survey
            assert survey is not None
            print(
                f"{path}: ok: {survey.id} version {survey.version}, "
                f"{len(survey.questions)} questions"
            )
    return 1 if failed else 0


def cmd_survey_list(args: argparse.Namespace) -> int:
    from surveys.definition import load_survey_dir

    settings = _settings_or_exit()
    surveys, problems = load_survey_dir(settings.surveys_dir)
    print(f"Survey files in {settings.surveys_dir}:")
    for survey in sorted(surveys, key=lambda s: (s.id, s.version)):
        audience = survey.audience
        years = (
            f"years {audience.min_year or 3}-{audience.max_year or 13}"
            if audience.min_year or audience.max_year
            else "all years"
        )
        print(
            f"  {survey.id:<24} v{survey.version:<3} {len(survey.questions):>3} questions  "
            f"{years:<12} {survey.title}"
        )
    for problem in problems:
        print(f"  REFUSED {problem}")
    db_path = settings.data_dir / "besafe.db"
    if settings.database_url or db_path.exists():
        from storage.db import create_db_engine, migrate
        from storage.repository import Repository

        url = settings.effective_database_url
        migrate(url)
        engine = create_db_engine(url)
        try:
            stored = Repository(engine).survey_definitions()
        finally:
            engine.dispose()
        print("Stored in the database:")
        for record in stored:
            print(f"  {record.survey_id:<24} v{record.version:<3} {record.title}")
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py",
        description="Be-Safe: anonymous chat surveys with safeguarding built in.",
        epilog="Settings come from BESAFE_* environment variables and an optional TOML file "
        "named by BESAFE_CONFIG_FILE; see README.md.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="start the server (web chat on BESAFE_HOST:BESAFE_PORT)")
    run.add_argument("--host", help="override BESAFE_HOST")
    run.add_argument("--port", type=int, help="override BESAFE_PORT")
    run.set_defaults(func=cmd_run)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate.set_defaults(func=cmd_migrate)

    survey = commands.add_parser("survey", help="survey definitions")
    survey_commands = survey.add_subparsers(dest="survey_command", required=True, metavar="ACTION")
    validate = survey_commands.add_parser(
        "validate", help="check survey YAML files and list every problem with its line"
    )
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.set_defaults(func=cmd_survey_validate)
    listing = survey_commands.add_parser("list", help="list survey files and stored versions")
    listing.set_defaults(func=cmd_survey_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
