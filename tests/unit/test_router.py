import numpy as np
import pytest

from discosim import InputError, Router
from discosim.model.weights import load_weights

_RNG = np.random.default_rng(20260623)  # seeded: a failure can be replayed


def test_reduced_scores_equal_full_scores():
    router = Router.gaussian(6, 20, 2, seed=1)
    x = np.random.default_rng(0).standard_normal((5, 20))
    z = router.to_reduced(x)
    np.testing.assert_allclose(z @ router.reduced_weights.T + router.bias, router.scores(x), atol=1e-12)
    np.testing.assert_allclose(router.gram, router.weights @ router.weights.T, atol=1e-12)
    assert np.allclose(np.triu(router.reduced_weights, 1), 0)


def test_orthonormal_rows():
    router = Router.orthonormal(5, 12, 2, seed=3)
    np.testing.assert_allclose(router.weights @ router.weights.T, np.eye(5), atol=1e-12)


def test_cosine_router_uses_normalised_rows():
    W = np.random.default_rng(0).standard_normal((4, 9)) * np.array([[1], [2], [3], [4]])
    r = Router(W, 2, kind="cosine")
    np.testing.assert_allclose(np.linalg.norm(r.tie_weights, axis=1), 1)
    x = np.random.default_rng(1).standard_normal(9)
    np.testing.assert_allclose(r.scores(x), (W @ x) / np.linalg.norm(W, axis=1) / np.linalg.norm(x))


@pytest.mark.parametrize("make,word", [
    (lambda: Router(np.ones((3, 5)), 1), "rank-deficient"),
    (lambda: Router(np.eye(5)[:4] * np.nan, 1), "non-finite"),
    (lambda: Router(_RNG.standard_normal((5, 5)), 2), "M < D"),
    (lambda: Router(_RNG.standard_normal((3, 5)), 3), "k must be <= 2"),
    (lambda: Router(_RNG.standard_normal((3, 5)), 0), "k must be >= 1"),
    (lambda: Router(_RNG.standard_normal((3, 5)), 1, bias=np.zeros(4)), "bias must have shape"),
    (lambda: Router(_RNG.standard_normal((3, 5)), 1, kind="softmax"), "router kind"),
    (lambda: Router(_RNG.standard_normal(15), 1), "2-dimensional"),
    (lambda: Router.gaussian(9, 8, 2), "M < D"),
])
def test_bad_router_input_is_one_line(make, word):
    with pytest.raises(InputError) as err:
        make()
    assert word in str(err.value) and "\n" not in str(err.value)


def test_weights_from_npy_npz_safetensors(tmp_path):
    W = np.random.default_rng(0).standard_normal((4, 10))
    np.save(tmp_path / "w.npy", W)
    np.savez(tmp_path / "w.npz", gate=W, other=np.zeros(2))
    from safetensors.numpy import save_file
    save_file({"layer.gate.weight": W.astype(np.float16)}, str(tmp_path / "w.safetensors"))
    np.testing.assert_array_equal(load_weights(tmp_path / "w.npy"), W)
    np.testing.assert_array_equal(load_weights(tmp_path / "w.npz", "gate"), W)
    np.testing.assert_allclose(load_weights(tmp_path / "w.safetensors"), W, rtol=1e-3, atol=1e-3)
    r = Router.from_file(tmp_path / "w.npz", 2, key="gate")
    assert (r.n_experts, r.dim) == (4, 10)
    with pytest.raises(InputError, match="name one"):
        load_weights(tmp_path / "w.npz")
    with pytest.raises(InputError, match="not in"):
        load_weights(tmp_path / "w.npz", "nope")


def test_pickled_npy_is_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="cannot read"):
        load_weights(tmp_path / "obj.npy")


def test_bf16_safetensors(tmp_path):
    import json, struct
    W = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    bits = (W.view(np.uint32) >> 16).astype("<u2")
    header = json.dumps({"g": {"dtype": "BF16", "shape": [3, 8], "data_offsets": [0, bits.nbytes]}}).encode()
    with open(tmp_path / "b.safetensors", "wb") as fh:
        fh.write(struct.pack("<Q", len(header)) + header + bits.tobytes())
    np.testing.assert_allclose(load_weights(tmp_path / "b.safetensors", "g"), W, rtol=1e-2)
