"""Similarity: domain-similarity and transferability metrics, and a 2-D PCA of source vs target features."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import numpy as np
import plotly.express as px
import streamlit as st
from advisor_ui.common import MISSING, current_request, fmt, metric_name, registry, resolved_inputs, show_error

from advisor.models.inputs import InputRequest, ResolvedInputs

MAX_POINTS = 600  # per domain in the PCA plot
#: Distinct colours per domain (not two blues).
DOMAIN_COLOURS = {"source": "#1f77b4", "target (train+val)": "#ff7f0e", "unlabelled target": "#2ca02c"}


def signals_available() -> bool:
    """Whether this installation has the metrics module (advisor.metrics.signals)."""
    return importlib.util.find_spec("advisor.metrics.signals") is not None


@st.cache_data(show_spinner="Computing the metrics...", max_entries=4)
def metric_rows(_inputs: ResolvedInputs, key: str) -> list[dict[str, Any]]:
    """One row per metric: value, direction, p-value and its interpretation (cached by ``key``)."""
    from advisor.features.cache import FeatureCache

    mod = importlib.import_module("advisor.metrics.signals")  # being written alongside; checked by signals_available
    i = _inputs
    device = "cpu"
    signals = mod.compute_signals(registry(), mod.metric_inputs(
        i.source, i.splits.train, i.splits.val, i.target_unlabeled, i.backbone, FeatureCache(None, device=device),
        device, 0))
    rows = []
    metrics = registry().metrics
    for name, r in signals.results.items():
        described = getattr(metrics.get(name), "description", "") or ""
        rows.append({"metric": metric_name(name, described), "value": fmt(r.value),
                     "p-value": fmt(r.p_value, 4),
                     "better": "\u2191 higher is better" if r.higher_is_better else "\u2193 lower is better",
                     "interpretation": r.interpretation or MISSING})
    return rows



def _features(i: ResolvedInputs, domain: Any) -> np.ndarray:
    if i.backbone is None:
        return np.asarray(domain.X, dtype=np.float32).reshape(len(domain), -1)
    from advisor.features.cache import FeatureCache

    return FeatureCache(None).features(i.backbone, domain)


@st.cache_data(show_spinner="Embedding the features...", max_entries=4)
def pca_points(_inputs: ResolvedInputs, key: str) -> dict[str, Any]:
    """2-D PCA of penultimate features: source, target (train+val) and unlabelled target; never the test split."""
    from sklearn.decomposition import PCA

    i = _inputs
    rng = np.random.default_rng(0)
    parts = [("target (train+val)", i.splits.train.concat(i.splits.val))]
    if i.source is not None:
        parts.insert(0, ("source", i.source))
    if i.target_unlabeled is not None:
        parts.append(("unlabelled target", i.target_unlabeled))
    feats, labels, classes = [], [], []
    for label, d in parts:
        idx = np.sort(rng.choice(len(d), size=min(MAX_POINTS, len(d)), replace=False))
        sub = d.subset(idx)
        feats.append(_features(i, sub))
        labels += [label] * len(sub)
        classes += [sub.classes[int(c)] for c in sub.y] if sub.y is not None else ["?"] * len(sub)
    X = np.concatenate(feats)
    pca = PCA(n_components=2, random_state=0)
    Z = pca.fit_transform(X)
    return {"x": Z[:, 0], "y": Z[:, 1], "domain": labels, "class": classes,
            "explained": [float(v) for v in pca.explained_variance_ratio_]}


st.title("Similarity")
st.caption("Training-free evidence: how close the domains are and how well the source features transfer.")
req: InputRequest | None = current_request()
if req is None:
    st.info("Load inputs on the Data page first.")
    st.stop()
st.write(f"Inputs: scenario **{req.demo}**" if req.demo else f"Inputs: target `{req.target}`")
if not signals_available():
    st.warning("The metrics module (advisor.metrics.signals) is not available in this installation; "
               "only the feature embedding is shown.")
if not st.toggle("Compute the metrics and the embedding", key="sim_go",
                 help="Builds the source model (pretrained once and cached when needed) and runs it on the data."):
    st.stop()
try:
    inputs = resolved_inputs(req)
except Exception as exc:
    show_error(exc)
    st.stop()
key = repr(sorted(inputs.fingerprints().items()))
st.caption(f"Model: {inputs.model_note}")
if signals_available():
    st.subheader("Metrics")
    try:
        rows = metric_rows(inputs, key)
        st.table(rows)  # a table wraps the interpretations
    except Exception as exc:
        show_error(exc)
st.subheader("Source vs target features (PCA)")
try:
    pts = pca_points(inputs, key)
except Exception as exc:
    show_error(exc)
    st.stop()
ev = pts["explained"]
by = st.radio("Colour by", ["domain", "class"], horizontal=True, key="sim_colour")
colour = pts["domain"] if by == "domain" else [str(c) for c in pts["class"]]
fig = px.scatter(x=pts["x"], y=pts["y"], color=colour, symbol=pts["domain"], hover_name=pts["class"], opacity=0.7,
                 color_discrete_map=DOMAIN_COLOURS if by == "domain" else None,
                 color_discrete_sequence=px.colors.qualitative.Dark24,
                 labels={"x": f"PC1 ({ev[0]:.0%} of variance)", "y": f"PC2 ({ev[1]:.0%} of variance)",
                         "color": by, "symbol": "domain"})
st.plotly_chart(fig)
st.caption("Points are penultimate features of the source model (raw inputs with no model); "
           "overlapping clouds suggest similar domains. The test split is never used.")
