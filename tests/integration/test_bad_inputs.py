"""The bad-input battery (issue 21): every command, every class of bad input.

Commands: ``discosim volume``, ``smooth``, ``hit``, ``study``, ``figures``, ``validate``,
``audit``, report merging (``python -m discosim.validation.report --merge``) and the synthetic
checkpoint writer (``python -m discosim.checkpoints.synthetic``). Classes: bad numbers, bad shapes,
bad files, malformed JSON / config / index / headers, unsafe names, huge sizes.

Each case runs the command in this process and asserts what a user must see: exit status 2,
exactly one line on stderr, no traceback, and no file written or changed anywhere but the
command's output folder (the inputs and the working directory are compared before and after);
and, but for studies (which check each point as it runs), that no Monte Carlo chunk started.
"""

import io
import json
import os
import re
import shutil
import struct
import zipfile

import numpy as np
import pytest

from discosim.checkpoints.synthetic import encode, make_checkpoint, write_safetensors

R0 = "model.layers.0.block_sparse_moe.gate.weight"
R1 = "model.layers.1.block_sparse_moe.gate.weight"
DEEP = "[" * 100_000 + "]" * 100_000          # past the parser's recursion limit
DEEP40 = "[" * 40 + "1" + "]" * 40              # parses, but nests deeper than any real file


# --------------------------------------------------------------------------- file makers
def _st(path, header, data=b""):
    """A safetensors file with ``header`` (dict, or raw JSON text written as is) and ``data``."""
    raw = (header if isinstance(header, str) else json.dumps(header)).encode()
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw + data)


def _sparse(path, prefix, size):
    """``prefix`` then zeros up to ``size`` bytes, without writing them (a sparse file)."""
    with open(path, "wb") as fh:
        fh.write(prefix)
        fh.truncate(size)


def _npy_header(shape, descr="<f8"):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False,
                                               "shape": tuple(shape)})
    return buf.getvalue()


def _lying_npz(path, key, shape):
    """An .npz whose member declares (in its .npy header and the zip directory) an array of
    ``shape`` float64 while holding 64 bytes: a reader that trusts it decompresses gigabytes."""
    head = _npy_header(shape)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(key + ".npy", head + bytes(64))
    data = bytearray(open(path, "rb").read())
    declared = len(head) + int(np.prod(shape, dtype=object)) * 8
    struct.pack_into("<I", data, 22, declared)                      # local file header
    struct.pack_into("<I", data, data.find(b"PK\x01\x02") + 24, declared)  # central directory
    open(path, "wb").write(bytes(data))


def _write(path, text):
    with open(path, "wb" if isinstance(text, bytes) else "w") as fh:
        fh.write(text)


def _routers(d, p):
    """Gate-weight files for --router (4 x 8 is the good shape)."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((4, 8))
    arrays = {"ok": W, "complex": W * (1 + 1j), "str": np.array([["ab"] * 8] * 4),
              "vec": np.ones(8), "cube": np.ones((4, 8, 2)), "nan": np.where(W > 1, np.nan, W),
              "inf": np.where(W > 1, np.inf, W), "big": W * 1e200, "tiny": W * 1e-300,
              "rank": np.vstack([W[:2], W[:2]]), "wide": rng.standard_normal((8, 4)),
              "norows": np.ones((0, 8)), "onerow": np.ones((1, 8)), "bool": W > 0,
              "struct": np.zeros(4, dtype=[("a", "f8"), ("b", "f8")])}
    for name, a in arrays.items():
        np.save(d / f"w_{name}.npy", a)
        p[f"w_{name}"] = str(d / f"w_{name}.npy")
    np.save(d / "w_object.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    full = (d / "w_ok.npy").read_bytes()
    _write(d / "w_empty.npy", b"")
    _write(d / "w_trunc.npy", full[:len(full) - 40])
    _write(d / "w_lies.npy", _npy_header((4, 1000)) + W.tobytes())
    _write(d / "w_magic.npy", b"not an npy file at all")
    _write(d / "w_badheader.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': <f8'}\n" + bytes(64))
    _sparse(d / "w_huge.npy", _npy_header((2, 2 ** 31)), len(_npy_header((2, 2 ** 31))) + 2 ** 35)
    _write(d / "w.txt", "1 2 3")
    np.savez(d / "w_two.npz", gate=W, other=W)
    np.savez(d / "w_onekey.npz", gate=W)
    np.savez(d / "w_npzobj.npz", gate=np.array([{"a": 1}], dtype=object))
    _lying_npz(d / "w_bomb.npz", "gate", (2, 2 * 10 ** 8))
    with zipfile.ZipFile(d / "w_member.npz", "w") as zf:
        zf.writestr("gate.txt", "hello")
    _write(d / "w_garbage.npz", b"PK\x03\x04 garbage that is not a zip")
    z = (d / "w_onekey.npz").read_bytes()
    _write(d / "w_truncz.npz", z[:len(z) // 2])
    with zipfile.ZipFile(d / "w_memlies.npz", "w") as zf:
        zf.writestr("gate.npy", _npy_header((4, 1000)) + W.tobytes())
    good = encode(np.round(W * 8) / 8, "float32")
    entry = '"dtype": "F32", "shape": %s, "data_offsets": %s'
    st = {"st_ok": '{"g": {%s}}' % (entry % ("[4, 8]", "[0, 128]")),
          "st_nanshape": '{"g": {%s}}' % (entry % ("[NaN, 8]", "[0, 128]")),
          "st_infshape": '{"g": {%s}}' % (entry % ("[Infinity, 8]", "[0, 128]")),
          "st_1e999": '{"g": {%s}}' % (entry % ("[1e999, 8]", "[0, 128]")),
          "st_wrap": '{"g": {%s}}' % (entry % ("[4294967296, 8589934592]", "[0, 0]")),
          "st_negshape": '{"g": {%s}}' % (entry % ("[-4, -8]", "[0, 128]")),
          "st_strshape": '{"g": {%s}}' % (entry % ('["4", "8"]', "[0, 128]")),
          "st_floatshape": '{"g": {%s}}' % (entry % ("[4.5, 8]", "[0, 128]")),
          "st_nestshape": '{"g": {%s}}' % (entry % ("[[4], [8]]", "[0, 128]")),
          "st_revoffsets": '{"g": {%s}}' % (entry % ("[4, 8]", "[128, 0]")),
          "st_outside": '{"g": {%s}}' % (entry % ("[4, 8]", "[0, 1280]")),
          "st_nooffsets": '{"g": {"dtype": "F32", "shape": [4, 8]}}',
          "st_unknowndtype": '{"g": {"dtype": "Q7", "shape": [4, 8], "data_offsets": [0, 128]}}',
          "st_notobject": '[1, 2, 3]',
          "st_entry5": '{"g": 5}',
          "st_notjson": '{"g": oops}',
          "st_deep": DEEP,
          "st_deepmeta": '{"__metadata__": %s, "g": {%s}}' % (DEEP40, entry % ("[4, 8]",
                                                                                 "[0, 128]")),
          "st_two": '{"g": {%s}, "h": {%s}}' % (entry % ("[4, 8]", "[0, 128]"),
                                                 entry % ("[4, 8]", "[0, 128]"))}
    for name, header in st.items():
        _st(d / f"{name}.safetensors", header, good)
    write_safetensors(d / "st_int.safetensors", {"g": ("I8", (4, 8), bytes(32))})
    _write(d / "st_empty.safetensors", b"")
    _write(d / "st_short.safetensors", b"\x01\x02\x03")
    _write(d / "st_hlen.safetensors", struct.pack("<Q", 2 ** 40) + b"{}")
    _write(d / "st_nonutf8.safetensors", struct.pack("<Q", 4) + b"\xff\xfe\xfd\xfc")
    head = json.dumps({"g": {"dtype": "BF16", "shape": [2, 2 ** 30],
                             "data_offsets": [0, 2 ** 32]}}).encode()
    _sparse(d / "st_wide.safetensors", struct.pack("<Q", len(head)) + head, 8 + len(head) + 2 ** 32)
    (d / "adir.npy").mkdir()
    for name in list(st) + ["st_int", "st_empty", "st_short", "st_hlen", "st_nonutf8", "st_wide"]:
        p[name] = str(d / f"{name}.safetensors")
    for name in ("w_object", "w_empty", "w_trunc", "w_lies", "w_magic", "w_badheader", "w_huge"):
        p[name] = str(d / f"{name}.npy")
    for name in ("w_two", "w_onekey", "w_npzobj", "w_bomb", "w_member", "w_garbage", "w_truncz",
                 "w_memlies"):
        p[name] = str(d / f"{name}.npz")
    p["w_txt"] = str(d / "w.txt")
    p["adir"] = str(d / "adir.npy")
    np.save(d / "x0_short.npy", np.ones(5))
    np.save(d / "x0_nan.npy", np.full(8, np.nan))
    p["x0_short"], p["x0_nan"] = str(d / "x0_short.npy"), str(d / "x0_nan.npy")


def _checkpoints(d, p):
    """Broken checkpoints for audit: config.json, the index, the headers, the router itself."""
    base = make_checkpoint(d / "ck", "mixtral", n_layers=2, n_experts=8, dim=32, k=2, shards=2)
    single = make_checkpoint(d / "ck1", "mixtral", n_layers=2, n_experts=8, dim=32, k=2, shards=1)
    ds = make_checkpoint(d / "ds", "deepseek_v3", n_layers=1, n_experts=8, dim=32, k=2, shards=1)
    p["ck"], p["ck1"], p["ds"] = str(base), str(single), str(ds)
    base, single, ds = d / "ck", d / "ck1", d / "ds"

    def variant(name, src=base):
        dst = d / name
        shutil.copytree(src, dst)
        p[name] = str(dst)
        return dst

    def config(name, text, src=base):
        _write(variant(name, src) / "config.json", text)

    cfg = json.loads((base / "config.json").read_text())

    def with_field(field, raw, src_cfg=cfg):
        doc = dict(src_cfg)
        doc[field] = "@@"
        return json.dumps(doc).replace('"@@"', raw)

    for name, field, raw in (("c_k1e999", "num_experts_per_tok", "1e999"),
                             ("c_knan", "num_experts_per_tok", "NaN"),
                             ("c_kinf", "num_experts_per_tok", "-Infinity"),
                             ("c_kstr", "num_experts_per_tok", '"2"'),
                             ("c_kbool", "num_experts_per_tok", "true"),
                             ("c_kneg", "num_experts_per_tok", "-1"),
                             ("c_kfloat", "num_experts_per_tok", "1.5"),
                             ("c_khuge", "num_experts_per_tok", "1" + "0" * 400),
                             ("c_klist", "num_experts_per_tok", "[2]"),
                             ("c_kM", "num_experts_per_tok", "8"),
                             ("c_mtlist", "model_type", '["mixtral"]'),
                             ("c_mtdict", "model_type", '{"a": 1}'),
                             ("c_mtint", "model_type", "7"),
                             ("c_archint", "architectures", "5"),
                             ("c_archlist", "architectures", "[1, 2]"),
                             ("c_expstr", "num_local_experts", '"8"'),
                             ("c_expnan", "num_local_experts", "NaN"),
                             ("c_hidinf", "hidden_size", "1e999"),
                             ("c_hidfloat", "hidden_size", "32.5"),
                             ("c_ngroup", "n_group", "NaN")):
        config(name, with_field(field, raw))
    config("c_deep", DEEP)
    config("c_deep40", with_field("rope_scaling", DEEP40))
    config("c_list", "[1, 2]")
    config("c_broken", "{oops")
    config("c_empty", "")
    config("c_binary", b"\xff\xfe\x00garbage")
    dcfg = json.loads((ds / "config.json").read_text())
    for name, field, raw in (("d_ngroupnan", "n_group", "NaN"), ("d_score5", "scoring_func", "5"),
                             ("d_scorerelu", "scoring_func", '"relu"'),
                             ("d_layersx", "num_hidden_layers", '"x"'),
                             ("d_topk99", "topk_group", "99"), ("d_ngroup3", "n_group", "3")):
        config(name, with_field(field, raw, dcfg), src=ds)

    index = json.loads((base / "model.safetensors.index.json").read_text())

    def index_variant(name, text):
        _write(variant(name) / "model.safetensors.index.json", text)

    def mapped(value):
        doc = json.loads(json.dumps(index))
        doc["weight_map"][R0] = "@@"
        return json.dumps(doc).replace('"@@"', value)

    for name, value in (("i_dotdot", '"../evil.safetensors"'), ("i_abs", '"/etc/passwd"'),
                        ("i_int", "5"), ("i_null", "null"), ("i_newline", '"a\\nb.safetensors"'),
                        ("i_escape", '"\\u001b[31m.safetensors"'), ("i_subdir", '"sub/x.safetensors"'),
                        ("i_missing", '"model-00009-of-00009.safetensors"')):
        index_variant(name, mapped(value))
    index_variant("i_list", json.dumps({"weight_map": [1, 2]}))
    index_variant("i_empty", json.dumps({"weight_map": {}}))
    index_variant("i_broken", "{oops")
    index_variant("i_deep", DEEP)
    index_variant("i_nan", json.dumps(index).replace("}", ', "x": NaN}', 1))
    index_variant("i_notobject", "[]")

    # single-file checkpoints whose header says something impossible about the first router
    full = (single / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", full[:8])
    header = json.loads(full[8:8 + n])
    data = full[8 + n:]

    def header_variant(name, shape=None, offsets=None, dtype=None, raw=None):
        dst = variant(name, single)
        h = json.loads(json.dumps(header))
        text = json.dumps(h)
        if raw is None:
            entry = h[R0]
            entry["shape"] = "@S" if shape is not None else entry["shape"]
            entry["data_offsets"] = "@O" if offsets is not None else entry["data_offsets"]
            entry["dtype"] = dtype or entry["dtype"]
            text = json.dumps(h).replace('"@S"', shape or "").replace('"@O"', offsets or "")
        else:
            text = raw
        _st(dst / "model.safetensors", text, data)

    header_variant("hd_inf", shape="[Infinity, 32]")
    header_variant("hd_nan", shape="[8, NaN]")
    header_variant("hd_1e999", shape="[8, 1e999]")
    header_variant("hd_wrap", shape="[4294967296, 8589934592]")
    header_variant("hd_neg", shape="[-8, 32]")
    header_variant("hd_str", shape='["8", "32"]')
    header_variant("hd_float", shape="[8.0, 32]")
    header_variant("hd_bool", shape="[true, 32]")
    header_variant("hd_dims", shape="[" + ", ".join(["1"] * 40) + "]")
    header_variant("hd_revoff", offsets="[512, 0]")
    header_variant("hd_outside", offsets="[0, 99999999]")
    header_variant("hd_i8", dtype="I8")
    header_variant("hd_unknown", dtype="Q7")
    header_variant("hd_deep", raw=DEEP)
    header_variant("hd_notobject", raw="[1]")
    header_variant("hd_broken", raw="{oops")
    _write(variant("hd_empty", single) / "model.safetensors", b"")
    _write(variant("hd_hlen", single) / "model.safetensors", struct.pack("<Q", 2 ** 62) + b"{}")

    for name, over in (("r_3d", np.ones((8, 32, 1))), ("r_square", np.ones((8, 8))),
                       ("r_shapes", np.ones((8, 16)))):
        make_checkpoint(d / name, "mixtral", n_layers=2, n_experts=8, dim=32, k=2, shards=1,
                        overrides={R0: over})
        p[name] = str(d / name)
    w = np.full((8, 32), 0.25)
    w[3, 5] = np.nan
    for name, over in (("r_nan", {R0: w}),
                       ("r_norm", {"model.layers.1.post_attention_layernorm.weight": np.ones(31)}),
                       ("r_nonorm", {"model.layers.0.post_attention_layernorm.weight": None})):
        make_checkpoint(d / name, "mixtral", n_layers=2, n_experts=8, dim=32, k=2, shards=1,
                        overrides=over)
        p[name] = str(d / name)
    # a router declared 2 x 2**30 (4 GiB in bf16): the file is sparse, the reader must refuse it
    wide = d / "r_wide"
    wide.mkdir()
    head = json.dumps({R0: {"dtype": "BF16", "shape": [2, 2 ** 30], "data_offsets": [0, 2 ** 32]},
                       "model.layers.0.post_attention_layernorm.weight":
                           {"dtype": "BF16", "shape": [2 ** 30],
                            "data_offsets": [2 ** 32, 2 ** 32 + 2 ** 31]}}).encode()
    _sparse(wide / "model.safetensors", struct.pack("<Q", len(head)) + head,
            8 + len(head) + 2 ** 32 + 2 ** 31)
    _write(wide / "config.json", json.dumps({"model_type": "mixtral", "num_experts_per_tok": 1}))
    p["r_wide"] = str(wide)
    # a router whose layer number has 12 digits
    long = d / "r_longlayer"
    long.mkdir()
    write_safetensors(long / "model.safetensors",
                      {"model.layers.123456789012.block_sparse_moe.gate.weight":
                           ("F32", (8, 32), encode(np.eye(8, 32), "float32"))})
    p["r_longlayer"] = str(long)


def _hidden(d, p, D=32):
    rng = np.random.default_rng(2)
    H = rng.standard_normal((100, D))
    for name, a in (("h_shape", np.ones((10, D - 1))), ("h_onerow", np.ones((1, D))),
                    ("h_nan", np.where(H > 2, np.nan, H)), ("h_huge", H * 1e200),
                    ("h_complex", H * 1j), ("h_str", np.array([["a"] * D] * 4)),
                    ("h_3d", np.ones((4, D, 2))), ("h_zero", np.zeros((10, D))),
                    ("h_vector", np.ones(D))):
        np.save(d / f"{name}.npy", a)
        p[name] = str(d / f"{name}.npy")
    np.save(d / "h_object.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    full = (d / "h_zero.npy").read_bytes()
    _write(d / "h_trunc.npy", full[:len(full) - 8])
    _write(d / "h_empty.npy", b"")
    np.savez(d / "h_nokey.npz", a=H, b=H)
    _lying_npz(d / "h_bomb.npz", R0, (10 ** 7, D))
    _write(d / "h_garbage.npz", b"garbage")
    _write(d / "h.txt", "1 2 3")
    for name in ("h_object", "h_trunc", "h_empty"):
        p[name] = str(d / f"{name}.npy")
    for name in ("h_nokey", "h_bomb", "h_garbage"):
        p[name] = str(d / f"{name}.npz")
    p["h_txt"] = str(d / "h.txt")


def _grids(d, p):
    for name, text in (("g_broken", "{oops"), ("g_deep", DEEP), ("g_nan", '{"eps": NaN}'),
                       ("g_inf", '{"eps": Infinity}'), ("g_list", "[1, 2]"), ("g_empty", ""),
                       ("g_nested", '{"eps": [[0.1]]}'), ("g_dict", '{"eps": {"a": 1}}'),
                       ("g_huge", '{"M": 2, "k": 1, "D": 1000000000}'), ("g_unknown", '{"bogus": 1}'),
                       ("g_binary", b"\xff\xfe\x00")):
        _write(d / f"{name}.json", text)
        p[name] = str(d / f"{name}.json")
    _write(d / "g_broken.toml", "eps = [0.1,")
    p["g_toml"] = str(d / "g_broken.toml")


def _validations(d, p):
    """validate.json files for figures and report merging, and damaged study results."""
    base = {"seed": 1, "quick": True, "scale": 0.25, "n_jobs": 1, "device": "cpu",
            "device_scale": 1.0, "code_version": "0", "complete": True, "elapsed_s": 1.0,
            "claim_elapsed_s": {}, "z_verdict": 4.0, "z_power": 2.0, "n_rows": 0,
            "all_passed": True, "claims": [], "series": {}}
    docs = {"v_broken": "{oops", "v_deep": DEEP, "v_list": "[1, 2]", "v_empty": "",
            "v_nokeys": "{}", "v_nan": json.dumps(base).replace('"seed": 1', '"seed": NaN'),
            "v_claimsnotlist": json.dumps({**base, "claims": 5}),
            "v_rownotdict": json.dumps({**base, "claims": [5]}),
            "v_seriesnotdict": json.dumps({**base, "series": [1]}),
            "v_evilfigure": json.dumps({**base, "series": {"slice_exact": {"../../evil": {}}}}),
            "v_seed2": json.dumps({**base, "seed": 2}),
            "v_dup": json.dumps({**base, "claims": [{"claim": "slice_exact", "passed": True}]})}
    for name, text in docs.items():
        _write(d / f"{name}.json", text)
        p[name] = str(d / f"{name}.json")
        vdir = d / f"vd_{name}"
        vdir.mkdir()
        _write(vdir / "validate.json", text)
        p[f"vd_{name}"] = str(vdir)
    _write(d / "v_ok.json", json.dumps(base))
    p["v_ok"] = str(d / "v_ok.json")
    for name, text in (("res_broken", "{oops"), ("res_deep", DEEP), ("res_list", "[1]"),
                       ("res_unknown", json.dumps({"study": "../../evil", "rows": []}))):
        rdir = d / name / "vr"
        rdir.mkdir(parents=True)
        _write(rdir / "results.json", text)
        _write(rdir / "results.csv", "a,b\n1,2\n")
        p[name] = str(d / name)
    p["afile"] = str(d / "afile")
    _write(d / "afile", "x")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Input files under ``root/deep/er/inputs``, the working directory ``root/deep/er/work``
    and the output folder ``work/out``: the whole ``root`` is watched, so a name with ``..``
    that climbs out of ``work/out`` is seen."""
    root = tmp_path_factory.mktemp("battery")
    base = root / "deep" / "er"
    inputs = base / "inputs"
    inputs.mkdir(parents=True)
    (base / "work").mkdir()
    p = {}
    _routers(inputs, p)
    _checkpoints(inputs, p)
    _hidden(inputs, p)
    _grids(inputs, p)
    _validations(inputs, p)
    p["out"] = str(base / "work" / "out")
    return root, base, p


def _snapshot(root):
    """Every file (size, mtime, mode) and folder (existence: making a folder inside one changes
    its mtime) under ``root``."""
    seen = {}
    for dirpath, dirnames, files in os.walk(root):
        for name in dirnames:
            seen[os.path.join(dirpath, name)] = "folder"
        for name in files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            seen[path] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return seen


# --------------------------------------------------------------------------- the cases
def _discosim(argv):
    from discosim.app.cli.main import main

    return main(argv)


def _report(argv):
    from discosim.validation.report import main

    return main(argv)


def _synthetic(argv):
    from discosim.checkpoints.synthetic import main

    return main(argv)


ENTRY = {"discosim": _discosim, "report": _report, "synthetic": _synthetic}
OK_ROUTER = ["--M", "4", "--D", "8", "--k", "2"]
VOLUME = ["volume", "--eps", "0.1", "--n-samples", "1000"]
SMOOTH = ["smooth", "--etas", "0.01", "--deltas", "1e-3", "1e-2", "--n-samples", "1000",
          "--n-points", "10"]
HIT = ["hit", "--sigma", "1", "--t-max", "1", "--dt", "0.01", "--times", "0.5", "--n-paths", "100"]
STUDY = ["study", "volume_ratios", "--set", "n_samples=200", "--quiet"]
AUDIT = ["audit", "--n-samples", "1000", "--constants-samples", "0", "--quiet"]

CASES = []  # (class, command, argv, word or None)


def case(cls, argv, word=None, command="discosim"):
    CASES.append((cls, command, list(argv), word))


# bad numbers, option by option
for opt, bad in (("--eps", "-0.1"), ("--eps", "0"), ("--eps", "nan"), ("--eps", "inf"),
                 ("--eps", "abc"), ("--radius", "0"), ("--radius", "-1"), ("--radius", "nan"),
                 ("--radius", "inf"), ("--n-samples", "0"), ("--n-samples", "1"),
                 ("--n-samples", "1.5"), ("--n-samples", "-5"), ("--n-samples", "nan"),
                 ("--n-samples", "abc"), ("--orders", "0"), ("--orders", "9"), ("--seed", "-1"),
                 ("--seed", "abc"), ("--prediction-samples", "0"), ("--n-jobs", "0"),
                 ("--n-jobs", "-5"), ("--k", "0"), ("--k", "4"), ("--k", "-1"),
                 ("--router-seed", "-1"), ("--metric", "foo"), ("--method", "foo"),
                 ("--device", "foo"), ("--M", "1"), ("--D", "0")):
    case("bad numbers", VOLUME + OK_ROUTER + [opt, bad])
for opt, bad in (("--etas", "-1"), ("--etas", "nan"), ("--deltas", "0"), ("--deltas", "inf"),
                 ("--eta", "-1"), ("--a-s", "0"), ("--a-s", "nan"), ("--b-s", "-1"),
                 ("--experts", "foo"), ("--out-dim", "0"), ("--n-points", "1"),
                 ("--n-points", "1000000000"), ("--target-overhead", "0"),
                 ("--target-overhead", "10"), ("--inputs", "cube"), ("--radius", "0"),
                 ("--n-samples", "1"), ("--seed", "-1"), ("--n-jobs", "0"),
                 ("--device", "foo"), ("--k", "9")):
    case("bad numbers", SMOOTH + OK_ROUTER + [opt, bad])
for opt, bad in (("--sigma", "0"), ("--sigma", "-1"), ("--sigma", "nan"), ("--t-max", "0"),
                 ("--t-max", "inf"), ("--dt", "0"), ("--dt", "2"), ("--dt", "1e-300"),
                 ("--times", "-1"), ("--times", "5"), ("--times", "nan"), ("--deltas", "0"),
                 ("--eps", "-1"), ("--process", "foo"), ("--metric", "foo"),
                 ("--inputs", "cube"), ("--n-paths", "1"), ("--radius", "0"), ("--seed", "-1"),
                 ("--n-jobs", "0"), ("--device", "foo")):
    case("bad numbers", HIT + OK_ROUTER + [opt, bad])
case("bad numbers", HIT + OK_ROUTER + ["--process", "ou", "--theta", "0"])
case("bad numbers", HIT + OK_ROUTER + ["--eps", "0.1", "--orders", "7"])
case("bad numbers", HIT + OK_ROUTER + ["--orders", "1"])
case("bad numbers", HIT + OK_ROUTER + ["--wos", "--process", "ou"])
for item in ("eps=-1", "eps=nan", "eps=abc", "eps=true", "eps=", "n_samples=0",
             "n_samples=1.5", "M=1", "M=abc", "D=abc", "k=0", "k=7", "M=20", "ensemble=cube",
             "metric=foo", "bogus=1", "eps"):
    case("bad numbers", STUDY + ["--set", item])
case("bad numbers", STUDY + ["--set", "ensemble=correlated", "--set", "rho=2"])
case("bad numbers", ["study", "first_hit", "--set", "bridge=maybe", "--quiet"])
case("bad numbers", ["study", "first_hit", "--set", "dt_over_d2=1e-12", "--quiet"])
for extra in (["--seed", "-1"], ["--n-jobs", "0"], ["--backend", "spark"], ["--device", "foo"]):
    case("bad numbers", STUDY + extra)
for extra in (["--n-jobs", "0"], ["--seed", "-1"], ["--claims", "nosuch"], ["--device", "foo"]):
    case("bad numbers", ["validate", "--quick", "--out", "{out}"] + extra)
for extra in (["--eps", "-1"], ["--eps", "nan"], ["--eps", "abc"], ["--n-samples", "10"],
              ["--n-samples", "2000000000"], ["--layers", "99"], ["--layers", "-1"],
              ["--layers", "abc"], ["--formats", "bf8"], ["--k", "0"], ["--k", "8"],
              ["--family", "nosuch"], ["--n-group", "3"], ["--topk-group", "2"],
              ["--constants-samples", "-1"], ["--seed", "-1"], ["--n-jobs", "0"],
              ["--device", "foo"], ["--inputs", "cube"]):
    case("bad numbers", AUDIT + ["{ck}"] + extra)
for extra in (["--layers", "0"], ["--experts", "1"], ["--dim", "0"], ["--shards", "0"],
              ["--k", "0"], ["--layers", "abc"], ["--dtype", "foo"], ["--family", "foo"]):
    case("bad numbers", ["{out}"] + extra, command="synthetic")

# bad shapes: router files, start points, hidden states, checkpoints
for name in ("w_vec", "w_cube", "w_wide", "w_norows", "w_onerow", "w_rank", "w_nan", "w_inf",
             "w_big", "w_tiny", "w_complex", "w_str", "w_bool", "w_struct"):
    for cmd in (VOLUME, SMOOTH, HIT):
        case("bad shapes", cmd + ["--router", "{%s}" % name, "--k", "1"])
case("bad shapes", VOLUME + ["--router", "{w_ok}", "--k", "2", "--M", "5"])
case("bad shapes", HIT + OK_ROUTER + ["--x0", "{x0_short}"])
case("bad shapes", HIT + OK_ROUTER + ["--x0", "{x0_nan}"])
for name in ("h_shape", "h_onerow", "h_nan", "h_huge", "h_complex", "h_str", "h_3d", "h_zero",
             "h_vector"):
    case("bad shapes", AUDIT + ["{ck}", "--inputs", "{%s}" % name])
for name in ("r_3d", "r_square", "r_shapes", "r_nan", "r_norm", "r_nonorm"):
    case("bad shapes", AUDIT + ["{%s}" % name])

# bad files: missing, empty, truncated, lying, pickled, not what they claim
for name in ("w_object", "w_empty", "w_trunc", "w_lies", "w_magic", "w_badheader", "w_txt",
             "adir", "w_npzobj", "w_member", "w_garbage", "w_truncz", "w_memlies", "w_two",
             "st_int", "st_empty", "st_short", "st_hlen", "st_nonutf8", "st_two",
             "st_unknowndtype"):
    case("bad files", VOLUME + ["--router", "{%s}" % name, "--k", "1"])
case("bad files", VOLUME + ["--router", "/no/such/file.npy", "--k", "1"])
case("bad files", VOLUME + ["--router", "{w_onekey}", "--key", "nope", "--k", "1"])
case("bad files", VOLUME + ["--router", "{w_ok}", "--key", "gate", "--k", "1"])
for name in ("w_object", "w_empty", "w_trunc", "st_int", "w_garbage"):
    case("bad files", SMOOTH + ["--router", "{%s}" % name, "--k", "1"])
    case("bad files", HIT + ["--router", "{%s}" % name, "--k", "1"])
for name in ("w_object", "w_empty", "w_trunc", "w_magic", "adir"):
    case("bad files", HIT + OK_ROUTER + ["--x0", "{%s}" % name])
case("bad files", HIT + OK_ROUTER + ["--x0", "/no/such.npy"])
for name in ("h_object", "h_trunc", "h_empty", "h_nokey", "h_garbage", "h_txt"):
    case("bad files", AUDIT + ["{ck}", "--inputs", "{%s}" % name])
case("bad files", AUDIT + ["{ck}", "--inputs", "/no/such.npy"])
for name in ("hd_empty", "hd_hlen", "r_nonorm"):
    case("bad files", AUDIT + ["{%s}" % name])
case("bad files", AUDIT + ["/no/such/checkpoint"])
case("bad files", AUDIT + ["{afile}"])
case("bad files", AUDIT + ["{ck}", "--out", "{afile}"])
case("bad files", AUDIT + ["{i_missing}"])
for name in ("g_broken", "g_empty", "g_binary", "g_toml"):
    case("bad files", ["study", "volume_ratios", "--grid", "{%s}" % name])
case("bad files", ["study", "volume_ratios", "--grid", "/no/such.json"])
case("bad files", STUDY + ["--out", "{afile}"])
case("bad files", STUDY + ["--out", "{out}", "--resume"])
case("bad files", ["validate", "--quick", "--out", "{afile}"])
case("bad files", ["figures", "--results", "/no/such/dir", "--validation", "/no/such/dir"])
for name in ("res_broken", "res_list"):
    case("bad files", ["figures", "--results", "{%s}" % name, "--validation", "{out}"])
for name in ("v_broken", "v_empty", "v_list", "v_nokeys"):
    case("bad files", ["figures", "--validation", "{vd_%s}" % name])
    case("bad files", ["--merge", "{%s}" % name, "--out", "{out}"], command="report")
case("bad files", ["--merge", "/no/such.json", "--out", "{out}"], command="report")
case("bad files", ["--merge", "{v_ok}"], command="report")
case("bad files", ["--merge", "{v_ok}", "--out", "{afile}"], command="report")
case("bad files", ["{afile}"], command="synthetic")

# malformed JSON, config.json, index, headers
for name in ("c_k1e999", "c_knan", "c_kinf", "c_kstr", "c_kbool", "c_kneg", "c_kfloat",
             "c_khuge", "c_klist", "c_kM", "c_mtlist", "c_mtdict", "c_mtint", "c_archint",
             "c_archlist", "c_expstr", "c_expnan", "c_hidinf", "c_hidfloat", "c_ngroup", "c_deep",
             "c_deep40", "c_list", "c_broken", "c_empty", "c_binary", "d_ngroupnan", "d_score5",
             "d_scorerelu", "d_layersx", "d_topk99", "d_ngroup3",
             "i_int", "i_null", "i_list", "i_empty", "i_broken", "i_deep", "i_nan",
             "i_notobject", "hd_inf", "hd_nan", "hd_1e999", "hd_wrap", "hd_neg", "hd_str",
             "hd_float", "hd_bool", "hd_dims", "hd_revoff", "hd_outside", "hd_i8", "hd_unknown",
             "hd_deep", "hd_notobject", "hd_broken"):
    case("malformed", AUDIT + ["{%s}" % name])
for name in ("st_nanshape", "st_infshape", "st_1e999", "st_wrap", "st_negshape", "st_strshape",
             "st_floatshape", "st_nestshape", "st_revoffsets", "st_outside", "st_nooffsets",
             "st_notobject", "st_entry5", "st_notjson", "st_deep", "st_deepmeta"):
    case("malformed", VOLUME + ["--router", "{%s}" % name, "--k", "1"])
for name in ("g_deep", "g_nan", "g_inf", "g_list", "g_nested", "g_dict", "g_unknown"):
    case("malformed", ["study", "volume_ratios", "--grid", "{%s}" % name])
for name in ("v_deep", "v_nan", "v_claimsnotlist", "v_rownotdict", "v_seriesnotdict"):
    case("malformed", ["figures", "--validation", "{vd_%s}" % name])
    case("malformed", ["--merge", "{%s}" % name, "--out", "{out}"], command="report")
case("malformed", ["--merge", "{v_ok}", "{v_seed2}", "--out", "{out}"], command="report")
case("malformed", ["--merge", "{v_dup}", "{v_dup}", "--out", "{out}"], command="report")
case("malformed", ["--merge", "{v_ok}", "--reference", "{v_broken}", "--out", "{out}"],
     command="report")
case("malformed", ["figures", "--results", "{res_deep}", "--validation", "{out}"])
case("malformed", ["study", "audit", "--set", "path={c_knan}", "--set", "n_samples=200",
                   "--quiet", "--out", "{out}"])
case("malformed", ["study", "audit", "--set", "path={hd_wrap}", "--set", "n_samples=200",
                   "--quiet", "--out", "{out}"])

# unsafe names: paths that leave a folder, names that act on the terminal
for name in ("i_dotdot", "i_abs", "i_newline", "i_escape", "i_subdir"):
    case("unsafe names", AUDIT + ["{%s}" % name], "unsafe")
case("unsafe names", ["figures", "--validation", "{vd_v_evilfigure}"])
case("unsafe names", ["--merge", "{v_evilfigure}", "--out", "{out}"], command="report")
case("unsafe names", ["figures", "--results", "{res_unknown}", "--validation", "{out}"])
case("unsafe names", ["study", "../../evil", "--out", "{out}"])
case("unsafe names", ["validate", "--quick", "--claims", "../../evil", "--out", "{out}"])
case("unsafe names", AUDIT + ["{ck}", "--family", "../../evil"])
case("unsafe names", AUDIT + ["{ck1}", "--key-pattern",
                              r"(?P<layer>model)\.layers\.\d+\.block_sparse_moe\.gate\.weight",
                              "--k", "2"], "layer")
case("unsafe names", AUDIT + ["{r_longlayer}", "--key-pattern",
                              r"model\.layers\.(?P<layer>\d+)\.block_sparse_moe\.gate\.weight",
                              "--k", "2", "--no-fold-norm"], "layer")
case("unsafe names", AUDIT + ["{ck1}", "--key-pattern", "(", "--k", "2"])
case("unsafe names", AUDIT + ["{ck1}", "--key-pattern", "nothing.{i}.matches", "--k", "2"])

# huge sizes: refused before memory is spent (the peak of what is accepted: test_memory_caps)
for cmd in (VOLUME, SMOOTH, HIT):
    for M, D in ((2, 10 ** 9), (100_000, 100_001), (2, 40_000_000)):
        case("huge sizes", cmd + ["--M", str(M), "--D", str(D), "--k", "1"], "memory")
    case("huge sizes", cmd + ["--router", "{w_huge}", "--k", "1"], "memory")
    case("huge sizes", cmd + ["--router", "{w_bomb}", "--k", "1"], "memory")
    case("huge sizes", cmd + ["--router", "{st_wide}", "--k", "1"], "memory")
case("huge sizes", SMOOTH + ["--M", "2", "--D", "100000", "--k", "1", "--out-dim", "100000"],
     "memory")
case("huge sizes", SMOOTH + ["--M", "2", "--D", "100000", "--k", "1", "--n-points", "100000"],
     "memory")
case("huge sizes", SMOOTH + OK_ROUTER + ["--out-dim", "1000000000"], "memory")
case("huge sizes", SMOOTH + OK_ROUTER + ["--n-points", "100000", "--out-dim", "100000"], "memory")
case("huge sizes", HIT + OK_ROUTER + ["--x0", "{w_huge}"], "memory")
case("huge sizes", AUDIT + ["{r_wide}"], "memory")
case("huge sizes", AUDIT + ["{ck}", "--inputs", "{h_bomb}"], "memory")
case("huge sizes", AUDIT + ["{ck}", "--n-samples", "1000000000"])
case("huge sizes", STUDY + ["--set", "M=2", "--set", "k=1", "--set", "D=1000000000", "--out",
                            "{out}"], "memory")
case("huge sizes", ["study", "volume_ratios", "--grid", "{g_huge}", "--quiet", "--out", "{out}"],
     "memory")
case("huge sizes", ["{out}", "--dim", "100000000"], "memory", command="synthetic")
case("huge sizes", ["{out}", "--layers", "100000", "--dim", "4096"], "memory", command="synthetic")
case("huge sizes", ["{out}", "--experts", "100000", "--dim", "100001"], "memory",
     command="synthetic")


def _no_work(monkeypatch):
    """Every chunk of Monte Carlo work fails the case: bad input is refused before any."""
    import discosim.audit.estimators
    import discosim.diffusion.estimators
    import discosim.smoothing.estimators
    import discosim.volumes.constants
    import discosim.volumes.estimators

    def refuse(*a, **k):
        raise AssertionError("computation started before the input was checked")

    for mod in (discosim.volumes.estimators, discosim.diffusion.estimators,
                discosim.smoothing.estimators, discosim.volumes.constants,
                discosim.audit.estimators):
        monkeypatch.setattr(mod, "run_chunks", refuse)


def _id(c):
    cls, command, argv, _ = c
    words = [a.strip("{}")[:24] for a in argv if not a.startswith("--n-samples")]
    return f"{cls.replace(' ', '_')}-{command}-" + "_".join(words[:1] + words[-3:])


@pytest.mark.parametrize("cls,command,argv,word", CASES, ids=[_id(c) for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing_outside_out(cls, command, argv, word,
                                                                     env, capsys, monkeypatch):
    root, base, paths = env
    out = paths["out"]
    argv = [re.sub(r"\{(\w+)\}", lambda m: paths.get(m.group(1), m.group(0)), a) for a in argv]
    monkeypatch.chdir(base / "work")
    if argv[0] != "study":  # a study checks its grid first, then each point as it runs
        _no_work(monkeypatch)
    before = _snapshot(root)
    try:
        try:
            code = ENTRY[command](argv)
        except SystemExit as exc:  # argparse
            code = exc.code
        except BaseException as exc:  # noqa: BLE001 - anything that escapes is the failure
            pytest.fail(f"{type(exc).__name__} escaped the command: {exc}"[:500])
        err = capsys.readouterr().err
        assert code == 2, err
        assert "Traceback" not in err, err
        assert err.endswith("\n") and err.count("\n") == 1, err
        assert "error" in err.lower(), err
        if word is not None:
            assert word in err, err
        after = _snapshot(root)
        changed = sorted(p for p in set(after) | set(before)
                         if after.get(p) != before.get(p)
                         and not (p == out or p.startswith(out + os.sep)))
        assert not changed, changed
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_the_battery_covers_every_command_and_class():
    commands = {(c[1], c[2][0]) for c in CASES}
    for sub in ("volume", "smooth", "hit", "study", "figures", "validate", "audit"):
        assert ("discosim", sub) in commands
    assert {c[1] for c in CASES} == {"discosim", "report", "synthetic"}
    assert {c[0] for c in CASES} == {"bad numbers", "bad shapes", "bad files", "malformed",
                                     "unsafe names", "huge sizes"}
    assert len(CASES) >= 250
