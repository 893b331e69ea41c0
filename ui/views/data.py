"""Data: choose the inputs (a built-in scenario, paths, or uploads) and look at them."""

from __future__ import annotations

import numpy as np
import streamlit as st
from advisor_ui.common import (
    DEFAULT_SCENARIO,
    UPLOAD_LIMIT_MB,
    UPLOAD_TYPES,
    current_request,
    loaded_data,
    registry,
    runs_dir,
    save_upload,
    set_request,
    show_error,
    to_display,
)

from advisor.data.domain import Domain
from advisor.models.inputs import InputRequest

SAMPLES_PER_DOMAIN = 12
MODES = ["Built-in scenario", "Paths on this machine", "Upload files"]
#: Widget key -> a place right under that field, where an error about it is shown.
FIELD_SLOTS: dict[str, object] = {}
#: Widget key -> the request attribute it fills and the words core messages use for it.
FIELDS = {"data_source": ("source", "the source data field"), "data_target": ("target", "the target data field"),
          "data_unlabeled": ("target_unlabeled", "the unlabelled target data field"),
          "data_model": ("model", "the model field"), "data_label": ("label_column", "the label column field")}


def _field(label: str, key: str, **kw: object) -> str:
    """A text field with a slot under it for an error that concerns it."""
    value = st.text_input(label, key=key, **kw)
    FIELD_SLOTS[key] = st.empty()
    return value


def show_field_error(exc: BaseException, req: InputRequest | None) -> None:
    """The error under the field it concerns (named in its words, or its value quoted), else at the top."""
    from advisor_ui.common import error_line

    line = error_line(exc)
    for key, (attr, words) in FIELDS.items():
        value = getattr(req, attr, None) if req is not None else None
        if key in FIELD_SLOTS and (words in line or (isinstance(value, str) and value and value in line)):
            FIELD_SLOTS[key].error(line)
            return
    show_error(exc)


def _request_form() -> InputRequest | None:
    """The input picker; returns a request when the user asks to load one."""
    mode = st.radio("Inputs", MODES, horizontal=True, key="data_mode")
    if mode == MODES[0]:
        names = sorted(registry().scenarios)
        if not names:
            st.warning("No built-in scenario is registered (see Plugins).")
            return None
        name = st.selectbox("Scenario", names, key="data_scenario",
                            index=names.index(DEFAULT_SCENARIO) if DEFAULT_SCENARIO in names else 0)
        scenario = registry().scenarios[name]
        if getattr(scenario, "description", ""):
            st.caption(scenario.description)
        if st.button("Load scenario", type="primary"):
            return InputRequest(demo=name)
        return None
    if mode == MODES[1]:
        source = _field("Source data (image folder, .npz or .csv; optional with a model)", "data_source")
        target = _field("Target data (labelled: image folder, .npz or .csv)", "data_target")
        unlabeled = _field("Unlabelled target data (optional)", "data_unlabeled")
        label = _field("Label column of .csv files", "data_label", value="label")
        model = _field("Model (resnet18, cnn, mlp, a checkpoint path; empty: default)", "data_model")
        if st.button("Load data", type="primary"):
            return InputRequest(source=source.strip() or None, target=target.strip() or None,
                                target_unlabeled=unlabeled.strip() or None, label_column=label.strip() or "label",
                                model=model.strip() or None)
        return None
    st.caption(f"Accepted: .npz, .csv, or .zip of an image folder (one sub-folder per class); "
               f"at most {UPLOAD_LIMIT_MB} MB each.")
    src = st.file_uploader("Source data", type=UPLOAD_TYPES, key="up_source")
    tgt = st.file_uploader("Target data (labelled)", type=UPLOAD_TYPES, key="up_target")
    label = st.text_input("Label column of .csv files", value="label", key="up_label")
    model = st.text_input("Model (resnet18, cnn, mlp, a checkpoint path on this machine; empty: pretrained here "
                          "on the source data)", key="up_model",
                          help="Without source data the target can only load with a model.")
    if tgt is None:
        st.caption("Choose the target data to load.")
    if st.button("Load uploads", type="primary", disabled=tgt is None):
        root = runs_dir() / "_uploads"
        try:
            src_path = save_upload(src.name, src.getvalue(), root) if src is not None else None
            tgt_path = save_upload(tgt.name, tgt.getvalue(), root)
        except ValueError as exc:
            show_error(exc)
            return None
        if src_path is None and not model.strip():
            st.error("Without source data, name a model: the advisor needs a source to transfer from.")
            return None
        return InputRequest(source=str(src_path) if src_path else None, target=str(tgt_path),
                            label_column=label.strip() or "label", model=model.strip() or None)
    return None


def _summary(label: str, d: Domain) -> None:
    st.markdown(f"**{label}**: {len(d)} {'images' if d.kind == 'images' else 'rows'}, "
                f"input {' x '.join(map(str, d.input_shape))}, {d.num_classes} classes")
    counts = d.class_counts()
    if counts:
        st.bar_chart({"samples": counts}, height=180, x_label="class", y_label="samples")


def _samples(label: str, d: Domain) -> None:
    if d.kind != "images" or len(d) == 0:
        return
    idx = np.linspace(0, len(d) - 1, min(SAMPLES_PER_DOMAIN, len(d))).astype(int)
    captions = [d.classes[int(d.y[i])] if d.y is not None else "?" for i in idx]
    st.markdown(f"*{label}: sample images*")
    st.image([to_display(d.X[i]) for i in idx], caption=captions, width=64)


st.title("Data")
st.caption("Choose the source and target data. Search and Similarity use the inputs loaded here.")
try:
    new = _request_form()
except Exception as exc:
    show_error(exc)
    new = None
if new is not None:
    try:
        loaded_data(new)
        set_request(new)
    except Exception as exc:  # a wrong path or a corrupt file: one line, under the field it concerns
        show_field_error(exc, new)

req = current_request()
if req is None:
    st.info("No inputs loaded yet.")
    st.stop()
try:
    data = loaded_data(req)
except Exception as exc:
    show_error(exc)
    st.stop()

st.subheader("Loaded inputs")
st.write(f"Scenario **{req.demo}**" if req.demo else f"Target `{req.target}`" + (
    f", source `{req.source}`" if req.source else ""))
if data.expected:
    st.caption(f"Expected: {data.expected}")
s = data.splits
st.write(f"Target split: train {len(s.train)} / validation {len(s.val)} / test {len(s.test)} "
         "(the test split is held out until the final score). "
         f"Model: {data.model.arch} ({data.model.kind}).")
domains = [("Source", data.source), ("Target (train)", s.train), ("Target (validation)", s.val),
           ("Unlabelled target", data.target_unlabeled)]
cols = st.columns(2)
for i, (label, d) in enumerate([(lab, d) for lab, d in domains if d is not None]):
    with cols[i % 2]:
        _summary(label, d)
        _samples(label, d)
