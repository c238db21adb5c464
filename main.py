"""Be-Safe command line: one entry point for the server and every admin task.

python main.py run                  start web chat (and, later, Telegram and the staff app)
python main.py migrate              bring the database schema up to date
python main.py survey validate F..  check survey files, listing every problem with its line
python main.py survey list          the survey files and the versions stored in the database
python main.py user add --role R --username U [--password-stdin]   create a staff account
python main.py audit verify         check the audit log's hash chain
python main.py report CODE --format html|csv|xlsx|json --output FILE   a board report
python main.py classify             screen lines from stdin (JSON {id, text} or plain), JSON out
python main.py broadcast status CODE [--follow]   a campaign's invitations and reminders
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


def cmd_user_add(args: argparse.Namespace) -> int:
    import getpass

    from storage.clock import utcnow
    from storage.db import create_db_engine, migrate
    from storage.repository import Repository
    from storage.staff import DuplicateUsername, add_user, normalise_username
    from web.staff.passwords import hash_password, password_problem, username_problem

    settings = _settings_or_exit()
    username = normalise_username(args.username)
    problem = username_problem(username)
    if problem:
        print(f"user add: {problem}", file=sys.stderr)
        return 2
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"Password for {username}: ")
        if getpass.getpass("Same password again: ") != password:
            print("user add: the two passwords are different", file=sys.stderr)
            return 2
    problem = password_problem(password, username)
    if problem:
        print(f"user add: {problem}", file=sys.stderr)
        return 2
    url = settings.effective_database_url
    migrate(url)
    engine = create_db_engine(url)
    password_hash = hash_password(password)
    try:
        user_id = Repository(engine).run(
            lambda uow: add_user(
                uow.connection,
                username=username,
                role=args.role,
                password_hash=password_hash,
                actor_id=None,
                address="cli",
                now=utcnow(),
            )
        )
    except DuplicateUsername:
        print(f"user add: the username {username!r} is taken", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"created {args.role} {username!r} (id {user_id}); log in at /staff/login")
    if args.role == "safeguarding_lead" and settings.leads_need_2fa:
        print("they will be asked to set up two-step login (TOTP) at their first login")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from storage.audit import audit_count, verify_audit
    from storage.db import create_db_engine, migrate
    from storage.repository import Repository

    settings = _settings_or_exit()
    url = settings.effective_database_url
    migrate(url)
    engine = create_db_engine(url)
    try:
        count, broken = Repository(engine).run(
            lambda uow: (audit_count(uow.connection), verify_audit(uow.connection))
        )
    finally:
        engine.dispose()
    if broken is not None:
        print(
            f"audit log BROKEN at entry {broken}: it, or the entry before it, was changed, "
            "removed or inserted",
            file=sys.stderr,
        )
        return 1
    print(f"audit log intact ({count} entries)")
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from moderation.classify import run
    from moderation.detector import Detector

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    detector = Detector.load(with_semantic=False if args.rules_only else None)
    return run(sys.stdin.buffer, sys.stdout.buffer, detector)


def cmd_report(args: argparse.Namespace) -> int:
    from storage.clock import utcnow
    from storage.db import create_db_engine, migrate
    from storage.reports import campaign_counts, trend_history
    from storage.repository import Repository, UnknownCampaign
    from storage.review import read
    from surveys.report import ReportOptions, build_report
    from web.exports import export
    from web.staff.review_rules import Deadlines, deadline_for

    settings = _settings_or_exit()
    url = settings.effective_database_url
    migrate(url)
    engine = create_db_engine(url)
    deadlines = Deadlines.from_settings(settings)
    options = ReportOptions(
        threshold=settings.report_suppression_threshold,
        rounding=settings.report_rounding,
        deadline=lambda severity, raised: deadline_for(severity, raised, deadlines),
        now=utcnow(),
    )
    try:
        counts, history = read(
            Repository(engine),
            lambda c: (campaign_counts(c, args.campaign), trend_history(c, args.campaign)),
        )
    except UnknownCampaign:
        print(f"report: no campaign has the code {args.campaign!r}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    data = export(build_report(counts, options, history), args.format)
    if args.output == "-":
        sys.stdout.buffer.write(data)
    else:
        Path(args.output).write_bytes(data)
        print(f"wrote the {args.format} report of {args.campaign!r} to {args.output}")
    return 0


def cmd_broadcast_status(args: argparse.Namespace) -> int:
    from bot.broadcast_status import show
    from storage.broadcasts import broadcast_progress
    from storage.db import create_db_engine, migrate
    from storage.repository import Repository
    from storage.review import read

    settings = _settings_or_exit()
    url = settings.effective_database_url
    migrate(url)
    engine = create_db_engine(url)
    repository = Repository(engine)
    try:
        return show(
            args.campaign,
            lambda: read(repository, lambda c: broadcast_progress(c, args.campaign)),
            follow=args.follow,
            interval=args.interval,
        )
    except KeyboardInterrupt:
        return 0
    finally:
        engine.dispose()


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

    user = commands.add_parser("user", help="staff accounts")
    user_commands = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    user_add = user_commands.add_parser(
        "add", help="create a staff account (asks for the password twice)"
    )
    user_add.add_argument(
        "--role",
        required=True,
        choices=("admin", "safeguarding_lead", "facilitator", "board_viewer"),
    )
    user_add.add_argument("--username", required=True)
    user_add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input instead of asking",
    )
    user_add.set_defaults(func=cmd_user_add)

    audit = commands.add_parser("audit", help="the tamper-evident audit log")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = audit_commands.add_parser(
        "verify", help="check the hash chain; names the first broken entry"
    )
    verify.set_defaults(func=cmd_audit_verify)

    report = commands.add_parser(
        "report", help="a campaign's board report (suppressed figures only) as a file"
    )
    report.add_argument("campaign", metavar="CAMPAIGN", help="the campaign code")
    report.add_argument("--format", choices=("html", "csv", "xlsx", "json"), default="html")
    report.add_argument("--output", required=True, metavar="FILE", help="a file, or - for stdout")
    report.set_defaults(func=cmd_report)

    classify = commands.add_parser(
        "classify",
        help="screen JSON lines {id, text} (or plain lines) from stdin; one JSON answer a line",
    )
    classify.add_argument(
        "--rules-only", action="store_true", help="stage 1 only, even if stage 2 is installed"
    )
    classify.set_defaults(func=cmd_classify)

    broadcast = commands.add_parser("broadcast", help="invitations and reminders to subscribers")
    broadcast_commands = broadcast.add_subparsers(
        dest="broadcast_command", required=True, metavar="ACTION"
    )
    status = broadcast_commands.add_parser(
        "status", help="queued, sent, failed and blocked per broadcast, as progress bars"
    )
    status.add_argument("campaign", metavar="CODE", help="the campaign code")
    status.add_argument(
        "--follow", action="store_true", help="keep redrawing until every send is done"
    )
    status.add_argument(
        "--interval", type=float, default=2.0, metavar="SECONDS", help="between redraws"
    )
    status.set_defaults(func=cmd_broadcast_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
