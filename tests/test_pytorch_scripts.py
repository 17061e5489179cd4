"""PyTorch scripts as they stand upstream, with only the imports changed, run on minigrad and on
torch: the official tutorials' polynomial fits (with autograd, with nn and a manual update,
with optim), pytorch/examples' MNIST network and a VGG-style network with ReLU(inplace=True).
Each script is written once, as a function of the library; both runs start from the same
weights and must print the same losses step for step (float64), and the loss must fall."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
from helpers import requires_torch, torch

import minigrad


def _libraries():
    """(torch-like namespace, name) for minigrad and torch: `import minigrad as torch`, ..."""
    import minigrad.nn
    import minigrad.nn.functional
    import minigrad.optim

    ours = types.SimpleNamespace(torch=minigrad, nn=minigrad.nn, F=minigrad.nn.functional,
                                 optim=minigrad.optim)
    real = torch()
    theirs = types.SimpleNamespace(torch=real, nn=real.nn, F=real.nn.functional,
                                   optim=real.optim)
    return ours, theirs


def _same_weights(ours_model, theirs_model):
    ours_model.load_state_dict({k: v.detach().numpy() for k, v in
                                theirs_model.state_dict().items()})


# ---------------------------------------------------------------------------------------------
# the tutorials: "Learning PyTorch with Examples", polynomial fits of sin(x)


def polynomial_with_autograd(L, steps=200):
    torch = L.torch
    dtype = torch.float64
    x = torch.linspace(-math.pi, math.pi, 2000, dtype=dtype)
    y = torch.sin(x)
    a = torch.tensor(0.1, dtype=dtype, requires_grad=True)
    b = torch.tensor(-0.2, dtype=dtype, requires_grad=True)
    c = torch.tensor(0.3, dtype=dtype, requires_grad=True)
    d = torch.tensor(0.05, dtype=dtype, requires_grad=True)
    learning_rate = 1e-6
    losses = []
    for _ in range(steps):
        y_pred = a + b * x + c * x ** 2 + d * x ** 3
        loss = (y_pred - y).pow(2).sum()
        losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            a -= learning_rate * a.grad
            b -= learning_rate * b.grad
            c -= learning_rate * c.grad
            d -= learning_rate * d.grad
            a.grad = None
            b.grad = None
            c.grad = None
            d.grad = None
    return losses


def polynomial_with_nn(L, steps=200, optimizer_name=None, model=None):
    torch, nn = L.torch, L.nn
    x = torch.linspace(-math.pi, math.pi, 2000, dtype=torch.float64)
    y = torch.sin(x)
    p = torch.tensor([1, 2, 3])
    xx = x.unsqueeze(-1).pow(p)
    model = model or nn.Sequential(nn.Linear(3, 1), nn.Flatten(0, 1)).double()
    loss_fn = nn.MSELoss(reduction="sum")
    learning_rate = 1e-3 if optimizer_name in ("RMSprop", "Adam") else 1e-6
    optimizer = None if optimizer_name is None else getattr(L.optim, optimizer_name)(
        model.parameters(), lr=learning_rate)
    losses = []
    for _ in range(steps):
        y_pred = model(xx)
        loss = loss_fn(y_pred, y)
        losses.append(loss.item())
        if optimizer is None:
            model.zero_grad()
            loss.backward()
            with torch.no_grad():
                for param in model.parameters():
                    param -= learning_rate * param.grad
        else:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return losses


@requires_torch
def test_the_tutorial_polynomial_with_autograd_runs_unchanged():
    ours, theirs = (polynomial_with_autograd(L) for L in _libraries())
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)  # torch sums in threads
    assert ours[-1] < 0.2 * ours[0]


@requires_torch
@pytest.mark.parametrize("optimizer_name", [None, "RMSprop", "Adam", "SGD"])
def test_the_tutorial_polynomial_with_nn_runs_unchanged(optimizer_name):
    ours_lib, theirs_lib = _libraries()
    models = [L.nn.Sequential(L.nn.Linear(3, 1), L.nn.Flatten(0, 1)).double()
              for L in (ours_lib, theirs_lib)]
    _same_weights(*models)
    ours, theirs = (polynomial_with_nn(L, optimizer_name=optimizer_name, model=m)
                    for L, m in zip((ours_lib, theirs_lib), models))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)  # torch sums in threads
    assert ours[-1] < 0.5 * ours[0]


# ---------------------------------------------------------------------------------------------
# pytorch/examples: mnist/main.py's network, its train step and its schedule


def mnist_net(L, dropout: bool):
    nn, F, torch = L.nn, L.F, L.torch

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.dropout1 = nn.Dropout(0.25 if dropout else 0.0)
            self.dropout2 = nn.Dropout(0.5 if dropout else 0.0)
            self.fc1 = nn.Linear(9216, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = self.conv1(x)
            x = F.relu(x)
            x = self.conv2(x)
            x = F.relu(x)
            x = F.max_pool2d(x, 2)
            x = self.dropout1(x)
            x = torch.flatten(x, 1)
            x = self.fc1(x)
            x = F.relu(x)
            x = self.dropout2(x)
            x = self.fc2(x)
            output = F.log_softmax(x, dim=1)
            return output

    return Net()


def mnist_train(L, model, batches, epochs=2):
    """main.py's train() and its Adadelta + StepLR schedule, on the given batches."""
    F, optim = L.F, L.optim
    optimizer = optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    losses = []
    for _ in range(epochs):
        model.train()
        for data, target in batches:
            optimizer.zero_grad()
            output = model(data)
            loss = F.nll_loss(output, target)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()
    return losses


def _fashion_batches(L, count=3, size=16):
    """A small slice of Fashion-MNIST where the machine has it, else learnable noise,
    normalised as main.py does (mean 0.1307, std 0.3081)."""
    try:
        dataset = minigrad.data.FashionMNIST(train=True)
        images = np.stack([np.asarray(dataset[i][0]) for i in range(count * size)])
        labels = np.array([dataset[i][1] for i in range(count * size)])
    except (FileNotFoundError, RuntimeError, OSError):
        rng = np.random.default_rng(0)
        labels = rng.integers(0, 10, count * size)
        images = (rng.random((10, 28, 28)) * 255)[labels]
    images = ((images / 255.0 - 0.1307) / 0.3081)[:, None].astype(np.float64)
    return [(L.torch.tensor(images[k * size:(k + 1) * size]),
             L.torch.tensor(labels[k * size:(k + 1) * size]))
            for k in range(count)]


@requires_torch
def test_pytorch_examples_mnist_trains_step_for_step_as_pytorch():
    libraries = _libraries()
    models = [mnist_net(L, dropout=False).double() for L in libraries]
    _same_weights(*models)
    ours, theirs = (mnist_train(L, m, _fashion_batches(L)) for L, m in zip(libraries, models))
    np.testing.assert_allclose(ours, theirs, rtol=1e-7)
    assert np.mean(ours[-3:]) < np.mean(ours[:3])


@requires_torch
def test_pytorch_examples_mnist_with_its_dropout_runs_and_learns():
    ours_lib = _libraries()[0]
    minigrad.manual_seed(0)
    model = mnist_net(ours_lib, dropout=True).double()
    losses = mnist_train(ours_lib, model, _fashion_batches(ours_lib), epochs=3)
    assert all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


# ---------------------------------------------------------------------------------------------
# a student's VGG16: torchvision's layout (with BatchNorm), ReLU(inplace=True), widths / 16


VGG16_AT_ONE_SIXTEENTH = (4, 4, "M", 8, 8, "M", 16, 16, 16, "M", 32, 32, 32, "M",
                          32, 32, 32, "M")  # configuration D, every width / 16


def student_vgg(L, widths=VGG16_AT_ONE_SIXTEENTH, classes=5):
    nn, torch = L.nn, L.torch

    class VGG(nn.Module):
        def __init__(self):
            super().__init__()
            layers, in_channels = [], 3
            for v in widths:
                if v == "M":
                    layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
                else:
                    layers += [nn.Conv2d(in_channels, v, kernel_size=3, padding=1),
                               nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                    in_channels = v
            self.features = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
            self.classifier = nn.Sequential(
                nn.Linear(in_channels * 4, 32), nn.ReLU(True), nn.Dropout(p=0.0),
                nn.Linear(32, classes))
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0, 0.01)
                    nn.init.constant_(m.bias, 0)

        def forward(self, x):
            x = self.features(x)
            x = self.avgpool(x)
            x = torch.flatten(x, 1)
            x = self.classifier(x)
            return x

    return VGG()


@requires_torch
def test_a_vgg_with_inplace_relu_trains_step_for_step_as_pytorch():
    libraries = _libraries()
    models = [student_vgg(L).double() for L in libraries]
    _same_weights(*models)
    rng = np.random.default_rng(0)
    images, labels = rng.standard_normal((6, 3, 32, 32)), rng.integers(0, 5, 6)
    results = []
    for L, model in zip(libraries, models):
        criterion = L.nn.CrossEntropyLoss()
        optimizer = L.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        x, y = L.torch.tensor(images), L.torch.tensor(labels)
        losses = []
        for _ in range(8):
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        results.append(losses)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-8)
    assert results[0][-1] < results[0][0]


# ---------------------------------------------------------------------------------------------
# the earlier tutorial's two-layer networks. Kept last: run before the scripts above, they
# made torch's later losses drift from minigrad's (1e-9 at first, growing over the steps);
# the cause inside torch was not found, so the comparisons above allow 1e-6


def two_layer_net_with_autograd(L, steps=80):
    """The earlier tutorial's two-layer network, its weights as leaf tensors, ReLU as
    clamp(min=0), updated by hand."""
    torch = L.torch
    rng = np.random.default_rng(0)
    batch, d_in, hidden, d_out = 64, 100, 50, 10
    x = torch.tensor(rng.standard_normal((batch, d_in)))
    y = torch.tensor(rng.standard_normal((batch, d_out)))
    w1 = torch.tensor(rng.standard_normal((d_in, hidden)) * 0.1, requires_grad=True)
    w2 = torch.tensor(rng.standard_normal((hidden, d_out)) * 0.1, requires_grad=True)
    learning_rate = 1e-4
    losses = []
    for _ in range(steps):
        y_pred = x.mm(w1).clamp(min=0).mm(w2)
        loss = (y_pred - y).pow(2).sum()
        losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            w1 -= learning_rate * w1.grad
            w2 -= learning_rate * w2.grad
            w1.grad.zero_()
            w2.grad.zero_()
    return losses


def two_layer_net_with_nn(L, model, steps=80):
    torch, nn = L.torch, L.nn
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.standard_normal((64, 100)))
    y = torch.tensor(rng.standard_normal((64, 10)))
    loss_fn = nn.MSELoss(reduction="sum")
    learning_rate = 1e-4
    losses = []
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        losses.append(loss.item())
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for param in model.parameters():
                param -= learning_rate * param.grad
    return losses


@requires_torch
def test_the_tutorial_two_layer_networks_run_unchanged():
    libraries = _libraries()
    ours, theirs = (two_layer_net_with_autograd(L) for L in libraries)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)  # torch sums in threads
    assert ours[-1] < 0.75 * ours[0]
    models = [L.nn.Sequential(L.nn.Linear(100, 50), L.nn.ReLU(), L.nn.Linear(50, 10)).double()
              for L in libraries]
    _same_weights(*models)
    ours, theirs = (two_layer_net_with_nn(L, m) for L, m in zip(libraries, models))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)  # torch sums in threads
    assert ours[-1] < 0.75 * ours[0]


# ---------------------------------------------------------------------------------------------
# the "Learn the Basics" series (tensors, datasets, build model, autograd, optimization,
# save/load), its code as it stands, on a synthetic stand-in for FashionMNIST


def learn_the_basics(L, tmp_path, images, labels, weights):
    torch, nn = L.torch, L.nn
    from_torch = getattr(torch.utils, "data", None)
    DataLoader, TensorDataset = from_torch.DataLoader, from_torch.TensorDataset  # noqa: N806
    out = {}
    # tensors
    data = [[1, 2], [3, 4]]
    x_data = torch.tensor(data)
    x_ones = torch.ones_like(x_data)
    x_rand = torch.rand_like(x_data, dtype=torch.float)
    tensor = torch.ones(4, 4)
    tensor[:, 1] = 0
    t1 = torch.cat([tensor, tensor, tensor], dim=1)
    y1 = tensor @ tensor.T
    agg = tensor.sum()
    tensor.add_(5)
    out["tensors"] = [x_ones.tolist(), list(x_rand.shape), list(t1.shape), y1.tolist(),
                      agg.item(), tensor.tolist(), str(tensor.dtype).split(".")[-1]]
    device = (torch.accelerator.current_accelerator().type
              if torch.accelerator.is_available() else "cpu")
    device = "cpu" if device != "cpu" else device  # (both runs on the CPU, to compare)

    # datasets and dataloaders
    training_data = TensorDataset(torch.tensor(images), torch.tensor(labels))
    train_dataloader = DataLoader(training_data, batch_size=16)
    train_features, train_labels = next(iter(train_dataloader))
    out["batch"] = [list(train_features.size()), list(train_labels.size())]

    # build the model
    class NeuralNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.flatten = nn.Flatten()
            self.linear_relu_stack = nn.Sequential(
                nn.Linear(28 * 28, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                nn.Linear(32, 10))

        def forward(self, x):
            x = self.flatten(x)
            return self.linear_relu_stack(x)

    model = NeuralNetwork().to(device)
    model.load_state_dict({k: torch.tensor(v) for k, v in weights.items()})
    logits = model(torch.tensor(images[:1]))
    pred_probab = nn.Softmax(dim=1)(logits)
    out["predicted"] = pred_probab.argmax(1).tolist()

    # autograd
    x = torch.ones(5)
    y = torch.zeros(3)
    w = torch.tensor(np.linspace(-1, 1, 15).reshape(5, 3).astype(np.float32),
                     requires_grad=True)
    b = torch.tensor([0.1, 0.2, 0.3], requires_grad=True)
    z = torch.matmul(x, w) + b
    loss = L.F.binary_cross_entropy_with_logits(z, y)
    loss.backward()
    out["autograd"] = [w.grad.numpy().tolist(), b.grad.numpy().tolist()]
    with torch.no_grad():
        z = torch.matmul(x, w) + b
    out["no_grad"] = [z.requires_grad, z.detach().requires_grad]

    # optimization
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-1)
    losses = []

    def train_loop(dataloader, model, loss_fn, optimizer):
        model.train()
        for _batch, (X, y) in enumerate(dataloader):
            pred = model(X)
            loss = loss_fn(pred, y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())

    def test_loop(dataloader, model, loss_fn):
        model.eval()
        test_loss, correct = 0, 0
        with torch.no_grad():
            for X, y in dataloader:
                pred = model(X)
                test_loss += loss_fn(pred, y).item()
                correct += (pred.argmax(1) == y).type(torch.float).sum().item()
        return test_loss / len(dataloader), correct / len(dataloader.dataset)

    for _ in range(3):
        train_loop(train_dataloader, model, loss_fn, optimizer)
    out["losses"] = losses
    out["test"] = list(test_loop(train_dataloader, model, loss_fn))

    # save and load
    path = str(tmp_path / f"model_weights_{torch.__name__}.pth")
    torch.save(model.state_dict(), path)
    model2 = NeuralNetwork()
    model2.load_state_dict(torch.load(path, weights_only=True) if torch.__name__ == "torch"
                           else torch.load(path))
    model2.eval()
    out["reloaded"] = model2(torch.tensor(images[:2])).detach().numpy().tolist()
    return out, model


@requires_torch
def test_the_learn_the_basics_tutorials_run_step_for_step_as_pytorch(tmp_path):
    ours_lib, theirs_lib = _libraries()
    for L, real in ((ours_lib, minigrad), (theirs_lib, torch())):
        L.torch = real
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 64)
    images = (rng.random((64, 1, 28, 28)) * 0.3 + labels[:, None, None, None] / 10).astype(
        np.float32)  # (each class a brightness: learnable)
    start = {}  # the same initial weights for both (Linear's shapes, PyTorch's layout)
    for k, (fan_out, fan_in) in enumerate([(32, 784), (32, 32), (10, 32)]):
        bound = 1 / math.sqrt(fan_in)
        start[f"linear_relu_stack.{2 * k}.weight"] = rng.uniform(
            -bound, bound, (fan_out, fan_in)).astype(np.float32)
        start[f"linear_relu_stack.{2 * k}.bias"] = rng.uniform(-bound, bound, fan_out).astype(
            np.float32)
    theirs, _ = learn_the_basics(theirs_lib, tmp_path, images, labels, start)
    ours, _ = learn_the_basics(ours_lib, tmp_path, images, labels, start)
    for key in ("tensors", "batch", "predicted", "no_grad"):
        assert ours[key] == theirs[key], key
    np.testing.assert_allclose(ours["autograd"][0], theirs["autograd"][0], rtol=1e-6)
    np.testing.assert_allclose(ours["losses"], theirs["losses"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours["test"], theirs["test"], rtol=1e-4)
    np.testing.assert_allclose(ours["reloaded"], theirs["reloaded"], rtol=1e-4, atol=1e-5)
    assert ours["losses"][-1] < ours["losses"][0]
