"""Data loading: every supported format and every bad input (one InputError each)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from advisor.data.domain import Domain, as_float
from advisor.data.loaders import check_compatible, encode_labels, load_domain, match_channels
from advisor.errors import InputError


def _raises(match: str, fn, *args, **kwargs) -> str:
    with pytest.raises(InputError, match=match) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- image folders


def test_image_folder_decodes_resizes_and_names_classes(tmp_path, make_digits_folder):
    root = make_digits_folder(tmp_path / "imgs", classes=(3, 1, 7), per_class=6)
    d = load_domain(root, name="target", image_size=16)
    assert d.kind == "images"
    assert d.X.shape == (18, 1, 16, 16)  # all greyscale -> one channel
    # kept as uint8 (a quarter of float32's memory); converted to [0, 1] per batch
    assert d.X.dtype == np.uint8 and d.X.max() > 127
    assert d.classes == ("digit1", "digit3", "digit7")
    assert d.class_counts() == {"digit1": 6, "digit3": 6, "digit7": 6}


def test_image_folder_default_size_and_rgb(tmp_path, make_digits_folder):
    root = make_digits_folder(tmp_path / "imgs", classes=(0, 1), per_class=3, rgb=True)
    d = load_domain(root, name="source")
    assert d.X.shape == (6, 3, 32, 32)


def test_unlabelled_flat_folder_and_class_folders(tmp_path, make_digits_folder):
    root = make_digits_folder(tmp_path / "imgs", classes=(0, 1), per_class=3)
    d = load_domain(root, name="u", image_size=8, labelled=False)
    assert d.y is None and len(d) == 6
    flat = tmp_path / "flat"
    flat.mkdir()
    for f in list((root / "digit0").iterdir()):
        f.rename(flat / f.name)
    assert len(load_domain(flat, name="u", image_size=8, labelled=False)) == 3


def test_missing_path(tmp_path):
    _raises(r"path not found: .*nope", load_domain, tmp_path / "nope", name="target")


def test_empty_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    _raises(r"directory .*empty is empty", load_domain, tmp_path / "empty", name="target")


def test_class_folder_without_images(tmp_path, make_digits_folder):
    root = make_digits_folder(tmp_path / "imgs", classes=(0, 1), per_class=3)
    (root / "zebra").mkdir()
    (root / "zebra" / "notes.txt").write_text("no images here")
    _raises(r"class folder .*zebra has no images", load_domain, root, name="target")


def test_corrupt_image_is_named(tmp_path, make_digits_folder):
    root = make_digits_folder(tmp_path / "imgs", classes=(0, 1), per_class=3)
    (root / "digit1" / "broken.png").write_bytes(b"\x89PNG not really an image")
    _raises(r"cannot read image .*digit1/broken\.png", load_domain, root, name="target")


def test_truncated_image_is_named(tmp_path, make_digits_folder):
    root = make_digits_folder(tmp_path / "imgs", classes=(0, 1), per_class=3)
    good = sorted((root / "digit0").iterdir())[0]
    data = good.read_bytes()
    (root / "digit0" / "half.png").write_bytes(data[: len(data) // 2])
    _raises(r"cannot read image .*digit0/half\.png", load_domain, root, name="target")


def test_flat_folder_needs_class_folders_when_labelled(tmp_path, make_digits_folder):
    root = make_digits_folder(tmp_path / "imgs", classes=(0,), per_class=2)
    _raises("no class folders", load_domain, root / "digit0", name="target")


def test_loose_image_next_to_class_folders(tmp_path, make_digits_folder):
    root = make_digits_folder(tmp_path / "imgs", classes=(0, 1), per_class=2)
    first = sorted((root / "digit0").iterdir())[0]
    (root / "stray.png").write_bytes(first.read_bytes())
    _raises(r"stray\.png lies outside the class folders", load_domain, root, name="target")


# --------------------------------------------------------------------------- tables


def test_npz_table_with_string_labels(tmp_path):
    p = tmp_path / "t.npz"
    np.savez(p, X=np.arange(12, dtype=np.float64).reshape(6, 2), y=np.array(list("bababa")))
    d = load_domain(p, name="target")
    assert d.kind == "features" and d.X.dtype == np.float32 and d.X.shape == (6, 2)
    assert d.classes == ("a", "b")
    assert d.y.tolist() == [1, 0, 1, 0, 1, 0]


def test_npz_table_int_labels_index_given_classes(tmp_path):
    p = tmp_path / "t.npz"
    np.savez(p, X=np.zeros((4, 3)), y=np.array([0, 2, 2, 0]), classes=np.array(["cat", "dog", "eel"]))
    d = load_domain(p, name="target")
    assert d.classes == ("cat", "dog", "eel") and d.y.tolist() == [0, 2, 2, 0]


def test_npz_int_labels_become_contiguous(tmp_path):
    p = tmp_path / "t.npz"
    np.savez(p, X=np.zeros((4, 3)), y=np.array([5, 9, 9, 5]))
    d = load_domain(p, name="target")
    assert d.classes == ("5", "9") and d.y.tolist() == [0, 1, 1, 0]


def test_npz_labels_outside_classes(tmp_path):
    p = tmp_path / "t.npz"
    np.savez(p, X=np.zeros((2, 3)), y=np.array([0, 3]), classes=np.array(["a", "b"]))
    _raises("label 3 at row 1 does not index the 2 classes", load_domain, p, name="target")


def test_npz_nan_and_inf_name_row_and_column(tmp_path):
    X = np.ones((5, 4))
    X[3, 2] = np.nan
    p = tmp_path / "nan.npz"
    np.savez(p, X=X, y=np.arange(5))
    _raises(r"NaN at row 3, column 2", load_domain, p, name="target")
    X[3, 2] = 1.0
    X[1, 0] = -np.inf
    np.savez(p, X=X, y=np.arange(5))
    _raises(r"an infinite value at row 1, column 0", load_domain, p, name="target")


def test_npz_wrong_shapes(tmp_path):
    p = tmp_path / "bad.npz"
    np.savez(p, X=np.zeros(5), y=np.arange(5))
    _raises(r"X in .* has shape \(5,\)", load_domain, p, name="target")
    np.savez(p, X=np.zeros((5, 2)), y=np.arange(4))
    _raises("5 rows in X but 4 labels", load_domain, p, name="target")
    np.savez(p, X=np.zeros((5, 4, 4, 2), dtype=np.uint8), y=np.arange(5))
    _raises("have 2 channels", load_domain, p, name="target")


def test_npz_missing_arrays_and_garbage(tmp_path):
    p = tmp_path / "noX.npz"
    np.savez(p, data=np.zeros((2, 2)))
    _raises(r"has no array 'X' \(found: data\)", load_domain, p, name="target")
    np.savez(p, X=np.zeros((2, 2)))
    _raises("has no labels 'y'", load_domain, p, name="target")
    assert load_domain(p, name="u", labelled=False).y is None
    g = tmp_path / "garbage.npz"
    g.write_bytes(b"this is not a zip")
    _raises(r"cannot read .*garbage\.npz as \.npz", load_domain, g, name="target")


def test_unsupported_file_type(tmp_path):
    p = tmp_path / "data.txt"
    p.write_text("1,2,3")
    _raises(r"unsupported input .*data\.txt", load_domain, p, name="target")


def test_csv_table(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,species,b\n1.5,setosa,2\n3,virginica,4\n5,setosa,6\n")
    d = load_domain(p, name="target", label_column="species")
    assert d.X.tolist() == [[1.5, 2.0], [3.0, 4.0], [5.0, 6.0]]
    assert d.classes == ("setosa", "virginica") and d.y.tolist() == [0, 1, 0]
    u = load_domain(p, name="u", label_column="species", labelled=False)
    assert u.y is None and u.X.shape == (3, 2)


def test_csv_problems(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b,label\n1,2,x\n3,4,y\n")
    _raises(r"no label column 'kind' \(columns: a, b, label\)", load_domain, p, name="target",
            label_column="kind")
    p.write_text("a,b,label\n1,2,x\n3,nan,y\n")
    _raises(r"NaN at line 3, column 'b'", load_domain, p, name="target")
    p.write_text("a,b,label\n1,inf,x\n3,4,y\n")
    _raises(r"an infinite value at line 2, column 'b'", load_domain, p, name="target")
    p.write_text("a,b,label\n1,2,x\n3,,y\n")
    _raises(r"NaN at line 3, column 'b'", load_domain, p, name="target")
    p.write_text("a,b,label\n1,two,x\n")
    _raises(r"line 2, column 'b': 'two' is not a number", load_domain, p, name="target")
    p.write_text("a,b,label\n1,2\n")
    _raises("line 2 has 2 cells; the header has 3", load_domain, p, name="target")
    p.write_text("a,b,label\n")
    _raises("a header but no rows", load_domain, p, name="target")


# --------------------------------------------------------------------------- image arrays


def test_npz_image_arrays_uint8_and_float(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "imgs.npz"
    X8 = rng.integers(0, 256, size=(4, 10, 12), dtype=np.uint8)
    np.savez(p, X=X8, y=np.array([0, 1, 0, 1]))
    d = load_domain(p, name="target")
    assert d.kind == "images" and d.X.shape == (4, 1, 10, 12)
    np.testing.assert_allclose(d.X[:, 0], X8 / 255.0, rtol=1e-6)
    r = load_domain(p, name="target", image_size=16)
    assert r.X.shape == (4, 1, 16, 16) and 0.0 <= r.X.min() and r.X.max() <= 1.0

    Xf = rng.random((3, 8, 8, 3)).astype(np.float32)
    np.savez(p, X=Xf, y=np.array([0, 1, 1]))
    np.testing.assert_allclose(load_domain(p, name="t").X, Xf.transpose(0, 3, 1, 2))
    np.savez(p, X=Xf * 255.0, y=np.array([0, 1, 1]))
    np.testing.assert_allclose(load_domain(p, name="t").X, Xf.transpose(0, 3, 1, 2), atol=1e-5)
    np.savez(p, X=Xf - 0.5, y=np.array([0, 1, 1]))
    _raises(r"pixels in .* range over \[-0\.", load_domain, p, name="t")
    rgba = rng.integers(0, 256, size=(2, 5, 5, 4), dtype=np.uint8)
    np.savez(p, X=rgba, y=np.array([0, 1]))
    assert load_domain(p, name="t").X.shape == (2, 3, 5, 5)


# --------------------------------------------------------------------------- compatibility


def _table(name: str, d: int) -> Domain:
    return Domain(name, np.zeros((4, d), np.float32), np.array([0, 1, 0, 1]), ("a", "b"), "features")


def _images(name: str, c: int, s: int) -> Domain:
    return Domain(name, np.zeros((2, c, s, s), np.float32), np.array([0, 1]), ("a", "b"), "images")


def test_check_compatible():
    check_compatible(_table("source", 5), _table("target", 5))
    _raises("feature dimensions differ: source has 5 features, target has 7",
            check_compatible, _table("source", 5), _table("target", 7))
    _raises("source holds images but target holds features",
            check_compatible, _images("source", 1, 8), _table("target", 7))
    _raises("image sizes differ", check_compatible, _images("source", 1, 8), _images("target", 1, 16))


def test_match_channels_repeats_grey_when_mixed():
    grey, rgb = _images("a", 1, 8), _images("b", 3, 8)
    out = match_channels([grey, rgb, None])
    assert out[0].X.shape == (2, 3, 8, 8) and out[1] is rgb and out[2] is None
    _raises("3-channel images but 1 channels are needed", match_channels, [rgb], 1)
    (grey_rgb,) = match_channels([rgb], 1, average_to_grey=True)  # prediction with a greyscale model
    assert grey_rgb.X.shape == (2, 1, 8, 8) and np.allclose(grey_rgb.X[:, 0], rgb.X.mean(1))


def test_encode_labels_rejects_fractional_ids():
    _raises("label at row 1 is 1.5", encode_labels, np.array([1.0, 1.5]), None, "t")


def test_loaders_do_not_need_torch_for_tables(tmp_path: Path):
    import subprocess
    import sys

    p = tmp_path / "t.npz"
    np.savez(p, X=np.zeros((2, 2)), y=np.array([0, 1]))
    code = (f"import sys; from advisor.data.loaders import load_domain; load_domain({str(p)!r}, name='t'); "
            "import advisor.models.inputs; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_mixed_grey_and_colour_folder_becomes_rgb(tmp_path):
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / c).mkdir()
    grey = np.full((6, 6), 200, np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "a" / "g.png")
    Image.fromarray(np.full((6, 6), 51 * 256, np.uint16)).save(tmp_path / "a" / "deep.png")  # 16-bit
    Image.fromarray((np.zeros((4, 4, 3)) + [255, 0, 0]).astype(np.uint8), "RGB").save(tmp_path / "b" / "red.png")
    d = load_domain(tmp_path, name="t", image_size=4)
    assert d.X.shape == (3, 3, 4, 4)
    d = Domain(d.name, as_float(d.X), d.y, d.classes, d.kind)  # stored as uint8
    np.testing.assert_allclose(d.X[1], 200 / 255, rtol=1e-5)  # files sort: deep, g, red
    np.testing.assert_allclose(d.X[0], 51 / 255, atol=1 / 255)
    np.testing.assert_allclose(d.X[2, 0], 1.0)
    np.testing.assert_allclose(d.X[2, 1:], 0.0)


def test_resize_then_centre_crop_matches_torchvision(tmp_path):
    from PIL import Image
    from torchvision import transforms

    from advisor.data.loaders import ImagePrep

    rng = np.random.default_rng(0)
    for size in ((300, 260), (200, 411)):
        im = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8), "RGB")
        for interp, mode in (("bilinear", transforms.InterpolationMode.BILINEAR),
                             ("bicubic", transforms.InterpolationMode.BICUBIC)):
            ref = transforms.Compose([transforms.Resize(256, interpolation=mode), transforms.CenterCrop(224)])(im)
            ours = ImagePrep(224, 256, interp).apply(im)
            assert np.array_equal(np.asarray(ours), np.asarray(ref))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    im.save(tmp_path / "a" / "x.png")
    im.save(tmp_path / "b" / "y.png")
    d = load_domain(tmp_path, name="t", image_size=224, resize=256)
    assert d.X.shape == (2, 3, 224, 224) and d.X.dtype == np.uint8
    assert np.array_equal(d.X[0].transpose(1, 2, 0), np.asarray(ImagePrep(224, 256).apply(im)))
