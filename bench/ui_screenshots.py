"""Screenshots of the MLflow UI and optuna-dashboard on a real search, for docs/tracking.md.

Runs the smoke search (4 trials x 3 epochs on synthetic data, about 5 min on 2 cores) into a
temporary store, starts ``mscm ui`` on it, and shoots with headless Chromium (Debian's ``chromium``,
driven by Playwright): the runs table with the trials expanded and their best/mAP column, the chart
of every trial's eval/mAP per epoch, a trial's page, and the study page of optuna-dashboard.

    python bench/ui_screenshots.py                    # search + screenshots into docs/img/
    python bench/ui_screenshots.py --store DIR        # reuse the stores a previous run left in DIR
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEARCH = "ui-demo"
COLUMNS = ["best/mAP", "best/rank1", "best/epoch", "loss.qct_margin", "optim.lr", "model.mimb_scales", "optim.name"]


def run_search(store: Path) -> None:
    argv = [
        sys.executable,
        "-m",
        "mscm",
        "tune",
        "--space",
        "smoke",
        "--name",
        SEARCH,
        "--tracking-uri",
        f"sqlite:///{store / 'mlflow.db'}",
        "--storage-path",
        str(store / "ray_results"),
        "--optuna-url",
        f"sqlite:///{store / 'optuna.db'}",
    ]
    print("$", shlex.join(argv), flush=True)
    subprocess.run(argv, check=True, cwd=store)


def shoot(store: Path, out: Path) -> list[Path]:
    from mlflow import MlflowClient

    from mscm.tracking.browser import browser_page, open_chart, open_run, open_runs_table, open_study, widen_column
    from mscm.tracking.trials import find_search, select_trial
    from mscm.tracking.ui import running_ui

    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    search = find_search(client, SEARCH)
    best = select_trial(client, search, "mAP")
    shots = [out / f"mlflow-{name}.png" for name in ("runs-table", "chart-eval-map", "trial-page")]
    shots.append(out / "optuna-study.png")
    with running_ui(f"sqlite:///{store / 'mlflow.db'}", f"sqlite:///{store / 'optuna.db'}") as (
        mlflow_url,
        dashboard_url,
    ):
        with browser_page(2000, 700) as page:
            open_runs_table(page, mlflow_url, search.experiment_id, COLUMNS)
            widen_column(page, "Run Name", 260)
            page.screenshot(path=shots[0])
            page.set_viewport_size({"width": 1600, "height": 900})
            open_chart(page, "eval/mAP")
            page.screenshot(path=shots[1])
            open_run(page, mlflow_url, search.experiment_id, best.run_id)
            page.screenshot(path=shots[2])
            open_study(page, dashboard_url, 1)
            page.screenshot(path=shots[3], full_page=True)
    return shots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="folder of a previous run's stores (skips the search)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img", help="where the PNGs go")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.store or Path(tempfile.mkdtemp(prefix="mscm-ui-demo-"))
    if args.store is None:
        start = time.perf_counter()
        run_search(store)
        print(f"search: {time.perf_counter() - start:.0f} s; stores in {store}")
    for path in shoot(store, args.out):
        shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        print(f"wrote {shown} ({path.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
