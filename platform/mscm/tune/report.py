"""Plots of a finished (or running) search, drawn from its Optuna study: optimisation history,
parameter importances and parallel coordinates (people would rather look at these than read a table),
and for a multi-objective search its Pareto front (plot and table)."""

from __future__ import annotations

import warnings
from pathlib import Path


def search_plots(
    optuna_url: str, study_name: str, out_dir: Path, objective_names: list[str] | None = None
) -> list[Path]:
    """Write the PNGs that can be drawn for this study; returns their paths (importances need >= 2 trials)."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna
    from optuna.visualization import matplotlib as ovm

    study = optuna.load_study(study_name=study_name, storage=optuna_url)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        return []
    targets = (
        [None] if len(study.directions) == 1 else [lambda t, i=i: t.values[i] for i in range(len(study.directions))]
    )
    written = []
    plots = {
        "optimization_history": ovm.plot_optimization_history,
        "param_importances": ovm.plot_param_importances,
        "parallel_coordinate": ovm.plot_parallel_coordinate,
    }
    for i, target in enumerate(targets):
        suffix = "" if target is None else f"_objective{i}"
        for name, fn in plots.items():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # optuna marks the matplotlib backend experimental
                    ax = fn(study) if target is None else fn(study, target=target, target_name=f"objective {i}")
            except (ValueError, RuntimeError, ZeroDivisionError):
                continue  # e.g. importances need two completed trials with varying params
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            written.append(_save(fig, out_dir / f"{name}{suffix}.png", (9, 5)))
    if 2 <= len(study.directions) <= 3:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = ovm.plot_pareto_front(study, target_names=objective_names)
        except (ValueError, RuntimeError):
            ax = None
        if ax is not None:
            written.append(_save(ax.figure, out_dir / "pareto_front.png", (7, 5)))
    return written


def _save(fig, path: Path, size: tuple[float, float]) -> Path:
    import matplotlib.pyplot as plt

    fig.set_size_inches(*size)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pareto_front(optuna_url: str, study_name: str, objective_names: list[str]) -> list[dict]:
    """The Pareto-optimal completed trials of a multi-objective study: number, objective values, params."""
    import optuna

    from .warmstart import WARM_START_ATTR

    study = optuna.load_study(study_name=study_name, storage=optuna_url)
    rows = []
    for t in sorted(study.best_trials, key=lambda t: t.number):
        row = {"optuna_trial": t.number, **dict(zip(objective_names, t.values)), **t.params}
        if WARM_START_ATTR in t.user_attrs:
            row["warm_start_from"] = t.user_attrs[WARM_START_ATTR]
        rows.append(row)
    return rows
