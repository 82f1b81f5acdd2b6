"""Loss and gradients against PyTorch autograd on the same weights."""

import numpy as np
import pytest

import chainrule as cr
from conftest import require

TORCH_ACTIVATIONS = {
    "identity": lambda t: t,
    "sigmoid": lambda t: t.sigmoid(),
    "tanh": lambda t: t.tanh(),
    "relu": lambda t: t.relu(),
    "leaky_relu": lambda t: __import__("torch").nn.functional.leaky_relu(t, 0.01),
}


def torch_loss_and_gradients(net, X, y):
    torch = require("torch")
    dtype = torch.float64 if net.dtype == np.float64 else torch.float32
    weights = [torch.tensor(w.copy(), dtype=dtype, requires_grad=True) for w in net.weights]
    biases = [torch.tensor(b.copy(), dtype=dtype, requires_grad=True) for b in net.biases]
    h = torch.tensor(np.asarray(X), dtype=dtype)
    for k in range(net.n_layers):
        a = h @ weights[k].T + biases[k]
        h = TORCH_ACTIVATIONS[net.activation_names[k]](a) if k < net.n_layers - 1 else a
    labels = torch.tensor(y)
    if net.loss_name == "cross_entropy":
        loss = torch.nn.functional.cross_entropy(h, labels)
    else:
        probabilities = torch.softmax(h, dim=1)
        one_hot = torch.nn.functional.one_hot(labels, net.n_classes).to(dtype)
        loss = 0.5 * ((probabilities - one_hot) ** 2).sum(dim=1).mean()
    loss = loss + 0.5 * net.weight_decay * sum((w ** 2).sum() for w in weights)
    loss.backward()
    grads = [t.grad.numpy() for pair in zip(weights, biases) for t in pair]
    return loss.item(), grads


def relative_error(ours, theirs):
    scale = max(np.abs(ours).max(), np.abs(theirs).max(), 1e-12)
    return float(np.abs(ours - theirs).max() / scale)


@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-10), ("float32", 1e-4)])
@pytest.mark.parametrize("loss", cr.losses.names())
@pytest.mark.parametrize("activation", cr.activations.names())
def test_gradients_match_pytorch(activation, loss, dtype, tolerance):
    rng = np.random.default_rng(11)
    net = cr.Network([6, 8, 7, 4], activation=activation, loss=loss,
                     weight_decay=0.01, seed=3, dtype=dtype)
    net.parameters[:] += (0.1 * rng.standard_normal(net.n_parameters)).astype(dtype)
    X = rng.standard_normal((16, 6)).astype(dtype)
    y = rng.integers(0, 4, size=16)

    loss_ours, grads = net.loss_and_gradients(X, y)
    loss_torch, grads_torch = torch_loss_and_gradients(net, X, y)

    assert abs(loss_ours - loss_torch) <= tolerance * max(1.0, abs(loss_torch))
    ours = [g for pair in zip(grads.weights, grads.biases) for g in pair]
    for name, mine, theirs in zip(net.parameter_names(), ours, grads_torch):
        assert relative_error(mine, theirs) < tolerance, name


def test_deep_network_matches_pytorch():
    rng = np.random.default_rng(5)
    net = cr.Network([10, 9, 8, 7, 6, 5], activation=["relu", "tanh", "sigmoid", "leaky_relu"],
                     seed=1, dtype="float64")
    X = rng.standard_normal((32, 10))
    y = rng.integers(0, 5, size=32)
    loss_ours, grads = net.loss_and_gradients(X, y)
    loss_torch, grads_torch = torch_loss_and_gradients(net, X, y)
    assert loss_ours == pytest.approx(loss_torch, abs=1e-12)
    ours = [g for pair in zip(grads.weights, grads.biases) for g in pair]
    for mine, theirs in zip(ours, grads_torch):
        assert relative_error(mine, theirs) < 1e-10
