"""Every matplotlib figure of the project, in one consistent, print-friendly style."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def _save(fig: plt.Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def sequences(path: Path, series: Sequence[np.ndarray], titles: Sequence[str], suptitle: str,
              spans: Sequence[tuple] = ()) -> Path:
    """One panel per sequence: value vs time step; ``spans[i] = (t0, t1)`` shades steps t0..t1."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(series), 1, figsize=(8, 2.2 * len(series)), sharex=True, squeeze=False)
        for i, (ax, s, title) in enumerate(zip(axes[:, 0], series, titles)):
            t = np.arange(1, len(s) + 1)
            if i < len(spans):
                ax.axvspan(spans[i][0] - 0.5, spans[i][1] + 0.5, color="C1", alpha=0.15, label="the scaled window t = i-w .. i+w")
            ax.plot(t, s, marker=".", lw=1.2, color="C0")
            ax.set_title(title)
            ax.set_ylabel("value")
            ax.set_ylim(-0.05, 1.05)
        if spans:
            axes[0, 0].legend(loc="lower left", bbox_to_anchor=(0.0, 1.12), frameon=False)
        axes[-1, 0].set_xlabel("time step t")
        fig.suptitle(suptitle)
        return _save(fig, path)


def reconstructions(
    path: Path, originals: Sequence[np.ndarray], recons: Sequence[np.ndarray], titles: Sequence[str], suptitle: str
) -> Path:
    """One panel per sequence: the original and its reconstruction, value vs time step."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(originals), 1, figsize=(8, 2.8 * len(originals)), sharex=True, squeeze=False)
        for ax, x, r, title in zip(axes[:, 0], originals, recons, titles):
            t = np.arange(1, len(x) + 1)
            ax.plot(t, x, marker=".", lw=1.2, color="C0", label="original")
            ax.plot(t, r, marker="x", lw=1.2, ls="--", color="C3", label="reconstruction")
            ax.set_title(title)
            ax.set_ylabel("value")
            ax.set_ylim(-0.05, 1.05)
        axes[0, 0].legend(loc="lower left", bbox_to_anchor=(0.0, 1.12), ncol=2, frameon=False)
        axes[-1, 0].set_xlabel("time step t")
        fig.suptitle(suptitle)
        return _save(fig, path)


def curves(
    path: Path,
    history: List[Dict[str, float]],
    keys: Dict[str, str],
    ylabel: str,
    title: str,
    log_y: bool = False,
) -> Path:
    """Metrics vs epoch; ``keys`` maps a history column to its legend label."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7, 4))
        epochs = [row["epoch"] for row in history]
        for key, label in keys.items():
            ax.plot(epochs, [row[key] for row in history], lw=1.6, label=label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        if log_y:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.legend()
        return _save(fig, path)


def runs(
    path: Path,
    frames: Sequence[pd.DataFrame],
    labels: Sequence[str],
    metric: str,
    ylabel: str,
    log_y: bool = False,
) -> Path:
    """One metric of several runs vs epoch: train dashed, validation solid, one colour per run."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        for i, (df, label) in enumerate(zip(frames, labels)):
            ax.plot(df["epoch"], df[f"train_{metric}"], color=f"C{i}", ls="--", lw=1.5, label=f"{label} (train)")
            ax.plot(df["epoch"], df[f"val_{metric}"], color=f"C{i}", lw=1.8, label=f"{label} (validation)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        if log_y:
            ax.set_yscale("log")
        ax.set_title(f"{ylabel[0].upper() + ylabel[1:]} per epoch")
        ax.legend()
        return _save(fig, path)


def digits(path: Path, originals: Sequence[np.ndarray], recons: Sequence[np.ndarray], titles: Sequence[str],
           suptitle: str) -> Path:
    """Images side by side: originals on the top row, reconstructions below, grey scale [0, 1]."""
    n = len(originals)
    with plt.rc_context({**STYLE, "axes.grid": False}):
        fig, axes = plt.subplots(2, n, figsize=(2.4 * n, 5.2), squeeze=False)
        for j in range(n):
            for i, (img, row) in enumerate(((originals[j], "original"), (recons[j], "reconstruction"))):
                ax = axes[i, j]
                im = ax.imshow(img, cmap="gray", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{titles[j]}\n{row}" if i == 0 else row, fontsize=10)
        fig.colorbar(im, ax=axes, shrink=0.6, label="pixel value")
        fig.suptitle(suptitle)
        return _save(fig, path)


def dated(path: Path, panels: Sequence[dict], ylabel: str, suptitle: str) -> Path:
    """Price-like series against calendar dates, one panel per dict.

    A panel is ``{"title": str, "lines": [(label, dates, values, style), ...], "mark": date|None}``;
    ``style`` holds matplotlib keywords; ``mark`` draws a vertical line (e.g. where forecasts start).
    """
    import matplotlib.dates as mdates

    with plt.rc_context(STYLE):
        height = 3.0 * len(panels) + (1.0 if len(panels) == 1 else 0.0)
        fig, axes = plt.subplots(len(panels), 1, figsize=(11, height), squeeze=False)
        for i, (ax, panel) in enumerate(zip(axes[:, 0], panels)):
            for label, dates, values, style in panel["lines"]:
                ax.plot(dates, values, label=label, **{"lw": 1.4, **style})
            if panel.get("mark") is not None:
                ax.axvline(panel["mark"], color="C2", ls="-.", lw=1.0, label=panel.get("mark_label"))
            ax.set_title(panel["title"])
            ax.set_ylabel(ylabel)
            locator = mdates.AutoDateLocator(minticks=4, maxticks=8)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
            if i == 0:  # one legend, beside the first panel
                ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
        axes[-1, 0].set_xlabel("date")
        fig.suptitle(suptitle)
        fig.tight_layout()
        return _save(fig, path)


def overview(path: Path, table: "pd.DataFrame", value_name: str, unit: Optional[str]) -> Path:
    """Whole series (the columns of a dates x names table) against the date, e.g. AMZN's and GOOGL's daily high."""
    lines = [(name, table.index, table[name].to_numpy(), {"color": f"C{i}"}) for i, name in enumerate(table.columns)]
    title = f"{value_name[0].upper()}{value_name[1:]}, {table.index[0].date()} to {table.index[-1].date()}"
    ylabel = f"{value_name} ({unit})" if unit else value_name
    return dated(path, [{"title": title, "lines": lines}], ylabel, " and ".join(table.columns))
