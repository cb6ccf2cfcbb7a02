"""Figures are for people: integer epoch ticks, labelled axes, legends."""
import pandas as pd
import pytest

from lstm_ae import plots


@pytest.fixture
def captured(monkeypatch):
    """The figures plots.* would save, kept open for inspection."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    return figures


def _epoch_axis(fig):
    ax = fig.axes[0]
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    return ax, ticks


@pytest.mark.parametrize("epochs", [3, 7, 40])
def test_epoch_axes_have_whole_number_ticks(captured, epochs):
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e} for e in range(1, epochs + 1)]
    plots.curves("unused.png", history, {"train_loss": "train", "val_loss": "validation"}, "loss", "Loss", log_y=True)
    frame = pd.DataFrame(history)
    plots.runs("unused.png", [frame, frame], ["a", "b"], "loss", "loss")
    for fig in captured:
        ax, ticks = _epoch_axis(fig)
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        assert ax.get_xlabel() == "epoch" and ax.get_ylabel() and ax.get_legend() is not None
