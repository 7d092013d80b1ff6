import sys

import numpy as np
import pytest

import dctnet
from dctnet import Tensor, gradcheck, no_grad, ops


def t64(rng, *shape):
    return Tensor(rng.normal(size=shape), requires_grad=True)


def test_docstring_example():
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0, 6.0])


@pytest.mark.parametrize(
    "f",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a * b,
        lambda a, b: a / (b * b + 1.0),
        lambda a, b: -a + 2.0 * b - 1.0 / (1.0 + b * b),
        lambda a, b: (a**3) * b,
    ],
)
def test_arithmetic_with_broadcasting(rng, f):
    a = t64(rng, 3, 1, 4)
    b = t64(rng, 5, 1)
    assert gradcheck(f, [a, b])


def test_matmul_and_batched_matmul(rng):
    assert gradcheck(ops.matmul, [t64(rng, 3, 4), t64(rng, 4, 2)])
    assert gradcheck(ops.matmul, [t64(rng, 2, 3, 4), t64(rng, 4, 5)])


def test_reductions(rng):
    a = t64(rng, 2, 3, 4)
    assert gradcheck(lambda x: x.sum(), [a])
    assert gradcheck(lambda x: x.sum(axis=1), [a])
    assert gradcheck(lambda x: x.sum(axis=(0, 2), keepdims=True), [a])
    assert gradcheck(lambda x: x.mean(axis=-1), [a])
    np.testing.assert_allclose(ops.mean(a, axis=(0, 2)).data, a.data.mean(axis=(0, 2)))


def test_exp_log(rng):
    a = Tensor(rng.uniform(0.5, 2.0, size=(3, 4)), requires_grad=True)
    assert gradcheck(lambda x: x.exp().log() * x.log(), [a])


def test_shapes_and_indexing(rng):
    a = t64(rng, 2, 3, 4)
    assert gradcheck(lambda x: x.reshape(6, 4), [a])
    assert gradcheck(lambda x: x.reshape((4, 6)).T, [a])
    assert gradcheck(lambda x: x.transpose(2, 0, 1), [a])
    assert gradcheck(lambda x: x[1, :, ::2], [a])
    idx = np.array([0, 2, 2, 1])  # repeated index: gradients must accumulate
    assert gradcheck(lambda x: x[:, idx], [a])
    b = t64(rng, 2, 5, 4)
    assert gradcheck(lambda x, y: ops.concatenate([x, y], axis=1), [a, b])


def test_reused_tensor_accumulates():
    a = Tensor(np.array([1.5, -2.0]), requires_grad=True)
    b = a + a
    c = b + b
    c.sum().backward()
    np.testing.assert_array_equal(a.grad, [4.0, 4.0])
    d = a * a * a  # a reused three times in one expression
    a.grad = None
    d.sum().backward()
    np.testing.assert_allclose(a.grad, 3 * a.data**2)


def test_grad_accumulates_across_backward_calls():
    a = Tensor(np.ones(3), requires_grad=True)
    (a * 2.0).sum().backward()
    (a * 3.0).sum().backward()
    np.testing.assert_array_equal(a.grad, [5.0, 5.0, 5.0])


def test_long_chain_does_not_recurse():
    a = Tensor(np.array([0.5]), requires_grad=True)
    x = a
    for _ in range(10_000):
        x = x * 1.0001 + 0.0
    limit = sys.getrecursionlimit()
    assert limit < 10_000 * 2
    x.sum().backward()
    np.testing.assert_allclose(a.grad, [1.0001**10_000], rtol=1e-10)


def test_no_grad_records_nothing():
    a = Tensor(np.ones(2), requires_grad=True)
    with no_grad():
        b = a * 2.0
    assert not b.requires_grad and b.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        b.sum().backward()
    assert dctnet.is_grad_enabled()


def test_backward_needs_scalar_or_grad():
    a = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="single-element"):
        (a * 2.0).backward()
    with pytest.raises(ValueError, match="expected"):
        (a * 2.0).backward(np.ones(4))


def test_wrong_gradient_shape_is_caught():
    class Bad(dctnet.Function):
        def forward(ctx, x):
            return x.sum()

        def backward(ctx, g):
            return (g * np.ones(7),)

    a = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Bad.backward returned a gradient of shape \(7,\)"):
        Bad.apply(a).backward()


def test_gradcheck_catches_a_wrong_gradient(rng):
    class WrongSquare(dctnet.Function):
        def forward(ctx, x):
            ctx.x = x
            return x * x

        def backward(ctx, g):
            return (g * ctx.x,)  # missing factor 2

    with pytest.raises(dctnet.GradcheckError, match="input 0"):
        gradcheck(WrongSquare.apply, [t64(rng, 4)])


def test_gradcheck_refuses_float32():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda x: x, [Tensor(np.ones(2, dtype=np.float32), requires_grad=True)])


def test_tensor_basics():
    t = Tensor([1.0, 2.0])
    assert t.dtype == np.float32  # Python floats default to float32, as in PyTorch
    assert Tensor(np.zeros(2)).dtype == np.float64
    with pytest.raises(TypeError, match="floating-point"):
        Tensor(np.arange(3), requires_grad=True)
    assert (np.ones(2) + Tensor(np.ones(2))).__class__ is Tensor  # reflected op wins
    assert Tensor(np.ones((2, 3))).T.shape == (3, 2)


def _imported_modules(module):
    """Every module named by an import statement anywhere in ``module``'s source, function bodies included."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(module))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names |= {base} | {f"{base}.{a.name}" if node.module else base + a.name for a in node.names}
    return names


def test_autograd_does_not_import_ops():
    """The autograd <-> ops circle is broken: ops imports autograd, never the reverse (issue 15)."""
    from dctnet import autograd

    assert not {m for m in _imported_modules(autograd) if "ops" in m.split(".")}, _imported_modules(autograd)
    assert {m for m in _imported_modules(ops) if m.endswith("autograd")}


def test_operators_work_after_importing_only_the_autograd():
    """Importing any part of dctnet loads the package, whose __init__ loads ops and with it Tensor's operators."""
    import subprocess

    code = (
        "import numpy as np\n"
        "from dctnet.autograd import Tensor\n"
        "x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)\n"
        "y = ((x * 2 + 1) @ x.T / 3 - x[0].sum()) ** 2\n"
        "y.mean().backward()\n"
        "assert x.grad.shape == (2, 3) and x.reshape(3, 2).T.shape == (2, 3)\n"
        "assert (np.ones(3) - x[1]).dtype == np.float64 and x.astype(np.float32).dtype == np.float32\n"
        "print(Tensor.__add__.__qualname__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Tensor.__add__"
