"""The Locust side of `milvus-harness ui`: the start form's scenario fields, the "Milvus
memory" tab, and the hand-over of every run to and from the harness process.

Imported only inside Locust processes, by harness/locustfiles/ui.py (loaded next to the insert
locustfile, whose users, ledger and options it drives). It uses Locust's own
extension points (examples/extend_web_ui.py): custom arguments shown in the start form,
`extended_tabs` in the web UI's template arguments, a Blueprint with routes and static files
on `environment.web_ui.app`, and the init / test_stop events. The tab's page script
(static/memory.js) draws what /harness/memory returns, which is the harness process's
/memory passed through, so the figures are those of the run directory's files.

Per run: POST /swarm (the form) first asks the harness for a run (refused with its message
when a field is invalid); the answer's settings are the next test's (harness.load.central),
on the master and, by a custom message, on every worker. When
the test stops for any reason, Locust's stats are written into the run directory and the
harness is told, which writes the verdict and reports. The harness can ask for a stop (its
stop rules) through /state, polled here.
"""

from __future__ import annotations

import base64
import csv
import hmac
import json
import logging
import math
import os
import secrets
import signal
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import gevent
from flask import Blueprint, Response, jsonify, redirect, request, send_from_directory, session, url_for
from locust import events
from locust.env import Environment
from locust.runners import STATE_CLEANUP, STATE_RUNNING, STATE_SPAWNING, STATE_STOPPING, MasterRunner, WorkerRunner

from harness.load.central import central_of
from harness.load.locust_options import LoadSettings
from harness.webui import CREDENTIALS_ENV, FORM_FIELDS, STATIC_DIR, TAB_KEY, TAB_TITLE, TOKEN_ENV

log = logging.getLogger(__name__)

#: What the form's fields mean, shown next to their names.
_HELP = {
    "total_rows": "rows to insert in all",
    "batch_rows": "rows per insert call",
    "shards": "shards of the collection, 1 to 16",
    "partitions": "partitions by the partition key",
}
_INDEX_TAGS = ('<link rel="stylesheet" href="./harness/static/memory.css">'
               '<script src="./harness/static/memory.js" defer></script>')


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    parser.add_argument("--harness-control", default="", include_in_web_ui=False,
                        help="the control channel of `milvus-harness ui` (set by it)")
    parser.add_argument("--harness-report-dir", default="", include_in_web_ui=False,
                        help="where the harness writes run directories (set by it)")
    for name in FORM_FIELDS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=0, include_in_web_ui=True,
                            help=_HELP[name])


class Control:
    """The harness process's control channel, as this process calls it (JSON both ways)."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             timeout: float = 30.0) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"X-Harness-Token": self.token, "Content-Type": "application/json"})
        try:
            with self._opener.open(req, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read() or b"{}")
            except ValueError:
                return exc.code, {"error": f"the harness answered {exc.code}"}


class HarnessRuns:
    """This Locust process's view of the run in progress (master or local runner)."""

    def __init__(self, environment: Environment, control: Control, report_dir: Path) -> None:
        self.environment = environment
        self.control = control
        self.report_dir = report_dir
        self.run_id: str | None = None
        self.run_dir: Path | None = None
        self.stop_reason: str | None = None
        self.host = ""

    def start_run(self, form: Any) -> str | None:
        """Ask the harness for a run with the form's fields; the refusal's message, or None."""
        runner = self.environment.runner
        if isinstance(runner, MasterRunner) and not self._workers_ready(runner):
            return "no Locust worker is ready yet (after a stop they wait the stop timeout); try again shortly"
        fields = {name: form.get(name, "") for name in FORM_FIELDS}
        try:
            status, answer = self.control.call("POST", "/runs", {"fields": fields, "users": form.get("user_count")},
                                               timeout=900)
        except OSError as exc:
            return f"the harness did not answer: {exc}"
        if status != 200:
            return answer.get("error") or f"the harness answered {status}"
        settings = LoadSettings.from_json(answer["settings"], os.environ)
        central_of(self.environment).next_settings = settings
        self.host = f"http://{settings.connection.address}"
        if isinstance(runner, MasterRunner):
            runner.send_message("harness_run", {"settings": answer["settings"]})
        self.run_id, self.run_dir, self.stop_reason = answer["run_id"], Path(answer["run_dir"]), None
        log.info("run %s: loading", self.run_id)
        return None

    def on_test_start(self, environment: Environment, **_kw: Any) -> None:
        # After /swarm copied the (hidden) Host field: the navigation bar shows this run's Milvus.
        if self.host:
            environment.host = self.host

    def _workers_ready(self, runner: MasterRunner, timeout: float = 60.0) -> bool:
        """Wait for every expected worker: after a stop, Locust's workers rejoin only once
        the stop timeout has passed."""
        expected = max(1, getattr(self.environment.parsed_options, "expect_workers", 1) or 1)
        waited = 0.0
        while runner.worker_count < expected and waited < timeout:
            gevent.sleep(0.5)
            waited += 0.5
        return runner.worker_count > 0

    def drained(self) -> None:
        """Every batch settled: the insert locustfile stops the test; the reason is ours to give."""
        self.stop_reason = "every batch settled"

    def on_test_stop(self, environment: Environment, **_kw: Any) -> None:
        """Write Locust's stats into the run directory, then hand the run back to the harness."""
        run_id, run_dir = self.run_id, self.run_dir
        if run_id is None or run_dir is None:
            return
        self.run_id = None
        try:
            write_locust_stats(environment, run_dir)
        except Exception:  # the harness still judges the run without Locust's files
            log.exception("writing Locust's stats into %s failed", run_dir)
        reason = self.stop_reason or "the Stop button or the run time in the web UI"
        try:
            self.control.call("POST", f"/runs/{run_id}/stop", {"reason": reason}, timeout=30)
        except OSError as exc:
            log.error("could not tell the harness that run %s stopped: %s", run_id, exc)

    def watch_harness(self) -> None:
        """Apply the harness's stop requests; quit when the harness process is gone."""
        parent, failures = os.getppid(), 0
        runner = self.environment.runner
        assert runner is not None
        while True:
            gevent.sleep(0.5)
            if os.getppid() != parent:
                log.error("the harness process is gone; quitting")
                os.kill(os.getpid(), signal.SIGTERM)
                return
            try:
                _status, state = self.control.call("GET", "/state", timeout=5)
                failures = 0
            except OSError:
                failures += 1
                if failures >= 20:
                    log.error("the harness does not answer; quitting")
                    os.kill(os.getpid(), signal.SIGTERM)
                    return
                continue
            request_ = state.get("stop_request")
            if request_ and state.get("run_id") == self.run_id and runner.state in (STATE_RUNNING, STATE_SPAWNING):
                self.stop_reason = request_
                log.info("the harness asks to stop: %s", request_)
                runner.stop()


def write_locust_stats(environment: Environment, run_dir: Path) -> None:
    """The files `run` has Locust write with --csv/--html, for this test alone."""
    from locust.html import get_html_report
    from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

    writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
    for name, write in (("locust_stats.csv", writer.requests_csv), ("locust_failures.csv", writer.failures_csv),
                        ("locust_exceptions.csv", writer.exceptions_csv)):
        with (run_dir / name).open("w", newline="") as handle:
            write(csv.writer(handle))
    (run_dir / "locust.html").write_text(get_html_report(environment, show_download_link=False), encoding="utf-8")


@events.init.add_listener
def _init(environment: Environment, **_kw: Any) -> None:
    opts = environment.parsed_options
    if opts is None or not opts.harness_control:
        return
    runner = environment.runner
    central = central_of(environment)
    central.options_from_form = False  # the harness gives each run's settings
    if isinstance(runner, WorkerRunner):
        def on_run(msg: Any, **_: Any) -> None:
            central.next_settings = LoadSettings.from_json(msg.data["settings"], os.environ)

        runner.register_message("harness_run", on_run)
        return
    runs = HarnessRuns(environment, Control(opts.harness_control, os.environ.get(TOKEN_ENV, "")),
                       Path(opts.harness_report_dir))
    environment.harness_runs = runs  # type: ignore[attr-defined]
    central.on_drained.append(runs.drained)
    environment.events.test_start.add_listener(runs.on_test_start)
    environment.events.test_stop.add_listener(runs.on_test_stop)
    gevent.spawn(runs.watch_harness)
    if environment.web_ui is not None:
        _extend_web_ui(environment, runs)


def _extend_web_ui(environment: Environment, runs: HarnessRuns) -> None:
    web_ui = environment.web_ui
    assert web_ui is not None
    app = web_ui.app
    mode, _, credentials = os.environ.get(CREDENTIALS_ENV, "").partition(":")
    if mode == "basic":
        _basic_auth(app, credentials)
    elif mode == "login":
        _login_page(web_ui, credentials)
    # Kept across renders: update_template_args() merges into template_args.
    web_ui.template_args["extended_tabs"] = [{"title": TAB_TITLE, "key": TAB_KEY}]
    _no_host_field(web_ui)
    blueprint = Blueprint("harness", __name__, static_folder=str(STATIC_DIR), static_url_path="/harness/static")

    @blueprint.route("/harness/memory")
    @web_ui.auth_required_if_enabled
    def memory() -> Response:
        since = request.args.get("since", "")
        try:
            status, body = runs.control.call("GET", "/memory" + (f"?since={float(since)!r}" if since else ""))
        except ValueError:
            return jsonify({"error": f"since={since!r} is not a number"}), 400  # type: ignore[return-value]
        except OSError as exc:
            return jsonify({"error": f"the harness did not answer: {exc}"}), 502  # type: ignore[return-value]
        for run in ([body["run"]] if body.get("run") else []) + body.get("runs", []):
            run["report_urls"] = {k: f"./harness/runs/{v}" for k, v in (run.get("report") or {}).items()}
        return jsonify(body), status  # type: ignore[return-value]

    @blueprint.route("/harness/runs/<path:subpath>")
    @web_ui.auth_required_if_enabled
    def run_file(subpath: str) -> Response:
        return send_from_directory(runs.report_dir, subpath)

    app.register_blueprint(blueprint)

    @app.before_request
    def swarm_starts_a_run() -> Any:
        if request.method != "POST" or request.path.rstrip("/") != "/swarm":
            return None
        if web_ui.web_login:
            from flask_login import current_user

            if not current_user.is_authenticated:
                return None  # Locust's own route refuses it
        if environment.runner is not None and environment.runner.state in (STATE_RUNNING, STATE_SPAWNING):
            return None  # "Edit running load test": only the users change
        error = _spawn_rate_error(request.form.get("spawn_rate", "")) or runs.start_run(request.form)
        if error:
            log.warning("start refused: %s", error)
            return jsonify({"success": False, "message": error, "host": environment.host})
        return None

    @app.after_request
    def add_the_tab_script(response: Response) -> Response:
        if request.path == "/" and response.mimetype == "text/html" and response.status_code == 200:
            html = response.get_data(as_text=True)
            response.set_data(html.replace("</body>", _INDEX_TAGS + "</body>", 1))
        return response

    @app.after_request
    def keep_polling_while_stopping(response: Response) -> Response:
        # Locust's page polls /stats/requests only while it believes the test is spawning or
        # running; a poll that lands in the stop's brief "cleanup"/"stopping" state (an insert
        # in flight takes seconds to finish) would freeze it there, with no "New" button.
        if request.path == "/stats/requests" and response.is_json and response.status_code == 200:
            body = response.get_json()
            if isinstance(body, dict) and body.get("state") in (STATE_CLEANUP, STATE_STOPPING):
                response.set_data(json.dumps({**body, "state": STATE_RUNNING}))
        return response


def _spawn_rate_error(text: str) -> str | None:
    """Locust refuses a bad ramp-up only after the harness made the run; refuse it first."""
    try:
        rate = float(text)
    except ValueError:
        rate = math.nan
    if not math.isfinite(rate) or rate <= 0:
        return f"ramp up {text!r} is not a number of users per second above 0"
    return None


def _no_host_field(web_ui: Any) -> None:
    """The harness picks Milvus's address for every run, so Locust's Host field means nothing
    here: no "host missing" notice (memory.css hides the field; the tab shows the address)."""
    update = web_ui.update_template_args

    def update_template_args() -> None:
        update()
        web_ui.template_args.update(missing_host_warning=False, is_host_required=False)

    web_ui.update_template_args = update_template_args
    update_template_args()


def _basic_auth(app: Any, credentials: str) -> None:
    """HTTP basic auth on every page, route and file of the web UI (--web-auth)."""
    expected = credentials.encode()

    @app.before_request
    def require_basic_auth() -> Any:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                given = base64.b64decode(header[6:], validate=True)
            except ValueError:
                given = b""
            if hmac.compare_digest(given, expected):
                return None
        return Response("milvus-harness: log in to use this web UI\n", 401,
                        {"WWW-Authenticate": 'Basic realm="milvus-harness", charset="UTF-8"'})


def _login_page(web_ui: Any, credentials: str) -> None:
    """Locust's login page (--web-login) checked against the one user the harness was given."""
    from flask_login import UserMixin, login_user

    user, _, password = credentials.partition(":")

    class _User(UserMixin):
        def __init__(self, name: str) -> None:
            self.id = name

    web_ui.app.config["SECRET_KEY"] = secrets.token_hex(32)
    web_ui.login_manager.user_loader(lambda name: _User(name) if name == user else None)
    web_ui.auth_args = {"username_password_callback": "./login_submit"}
    blueprint = Blueprint("harness_login", __name__)

    @blueprint.route("/login_submit", methods=["POST"])
    def login_submit() -> Any:
        ok_user = hmac.compare_digest(request.form.get("username", "").encode(), user.encode())
        ok_password = hmac.compare_digest(request.form.get("password", "").encode(), password.encode())
        if ok_user and ok_password:
            login_user(_User(user))
            return redirect(url_for("locust.index"))
        session["auth_error"] = "Invalid username or password"
        return redirect(url_for("locust.login"))

    web_ui.app.register_blueprint(blueprint)
