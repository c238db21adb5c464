"""Staff accounts: login (password, then TOTP), logout, second-factor enrolment,
change of password, and the user admin pages for admins.

Every login, logout, failure, lockout and second-factor event is audited (who,
when, what, from where) in the same transaction as its effect. What a failed
login tells the person is always the same sentence; the log and the audit say
exactly why.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from urllib.parse import quote

from aiohttp import web

from storage.audit import AuditEntry, append_audit, audit_count, audit_entries
from storage.repository import UnitOfWork
from storage.staff import (
    DuplicateUsername,
    StaffUserRecord,
    add_user,
    count_active_admins,
    delete_user_sessions,
    list_users,
    normalise_username,
    recent_failures_from,
    record_login_failure,
    record_login_success,
    update_user,
    user_by_id,
    user_by_username,
    usernames,
)
from web.staff.auth import (
    LOGIN_PATH,
    ROLE_LABELS,
    ROLES,
    STAFF_SERVER_SECRET,
    client_address,
    current_user,
    end_session,
    hash_token,
    log,
    public,
    register_nav,
    render,
    require_role,
    run_db,
    safe_next,
    settings_of,
    staff_context,
    start_session,
)
from web.staff.passwords import (
    hash_password,
    needs_rehash,
    password_problem,
    username_problem,
    verify_password,
)
from web.staff.totp import (
    TotpSecretError,
    grouped,
    new_secret,
    open_secret,
    provisioning_uri,
    qr_data_uri,
    seal_secret,
    verify_code,
)

LOGIN_FAILED_TEXT = (
    "Those details didn't work, or this account can't log in just now. "
    "Check them and try again in a few minutes."
)
CODE_FAILED_TEXT = "That code didn't work. Check the time on your device and try again."
# What counts towards the per-address limit.
FAILURE_ACTIONS: tuple[str, ...] = ("login.failed", "login.totp_failed")
MAX_FIELD_CHARS = 300


def setup_accounts(app: web.Application) -> None:
    router = app.router
    router.add_get("/staff", staff_root)
    router.add_get("/staff/", home, name="staff-home")
    router.add_get("/staff/login", login_page, name="staff-login")
    router.add_post("/staff/login", login_submit)
    router.add_get("/staff/login/totp", totp_page, name="staff-login-totp")
    router.add_post("/staff/login/totp", totp_submit)
    router.add_post("/staff/logout", logout, name="staff-logout")
    router.add_get("/staff/account", account_page, name="staff-account")
    router.add_get("/staff/account/totp", enrol_page, name="staff-enrol")
    router.add_post("/staff/account/totp", enrol_submit)
    router.add_get("/staff/account/password", password_page, name="staff-password")
    router.add_post("/staff/account/password", password_submit)
    router.add_get("/staff/users", users_page, name="staff-users")
    router.add_post("/staff/users", user_create)
    router.add_post(r"/staff/users/{user_id:\d+}", user_update, name="staff-user-update")
    router.add_get("/staff/audit", audit_page, name="staff-audit")
    register_nav(app, "Users", "/staff/users", ("admin",))
    register_nav(app, "Audit log", "/staff/audit", ("admin",))
    register_nav(app, "My account", "/staff/account", ROLES)


async def _form(request: web.Request) -> dict[str, str]:
    data = await request.post()
    return {
        key: value[:MAX_FIELD_CHARS]
        if key not in ("password", "new_password", "confirm")
        else value[:1024]
        for key, value in data.items()
        if isinstance(value, str)
    }


def _failed_attempt(
    uow: UnitOfWork,
    request: web.Request,
    user_id: int,
    action: str,
    reason: str,
    *,
    now: datetime,
) -> bool:
    """Count a failed password or code for `user_id`, audit it (and a lockout); locked now?"""
    settings = settings_of(request)
    locked = record_login_failure(
        uow.connection,
        user_id,
        now=now,
        max_failures=settings.login_max_failures,
        lockout=timedelta(minutes=settings.login_lockout_minutes),
    )
    target = _user_target(user_id)
    _audit(uow, request, action, actor_id=user_id, target=target, details={"reason": reason})
    if locked:
        _audit(
            uow,
            request,
            "login.lockout",
            actor_id=user_id,
            target=target,
            details={"minutes": settings.login_lockout_minutes},
        )
    return locked


def _audit(
    uow: UnitOfWork,
    request: web.Request,
    action: str,
    *,
    actor_id: int | None,
    target: str | None = None,
    details: dict | None = None,
) -> None:
    append_audit(
        uow.connection,
        actor_id=actor_id,
        action=action,
        target=target,
        address=client_address(request),
        details=details,
    )


def _user_target(user_id: int) -> str:
    return f"staff_user:{user_id}"


# ---------------------------------------------------------------- home


@public
async def staff_root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/staff/")


@require_role(*ROLES)
async def home(request: web.Request) -> web.StreamResponse:
    return render(request, "staff/home.html", {})


# ---------------------------------------------------------------- login


@public
async def login_page(request: web.Request) -> web.StreamResponse:
    context = staff_context(request)
    if context.user is not None:
        raise web.HTTPFound(safe_next(request.query.get("next")))
    return render(request, "staff/login.html", {"next": safe_next(request.query.get("next"))})


def _login_failed(request: web.Request, next_path: str, username: str = "") -> web.Response:
    return render(
        request,
        "staff/login.html",
        {"error": LOGIN_FAILED_TEXT, "next": next_path, "username": username},
        status=401,
    )


@public
async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    username = normalise_username(form.get("username", ""))[:64]
    password = form.get("password", "")
    next_path = safe_next(form.get("next"))
    settings = settings_of(request)
    address = client_address(request)
    window = timedelta(minutes=settings.login_lockout_minutes)

    def look(uow: UnitOfWork) -> tuple[bool, StaffUserRecord | None]:
        failures = recent_failures_from(uow.connection, address, FAILURE_ACTIONS, uow.now - window)
        record = user_by_username(uow.connection, username) if username else None
        return failures >= settings.login_max_failures_per_address, record

    throttled, record = await run_db(request, look)
    usable = record is not None and record.active
    ok = await asyncio.to_thread(
        verify_password, record.password_hash if usable and record else None, password
    )
    if throttled:
        log.warning(
            "staff login refused: too many failures from this address",
            extra={"address": address, "username": username},
        )
        await run_db(
            request,
            lambda uow: _audit(
                uow,
                request,
                "login.throttled",
                actor_id=record.id if record else None,
                details={"username": username},
            ),
        )
        return _login_failed(request, next_path, username)
    if record is None or not record.active:
        reason = "unknown_user" if record is None else "inactive"
        log.warning(
            "staff login failed", extra={"address": address, "reason": reason, "username": username}
        )
        await run_db(
            request,
            lambda uow: _audit(
                uow,
                request,
                "login.failed",
                actor_id=record.id if record else None,
                details={"username": username, "reason": reason},
            ),
        )
        return _login_failed(request, next_path, username)

    user = record

    def settle(uow: UnitOfWork) -> str:
        now = uow.now
        fresh = user_by_id(uow.connection, user.id)
        if fresh is None or fresh.locked_at(now):
            _audit(
                uow,
                request,
                "login.failed",
                actor_id=user.id,
                target=_user_target(user.id),
                details={"reason": "locked"},
            )
            return "locked"
        if not ok:
            locked = _failed_attempt(uow, request, user.id, "login.failed", "bad_password", now=now)
            return "lockout" if locked else "bad_password"
        if fresh.has_totp:
            stage = "totp"
        elif fresh.role == "safeguarding_lead" and settings.leads_need_2fa:
            stage = "enrol"
        else:
            stage = "full"
        if stage == "full":
            record_login_success(uow.connection, user.id, now=now)
            _audit(
                uow,
                request,
                "login.success",
                actor_id=user.id,
                target=_user_target(user.id),
                details={"factors": ["password"]},
            )
        else:
            _audit(
                uow,
                request,
                "login.password_ok",
                actor_id=user.id,
                target=_user_target(user.id),
                details={"next": stage},
            )
        start_session(request, uow, user_id=user.id, stage=stage, now=now)
        return stage

    outcome = await run_db(request, settle)
    if outcome in ("locked", "lockout", "bad_password"):
        level = log.warning
        level(
            "staff login failed",
            extra={"address": address, "reason": outcome, "staff_user_id": user.id},
        )
        return _login_failed(request, next_path, username)
    log.info("staff login", extra={"staff_user_id": user.id, "stage": outcome, "address": address})
    if ok and needs_rehash(user.password_hash):
        new_hash = await asyncio.to_thread(hash_password, password)
        await run_db(
            request, lambda uow: update_user(uow.connection, user.id, password_hash=new_hash)
        )
    if outcome == "totp":
        raise web.HTTPFound(f"/staff/login/totp?next={quote(next_path, safe='/')}")
    if outcome == "enrol":
        raise web.HTTPFound("/staff/account/totp")
    raise web.HTTPFound(next_path)


def _half_logged_in(request: web.Request, stage: str) -> StaffUserRecord | None:
    context = staff_context(request)
    if context.session is None or context.record is None or context.session.stage != stage:
        return None
    return context.record


@public
async def totp_page(request: web.Request) -> web.StreamResponse:
    if _half_logged_in(request, "totp") is None:
        raise web.HTTPFound(LOGIN_PATH)
    return render(request, "staff/totp.html", {"next": safe_next(request.query.get("next"))})


@public
async def totp_submit(request: web.Request) -> web.StreamResponse:
    record = _half_logged_in(request, "totp")
    if record is None:
        raise web.HTTPFound(LOGIN_PATH)
    form = await _form(request)
    code = form.get("code", "")
    next_path = safe_next(form.get("next"))
    server_secret = request.app[STAFF_SERVER_SECRET]
    address = client_address(request)
    now_unix = time.time()

    def work(uow: UnitOfWork) -> str:
        now = uow.now
        fresh = user_by_id(uow.connection, record.id)
        if fresh is None or not fresh.active or fresh.totp_secret is None:
            end_session(request, uow)
            return "gone"
        target = _user_target(fresh.id)
        if fresh.locked_at(now):
            end_session(request, uow)
            _audit(
                uow,
                request,
                "login.totp_failed",
                actor_id=fresh.id,
                target=target,
                details={"reason": "locked"},
            )
            return "locked"
        try:
            secret = open_secret(server_secret, fresh.totp_secret)
        except TotpSecretError:
            secret = None
        step = (
            None
            if secret is None
            else verify_code(secret, code, now_unix, last_step=fresh.totp_last_step)
        )
        if step is None:
            reason = "bad_code" if secret else "secret_unreadable"
            if _failed_attempt(uow, request, fresh.id, "login.totp_failed", reason, now=now):
                end_session(request, uow)
                return "lockout"
            return "bad_code"
        update_user(uow.connection, fresh.id, totp_last_step=step)
        record_login_success(uow.connection, fresh.id, now=now)
        start_session(request, uow, user_id=fresh.id, stage="full", now=now)
        _audit(
            uow,
            request,
            "login.success",
            actor_id=fresh.id,
            target=target,
            details={"factors": ["password", "totp"]},
        )
        return "ok"

    outcome = await run_db(request, work)
    if outcome == "ok":
        log.info(
            "staff login", extra={"staff_user_id": record.id, "stage": "full", "address": address}
        )
        raise web.HTTPFound(next_path)
    log.warning(
        "staff second factor failed",
        extra={"staff_user_id": record.id, "reason": outcome, "address": address},
    )
    if outcome in ("gone", "locked", "lockout"):
        return _login_failed(request, next_path)
    return render(
        request, "staff/totp.html", {"error": CODE_FAILED_TEXT, "next": next_path}, status=401
    )


@public
async def logout(request: web.Request) -> web.StreamResponse:
    context = staff_context(request)
    record = context.record

    def work(uow: UnitOfWork) -> None:
        if context.token is not None and record is not None:
            _audit(uow, request, "logout", actor_id=record.id, target=_user_target(record.id))
        end_session(request, uow)

    await run_db(request, work)
    if record is not None:
        log.info("staff logout", extra={"staff_user_id": record.id})
    raise web.HTTPFound(LOGIN_PATH)


# ---------------------------------------------------------------- own account


@require_role(*ROLES)
async def account_page(request: web.Request) -> web.StreamResponse:
    record = staff_context(request).record
    assert record is not None
    settings = settings_of(request)
    return render(
        request,
        "staff/account.html",
        {
            "record": record,
            "totp_required": record.role == "safeguarding_lead" and settings.leads_need_2fa,
        },
    )


@require_role(*ROLES, stages=("full", "enrol"))
async def enrol_page(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    server_secret = request.app[STAFF_SERVER_SECRET]

    def work(uow: UnitOfWork) -> tuple[bool, str | None]:
        fresh = user_by_id(uow.connection, user.id)
        assert fresh is not None
        if fresh.has_totp:
            return True, None
        if fresh.totp_secret is not None:
            try:
                return False, open_secret(server_secret, fresh.totp_secret)
            except TotpSecretError:
                pass
        secret = new_secret()
        update_user(
            uow.connection,
            user.id,
            totp_secret=seal_secret(server_secret, secret),
            totp_confirmed_at=None,
            totp_last_step=None,
        )
        _audit(
            uow, request, "totp.enrolment_started", actor_id=user.id, target=_user_target(user.id)
        )
        return False, secret

    enrolled, secret = await run_db(request, work)
    return _enrol_view(request, enrolled, secret)


def _enrol_view(
    request: web.Request, enrolled: bool, secret: str | None, *, error: str | None = None
) -> web.Response:
    user = current_user(request)
    context = staff_context(request)
    return render(
        request,
        "staff/enrol.html",
        {
            "enrolled": enrolled,
            "secret": grouped(secret) if secret else None,
            "uri": provisioning_uri(secret, user.username) if secret else None,
            "qr": qr_data_uri(provisioning_uri(secret, user.username)) if secret else None,
            "enrolling_at_login": context.session is not None and context.session.stage == "enrol",
            "error": error,
        },
        status=400 if error else 200,
    )


@require_role(*ROLES, stages=("full", "enrol"))
async def enrol_submit(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    context = staff_context(request)
    at_login = context.session is not None and context.session.stage == "enrol"
    form = await _form(request)
    code = form.get("code", "")
    server_secret = request.app[STAFF_SERVER_SECRET]
    now_unix = time.time()

    def work(uow: UnitOfWork) -> tuple[str, str | None]:
        fresh = user_by_id(uow.connection, user.id)
        assert fresh is not None
        target = _user_target(user.id)
        if fresh.has_totp:
            return "already", None
        if fresh.totp_secret is None:
            return "no_secret", None
        try:
            secret = open_secret(server_secret, fresh.totp_secret)
        except TotpSecretError:
            return "no_secret", None
        step = verify_code(secret, code, now_unix, last_step=fresh.totp_last_step)
        if step is None:
            _audit(uow, request, "totp.enrolment_failed", actor_id=user.id, target=target)
            return "bad_code", secret
        update_user(uow.connection, user.id, totp_confirmed_at=uow.now, totp_last_step=step)
        _audit(uow, request, "totp.enrolled", actor_id=user.id, target=target)
        # Other sessions were made with fewer factors: end them.
        delete_user_sessions(
            uow.connection, user.id, keep=hash_token(context.token) if context.token else None
        )
        if at_login:
            record_login_success(uow.connection, user.id, now=uow.now)
            start_session(request, uow, user_id=user.id, stage="full", now=uow.now)
            _audit(
                uow,
                request,
                "login.success",
                actor_id=user.id,
                target=target,
                details={"factors": ["password", "totp"]},
            )
        return "ok", None

    outcome, secret = await run_db(request, work)
    if outcome == "bad_code":
        log.warning("staff TOTP enrolment code wrong", extra={"staff_user_id": user.id})
        return _enrol_view(request, False, secret, error=CODE_FAILED_TEXT)
    if outcome == "no_secret":
        raise web.HTTPFound("/staff/account/totp")
    log.info("staff TOTP enrolled", extra={"staff_user_id": user.id})
    raise web.HTTPFound("/staff/" if at_login else "/staff/account")


@require_role(*ROLES)
async def password_page(request: web.Request) -> web.StreamResponse:
    return render(request, "staff/password.html", {})


@require_role(*ROLES)
async def password_submit(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    record = staff_context(request).record
    assert record is not None
    form = await _form(request)
    current, new, confirm = (
        form.get("password", ""),
        form.get("new_password", ""),
        form.get("confirm", ""),
    )
    problem = None
    if not await asyncio.to_thread(verify_password, record.password_hash, current):
        problem = "Your current password is not right."
    elif new != confirm:
        problem = "The two new passwords are different."
    else:
        problem = password_problem(new, user.username)
    if problem is not None:
        await run_db(
            request,
            lambda uow: _audit(
                uow,
                request,
                "password.change_failed",
                actor_id=user.id,
                target=_user_target(user.id),
            ),
        )
        return render(request, "staff/password.html", {"error": problem}, status=400)
    new_hash = await asyncio.to_thread(hash_password, new)

    def work(uow: UnitOfWork) -> None:
        update_user(uow.connection, user.id, password_hash=new_hash, password_changed_at=uow.now)
        delete_user_sessions(uow.connection, user.id)
        start_session(request, uow, user_id=user.id, stage="full", now=uow.now)
        _audit(uow, request, "password.changed", actor_id=user.id, target=_user_target(user.id))

    await run_db(request, work)
    log.info("staff password changed", extra={"staff_user_id": user.id})
    return render(request, "staff/password.html", {"done": True})


# ---------------------------------------------------------------- user admin


@require_role("admin")
async def users_page(request: web.Request) -> web.StreamResponse:
    return await _users_view(request)


async def _users_view(
    request: web.Request, *, error: str | None = None, notice: str | None = None
) -> web.Response:
    users = await run_db(request, lambda uow: list_users(uow.connection))
    return render(
        request,
        "staff/users.html",
        {
            "users": users,
            "roles": [(role, ROLE_LABELS[role]) for role in ROLES],
            "role_labels": ROLE_LABELS,
            "error": error,
            "notice": notice,
        },
        status=400 if error else 200,
    )


@require_role("admin")
async def user_create(request: web.Request) -> web.StreamResponse:
    admin = current_user(request)
    form = await _form(request)
    username = normalise_username(form.get("username", ""))
    role = form.get("role", "")
    password = form.get("password", "")
    problem = (
        username_problem(username)
        or (None if role in ROLES else "Choose a role.")
        or password_problem(password, username)
    )
    if problem is not None:
        return await _users_view(request, error=problem)
    password_hash = await asyncio.to_thread(hash_password, password)
    address = client_address(request)
    try:
        user_id = await run_db(
            request,
            lambda uow: add_user(
                uow.connection,
                username=username,
                role=role,
                password_hash=password_hash,
                actor_id=admin.id,
                address=address,
                now=uow.now,
            ),
        )
    except DuplicateUsername:
        return await _users_view(request, error="That username is taken.")
    log.info("staff user created", extra={"staff_user_id": user_id, "role": role, "by": admin.id})
    return await _users_view(request, notice=f"Account {username} created.")


USER_ACTIONS = ("role", "deactivate", "activate", "unlock", "reset_2fa", "password")


@require_role("admin")
async def user_update(request: web.Request) -> web.StreamResponse:
    admin = current_user(request)
    user_id = int(request.match_info["user_id"])
    form = await _form(request)
    action = form.get("action", "")
    if action not in USER_ACTIONS:
        return await _users_view(request, error="Unknown action.")
    role = form.get("role", "")
    if action == "role" and role not in ROLES:
        return await _users_view(request, error="Choose a role.")
    new_hash = None
    if action == "password":
        target_name = await run_db(
            request, lambda uow: usernames(uow.connection, [user_id]).get(user_id)
        )
        if target_name is None:
            raise web.HTTPNotFound()
        password = form.get("password", "")
        problem = password_problem(password, target_name)
        if problem is not None:
            return await _users_view(request, error=problem)
        new_hash = await asyncio.to_thread(hash_password, password)

    def work(uow: UnitOfWork) -> str | None:
        target = user_by_id(uow.connection, user_id)
        if target is None:
            return "missing"
        connection = uow.connection
        removes_admin = target.role == "admin" and (
            action == "deactivate" or (action == "role" and role != "admin")
        )
        if removes_admin and target.id == admin.id:
            return "You cannot remove your own administrator access."
        if removes_admin and target.active and count_active_admins(connection) <= 1:
            return "There must be at least one active administrator."
        details: dict[str, object] = {"username": target.username}
        if action == "role":
            update_user(connection, user_id, role=role)
            delete_user_sessions(connection, user_id)
            details.update({"from": target.role, "to": role})
        elif action in ("deactivate", "activate"):
            update_user(connection, user_id, active=action == "activate")
            delete_user_sessions(connection, user_id)
        elif action == "unlock":
            update_user(connection, user_id, locked_until=None, failed_logins=0)
        elif action == "reset_2fa":
            update_user(
                connection, user_id, totp_secret=None, totp_confirmed_at=None, totp_last_step=None
            )
            delete_user_sessions(connection, user_id)
        elif action == "password":
            update_user(connection, user_id, password_hash=new_hash, password_changed_at=uow.now)
            delete_user_sessions(connection, user_id)
        _audit(
            uow,
            request,
            f"user.{action}",
            actor_id=admin.id,
            target=_user_target(user_id),
            details=details,
        )
        return None

    problem = await run_db(request, work)
    if problem == "missing":
        raise web.HTTPNotFound()
    if problem is not None:
        return await _users_view(request, error=problem)
    log.info(
        "staff user changed", extra={"staff_user_id": user_id, "action": action, "by": admin.id}
    )
    return await _users_view(request, notice="Saved.")


# ---------------------------------------------------------------- audit log


@require_role("admin")
async def audit_page(request: web.Request) -> web.StreamResponse:
    """The newest entries; `python main.py audit verify` checks the whole chain."""

    def work(uow: UnitOfWork) -> tuple[int, list[AuditEntry], dict[int, str]]:
        entries = audit_entries(uow.connection, limit=200)
        names = usernames(uow.connection, [e.actor_id for e in entries if e.actor_id])
        return audit_count(uow.connection), entries, names

    count, entries, names = await run_db(request, work)
    return render(request, "staff/audit.html", {"count": count, "entries": entries, "names": names})
