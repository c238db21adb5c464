"""Be-Safe command line: one entry point for the server and every admin task.

python main.py run                  start web chat (and, later, Telegram and the staff app)
python main.py migrate              bring the database schema up to date
python main.py survey validate F..  check survey files, listing every problem with its line
python main.py survey list          the survey files and the versions stored in the database
python main.py survey import F.xlsx [--output F.yaml]   an XLSForm workbook -> survey YAML
python main.py user add --role R --username U [--password-stdin]   create a staff account
python main.py audit verify         check the audit log's hash chain
python main.py report CODE --format html|csv|xlsx|json --output FILE   a board report
python main.py classify             screen lines from stdin (JSON {id, text} or plain), JSON out
python main.py campaign create|edit|list|schedule|open|close|archive|status  campaigns
python main.py broadcast status CODE [--follow]   a campaign's invitations and reminders
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from config.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:  # the campaign commands' types; imported lazily at run time
    from sqlalchemy import Engine

    from storage.campaigns import Campaign
    from storage.repository import Repository
    from surveys.campaigns import CampaignPlan


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
    from surveys.xlsform import load_any_survey_file

    failed = 0
    for name in args.files:
        path = Path(name)
        result = load_any_survey_file(path)
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


def cmd_survey_import(args: argparse.Namespace) -> int:
    """An XLSForm workbook -> survey YAML; exit 2 (problems listed by row) for a bad workbook."""
    from surveys.definition import parse_survey
    from surveys.xlsform import load_xlsform_file, survey_yaml

    path = Path(args.file)
    converted = load_xlsform_file(path)
    result = converted.result
    for problem in [*result.problems, *result.warnings]:
        print(str(problem), file=sys.stderr)
    if result.problems or converted.yaml_text is None:
        count = len(result.problems)
        print(f"{path}: not imported: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        return 2
    text = survey_yaml(converted.yaml_text, path.name)
    if not parse_survey(text, "imported").ok:  # never write a file the loader would refuse
        print(f"{path}: not imported: the converted YAML did not check out", file=sys.stderr)
        return 1
    if args.output in (None, "-"):
        sys.stdout.write(text)
        return 0
    output = Path(args.output)
    if output.exists() and not args.force:
        print(f"{output} already exists; use --force to replace it", file=sys.stderr)
        return 2
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        print(f"cannot write {output}: {error.strerror or error}", file=sys.stderr)
        return 1
    survey = result.survey
    assert survey is not None
    print(
        f"{path}: imported {survey.id} version {survey.version} "
        f"({len(survey.questions)} questions) to {output}"
    )
    return 0


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
    from storage.reports import report_counts
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
        counts, history = read(Repository(engine), lambda c: report_counts(c, args.campaign))
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


# ---------------------------------------------------------------- campaigns (issue 6)


def _campaign_repository() -> tuple[Engine, Repository]:
    from storage.db import create_db_engine, migrate
    from storage.repository import Repository

    settings = _settings_or_exit()
    url = settings.effective_database_url
    migrate(url)
    engine = create_db_engine(url)
    repository = Repository(engine)
    # As the server does at start-up: the survey files are stored (and so can be chosen).
    from bot.catalogue import Catalogue

    Catalogue(repository).load_directory(settings.surveys_dir)
    return engine, repository


def _campaign_plan(args: argparse.Namespace, repository: Repository) -> CampaignPlan:
    from storage.campaigns import stored_surveys
    from storage.clock import utcnow
    from surveys.audience import Audience
    from surveys.campaigns import CampaignError, CampaignPlan, parse_london

    survey_id, _, version_text = args.survey.partition(":")
    versions = [v for sid, v, _ in stored_surveys(repository) if sid == survey_id]
    if version_text:
        if not version_text.isdigit():
            raise CampaignError(f"the survey version {version_text!r} is not a number")
        version = int(version_text)
    elif versions:
        version = max(versions)
    else:
        raise CampaignError(
            f"no stored survey {survey_id!r}: python main.py survey list shows the surveys"
        )
    return CampaignPlan(
        code=args.code,
        title=args.title,
        survey_id=survey_id,
        survey_version=version,
        opens_at=parse_london(args.opens, "opening time")
        if args.opens
        else utcnow().replace(microsecond=0),
        closes_at=parse_london(args.closes, "closing time") if args.closes else None,
        audience=Audience.build(
            key_stages=args.key_stage,
            years=args.year,
            schools=args.school,
            areas=args.area,
            channels=args.channel,
        ),
        invitation_text=args.invitation,
        reminder_text=args.reminder_text,
        reminder_times=tuple(parse_london(t, "reminder time") for t in args.reminder),
        send_spread_minutes=args.spread_minutes,
        target_responses=args.target,
    )


def _edited_plan(args: argparse.Namespace, before: CampaignPlan) -> CampaignPlan:
    """`before` with only the options given on the command line changed."""
    from dataclasses import replace

    from surveys.audience import Audience
    from surveys.campaigns import parse_london

    changes: dict[str, object] = {}
    if args.title is not None:
        changes["title"] = args.title
    if args.opens is not None:
        changes["opens_at"] = parse_london(args.opens, "opening time")
    if args.no_closing_time:
        changes["closes_at"] = None
    elif args.closes is not None:
        changes["closes_at"] = parse_london(args.closes, "closing time")
    if args.invitation is not None:
        changes["invitation_text"] = args.invitation
    if args.reminder_text is not None:
        changes["reminder_text"] = args.reminder_text
    if args.no_reminders:
        changes["reminder_times"] = ()
    elif args.reminder:
        changes["reminder_times"] = tuple(parse_london(t, "reminder time") for t in args.reminder)
    if args.target is not None:
        changes["target_responses"] = args.target or None  # 0 removes the target
    if args.spread_minutes is not None:
        changes["send_spread_minutes"] = args.spread_minutes
    # The audience is replaced as a whole when any part of it is given.
    if args.key_stage or args.year or args.school or args.area or args.channel:
        changes["audience"] = Audience.build(
            key_stages=args.key_stage,
            years=args.year,
            schools=args.school,
            areas=args.area,
            channels=args.channel,
        )
    elif args.everyone:
        changes["audience"] = Audience()
    return replace(before, **changes)


def _print_campaign(campaign: Campaign) -> None:
    from surveys.campaigns import STATE_LABELS, format_london

    plan = campaign.plan
    print(f"{plan.code}: {plan.title}")
    print(f"  state:      {STATE_LABELS.get(campaign.status, campaign.status)}")
    print(f"  survey:     {plan.survey_id} version {plan.survey_version}")
    print(f"  opens:      {format_london(plan.opens_at)}")
    print(f"  closes:     {format_london(plan.closes_at, empty='no closing time')}")
    print(f"  audience:   {plan.audience.describe()}")
    if plan.reminder_times:
        times = "; ".join(format_london(t) for t in plan.reminder_times)
        print(f"  reminders:  {times}")


def cmd_campaign(args: argparse.Namespace) -> int:
    """create | edit | list | schedule | open | close | archive | status."""
    from storage import campaigns as store
    from storage.campaign_progress import progress_counts
    from storage.repository import UnknownCampaign
    from storage.review import read
    from surveys.audience import AudienceError
    from surveys.campaigns import ACTIONS, STATE_LABELS, CampaignError, format_london

    engine, repository = _campaign_repository()
    actor = store.Actor(None, "cli")
    action = args.campaign_command
    try:
        if action == "create":
            created = store.create_campaign(repository, _campaign_plan(args, repository), actor)
            print(f"created draft campaign {created.code!r}")
            _print_campaign(created)
            print(f"open it with: python main.py campaign open {created.code}")
        elif action == "edit":
            before = store.get_campaign(repository, args.code)
            edited = store.edit_campaign(
                repository, args.code, _edited_plan(args, before.plan), actor
            )
            if edited.plan == before.plan:
                print(f"{args.code}: nothing changed")
            else:
                changed = ", ".join(sorted(before.plan.changed_fields(edited.plan)))
                print(f"{args.code}: changed {changed}")
            _print_campaign(edited)
        elif action == "list":
            found = store.list_campaigns(repository)
            if not found:
                print("no campaigns yet")
            for campaign in found:
                print(
                    f"{campaign.code:<28} {STATE_LABELS.get(campaign.status, campaign.status):<10}"
                    f" {format_london(campaign.plan.opens_at):<28}"
                    f" {format_london(campaign.plan.closes_at, empty='-'):<28}"
                    f" {campaign.plan.title}"
                )
        elif action in ACTIONS:
            moved = store.transition_campaign(repository, args.code, ACTIONS[action], actor)
            print(f"{moved.code}: now {STATE_LABELS[moved.status].lower()}")
            if moved.status == "open":
                print("  young people are offered it within a minute (a running server's refresh)")
        elif action == "status":
            campaign = store.get_campaign(repository, args.code)
            counts = read(repository, lambda c: progress_counts(c, args.code))
            _print_campaign(campaign)
            target = campaign.plan.target_responses
            rate = f"{round(counts.completed / counts.started * 100)}%" if counts.started else "-"
            print(f"  started:    {counts.started}")
            print(f"  completed:  {counts.completed} (completion rate {rate})")
            if target:
                share = min(100, round(counts.completed / target * 100))
                bar = "#" * (share // 5) + "." * (20 - share // 5)
                print(f"  target:     {counts.completed} of {target} [{bar}] {share}%")
            print(f"  flags:      {counts.flags} raised (counts only)")
    except UnknownCampaign as error:
        print(f"campaign {action}: {error}", file=sys.stderr)
        return 1
    except (CampaignError, AudienceError) as error:
        print(f"campaign {action}: {error}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


def _add_campaign_commands(commands: argparse._SubParsersAction) -> None:
    campaign = commands.add_parser(
        "campaign", help="campaigns: create, edit, list, schedule, open, close, archive, status"
    )
    actions = campaign.add_subparsers(dest="campaign_command", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", help="create a draft campaign (times are London time, YYYY-MM-DD HH:MM)"
    )
    create.add_argument("--code", required=True, help="join code: lowercase letters, digits, -")
    create.add_argument("--title", required=True)
    create.add_argument(
        "--survey", required=True, metavar="ID[:VERSION]", help="default: newest stored version"
    )
    create.add_argument("--opens", help="London time; default now")
    create.add_argument("--closes", help="London time; default no closing time")
    create.add_argument("--invitation", help="sent to opted-in young people when it opens")
    create.add_argument("--reminder-text")
    create.add_argument(
        "--reminder", action="append", default=[], metavar="TIME", help="London time; repeat"
    )
    create.add_argument("--target", type=int, help="target number of responses")
    create.add_argument("--spread-minutes", type=int, default=0, help="spread large sends")
    create.add_argument("--key-stage", action="append", default=[], help="KS2..KS5; repeat")
    create.add_argument("--year", action="append", type=int, default=[], help="3..13; repeat")
    create.add_argument("--school", action="append", default=[])
    create.add_argument("--area", action="append", default=[])
    create.add_argument("--channel", action="append", default=[], help="telegram or web")
    create.set_defaults(func=cmd_campaign)
    edit = actions.add_parser(
        "edit",
        help="change a campaign's plan as far as its state allows (only the options given)",
    )
    edit.add_argument("code", metavar="CODE")
    edit.add_argument("--title")
    edit.add_argument("--opens", help="London time")
    edit.add_argument("--closes", help="London time")
    edit.add_argument("--no-closing-time", action="store_true", help="remove the closing time")
    edit.add_argument("--invitation")
    edit.add_argument("--reminder-text")
    edit.add_argument(
        "--reminder",
        action="append",
        default=[],
        metavar="TIME",
        help="London time; repeat; replaces the planned reminders",
    )
    edit.add_argument("--no-reminders", action="store_true", help="remove every reminder")
    edit.add_argument("--target", type=int, help="target number of responses; 0 removes it")
    edit.add_argument("--spread-minutes", type=int)
    edit.add_argument(
        "--key-stage", action="append", default=[], help="replaces the audience; repeat"
    )
    edit.add_argument("--year", action="append", type=int, default=[])
    edit.add_argument("--school", action="append", default=[])
    edit.add_argument("--area", action="append", default=[])
    edit.add_argument("--channel", action="append", default=[])
    edit.add_argument("--everyone", action="store_true", help="no audience restriction")
    edit.set_defaults(func=cmd_campaign)
    actions.add_parser("list", help="every campaign with its state and times").set_defaults(
        func=cmd_campaign
    )
    for name, words in (
        ("schedule", "open it automatically at its opening time"),
        ("unschedule", "back to draft"),
        ("open", "open now"),
        ("close", "close now (those mid-survey may finish within two hours)"),
        ("archive", "keep for the record; no more changes"),
        ("status", "state, started and completed against the target, flags raised"),
    ):
        parser = actions.add_parser(name, help=words)
        parser.add_argument("code", metavar="CODE")
        parser.set_defaults(func=cmd_campaign)


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
        "validate",
        help="check survey files (YAML, or XLSForm .xlsx) and list every problem by line or row",
    )
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.set_defaults(func=cmd_survey_validate)
    listing = survey_commands.add_parser("list", help="list survey files and stored versions")
    listing.set_defaults(func=cmd_survey_list)
    survey_import = survey_commands.add_parser(
        "import", help="convert an XLSForm workbook (.xlsx) to survey YAML, checked as YAML is"
    )
    survey_import.add_argument("file", metavar="FILE.xlsx")
    survey_import.add_argument(
        "--output", metavar="PATH.yaml", help="where to write the YAML (default: standard output)"
    )
    survey_import.add_argument(
        "--force", action="store_true", help="replace the output file if it exists"
    )
    survey_import.set_defaults(func=cmd_survey_import)

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
    _add_campaign_commands(commands)
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
