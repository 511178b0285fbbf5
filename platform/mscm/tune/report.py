"""Plots of a finished (or running) search, drawn from its Optuna study: optimisation history,
parameter importances and parallel coordinates (people would rather look at these than read a table)."""

from __future__ import annotations

import warnings
from pathlib import Path


def search_plots(optuna_url: str, study_name: str, out_dir: Path) -> list[Path]:
    """Write the PNGs that can be drawn for this study; returns their paths (importances need >= 2 trials)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as ovm

    study = optuna.load_study(study_name=study_name, storage=optuna_url)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        return []
    targets = [None] if len(study.directions) == 1 else [lambda t, i=i: t.values[i] for i in range(len(study.directions))]
    written = []
    plots = {"optimization_history": ovm.plot_optimization_history,
             "param_importances": ovm.plot_param_importances,
             "parallel_coordinate": ovm.plot_parallel_coordinate}
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
            path = out_dir / f"{name}{suffix}.png"
            fig.set_size_inches(9, 5)
            fig.tight_layout()
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
    return written
