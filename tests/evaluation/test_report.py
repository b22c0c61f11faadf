"""The evaluation's plots read at a glance at 4 classes and at 1,203: text of at least 10 pixels, a bar of
value 0 drawn as a mark, per-class AP as bars named by class up to SCATTER_ABOVE classes and a scatter above."""
import numpy as np
import pytest

from mmovod.evaluation import eval_report


def _results(classes, classifiers=2, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(classifiers):
        per_class = [{"name": f"class {c}", "id": c + 1, "ap": float(rng.random()) if c else 0.0, "crops": 3 + c % 5,
                      "image_count": int(rng.integers(1, 5000)), "frequency": "rcf"[c % 3], "accuracy": 0.5} for c in range(classes)]
        out.append({"name": f"classifier-{k}", "kind": "text", "per_class": per_class,
                    "overall": {"crops": classes, "top1": 0.0, "top5": 0.5, "mean_class_accuracy": 0.3, "map": 0.4},
                    "by_frequency": {g: {"map": 0.2 * (i + k), "top1": 0.1 * i} for i, g in enumerate("rcf")}})
    return out


@pytest.fixture
def figures(monkeypatch):
    drawn = []
    monkeypatch.setattr(eval_report, "_png", lambda figure: drawn.append(figure) or b"")
    return drawn


def _texts(figure):
    figure.canvas.draw()
    return [t for t in figure.findobj(lambda a: hasattr(a, "get_fontsize") and hasattr(a, "get_text"))
            if t.get_text() and t.get_visible()]


def test_small_sets_get_a_bar_per_class_named_and_zero_shown(figures, monkeypatch):
    eval_report.plot_ap_vs_frequency(_results(4))
    axis = figures[0].axes[0]
    assert [t.get_text() for t in axis.get_yticklabels()] == [f"class {c}" for c in range(4)]
    assert len(axis.patches) == 8 and min(b.get_width() for b in axis.patches) > 0  # class 0's AP of 0: a mark
    assert not axis.collections  # no scatter
    pixels = [t.get_fontsize() * figures[0].dpi / 72 for t in _texts(figures[0])]
    assert min(pixels) >= 10, min(pixels)
    # the check can fail: bars of their true width leave the zero invisible
    monkeypatch.setattr(eval_report, "ZERO_MARK", 0)
    eval_report.plot_ap_vs_frequency(_results(4))
    assert min(b.get_width() for b in figures[1].axes[0].patches) == 0


def test_large_sets_get_the_scatter_and_the_group_bars_keep_zero_visible(figures):
    eval_report.plot_ap_vs_frequency(_results(1203))
    eval_report.plot_groups(_results(1203))
    scatter, groups = figures
    assert len(scatter.axes[0].collections) == 2 and scatter.axes[0].get_xscale() == "log"
    top1 = groups.axes[1]
    assert min(b.get_height() for b in top1.patches) >= eval_report.ZERO_MARK  # top-1 of 0 for every "all" bar
    assert "0" in [t.get_text() for t in top1.texts]  # and labelled with its value
    for figure in (scatter, groups):
        assert min(t.get_fontsize() * figure.dpi / 72 for t in _texts(figure)) >= 10


def test_the_page_names_classes_not_ids(tmp_path):
    results = _results(4)
    worst = {"classifier-0": [eval_report.WorstClass(results[0]["per_class"][2], [])]}
    doc = {"crops": {"crops": 4, "classes": 4}, "annotations": "val.json", "clip": "tiny"}
    eval_report.write_html(tmp_path / "r.html", results, doc, worst, [])
    page = (tmp_path / "r.html").read_text()
    assert "<h3 title='category id 3'>class 2 (frequent): AP" in page and "(id " not in page


def _overlapping(texts, renderer):
    boxes = [t.get_window_extent(renderer) for t in texts]
    return [(a.get_text(), b.get_text()) for i, (a, p) in enumerate(zip(texts, boxes))
            for b, q in zip(texts[i + 1:], boxes[i + 1:]) if p.overlaps(q) and p.intersection(p, q).width > 1]


def test_six_long_named_classifiers_keep_their_legend_inside_and_their_labels_apart(figures, monkeypatch):
    """The demo's six classifiers, named by their guide file names: the legend fits the figure and no two value
    labels overlap; three legend columns, or labels side by side, fail the same checks."""
    results = _results(4, classifiers=6)
    for k, r in enumerate(results):
        r["name"] = f"lvis_image_exemplar_features_agg_K-005_own_{k}"
        r["overall"].update(map=1.0, top1=1.0)  # "100" labels: the widest

    def problems(figure):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = FigureCanvasAgg(figure)  # the figure was closed after drawing: draw it again
        canvas.draw()
        renderer = canvas.get_renderer()
        legend = figure.legends[0].get_window_extent(renderer)
        whole = figure.bbox
        outside = legend.x0 < whole.x0 or legend.x1 > whole.x1 or legend.y0 < whole.y0
        return outside, [pair for axis in figure.axes for pair in _overlapping(axis.texts, renderer)]

    eval_report.plot_groups(results)
    assert problems(figures[-1]) == (False, [])
    monkeypatch.setattr(eval_report, "legend_columns", lambda labels, width: 3)
    monkeypatch.setattr(eval_report, "UPRIGHT_LABELS_ABOVE", 99)
    eval_report.plot_groups(results)
    outside, overlaps = problems(figures[-1])
    assert outside and overlaps
