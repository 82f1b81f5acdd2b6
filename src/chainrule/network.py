"""A feedforward network whose forward and backward passes follow the course's derivation.

Notation (one example is a column; chainrule stores a batch as rows, see below):

=================  ==========================================  ======================
symbol             meaning                                     where it lives here
=================  ==========================================  ======================
``x = h_0``        input                                       ``X`` ``(batch, n_0)``
``W_k``, ``b_k``   weights and bias of layer ``k = 1..L``      ``weights[k-1]`` ``(n_k, n_{k-1})``, ``biases[k-1]`` ``(n_k,)``
``a_k``            pre-activation ``b_k + W_k h_{k-1}``        ``pre_activations[k-1]``
``h_k``            activation ``g(a_k)``, ``k = 1..L-1``       ``activations[k-1]``
``ŷ``              ``softmax(a_L)``                            ``predict_proba(X)``
``e(y)``           one-hot vector of the true class ``y``      formed inside the loss
=================  ==========================================  ======================

A batch of ``B`` examples is held row by row, so each column formula becomes a matrix
product: ``A_k = H_{k-1} W_kᵀ + b_k``, ``∇W_k = G_kᵀ H_{k-1}``, ``∇b_k = Σ_rows G_k`` and
``∇H_{k-1} = G_k W_k``, where ``G_k = ∇_{A_k} L``. The loss is the batch mean, so the
factor ``1/B`` enters once, at ``G_L``, and flows down from there.

L2 weight decay ``λ`` adds ``λ/2 · Σ_k ‖W_k‖²`` to the mean loss and ``λ W_k`` to each
weight gradient. Biases are never decayed.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

from chainrule import activations as activation_functions
from chainrule import initializers
from chainrule import losses
from chainrule import parallel
from chainrule.backend import xp
from chainrule.validation import check_features, check_labels

_DTYPES = {"float32": xp.float32, "float64": xp.float64}


def _check_dtype(dtype) -> xp.dtype:
    try:
        resolved = xp.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or resolved.name not in _DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return resolved


def _check_rng(seed):
    if isinstance(seed, xp.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(
            f"seed must be a non-negative integer or a numpy.random.Generator, got {seed!r}"
        )
    return xp.random.default_rng(int(seed))


@dataclass
class Gradients:
    """Gradients of the loss, in the same layout as the network's parameters.

    Attributes
    ----------
    weights, biases : list of arrays
        ``∇W_k`` ``(n_k, n_{k-1})`` and ``∇b_k`` ``(n_k,)`` for ``k = 1..L``, the L2 term
        included. They are views into ``flat``.
    flat : array
        All parameter gradients in one 1-D array, ordered ``W_1, b_1, ..., W_L, b_L``
        as ``Network.parameters`` is.
    pre_activations : list of arrays
        ``∇A_k`` ``(batch, n_k)`` for ``k = 1..L``; the last one is the output gradient
        ``G_L = (Ŷ − E) / B`` for cross-entropy.
    activations : list of arrays
        ``∇H_k`` ``(batch, n_k)`` for the hidden layers ``k = 1..L-1``.
    """

    weights: list
    biases: list
    flat: object
    pre_activations: list = field(default_factory=list)
    activations: list = field(default_factory=list)


class Network:
    """A fully connected network with softmax output and hand-written backpropagation.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_0, n_1, ..., n_L]``: input features, hidden units per layer, classes. Two
        entries give softmax regression (no hidden layer). The output needs at least 2 units.
    activation : str or sequence of str
        Hidden activation: one name for every hidden layer, or one per hidden layer.
        See :mod:`chainrule.activations`; names are case-insensitive.
    weight_init : str
        ``random``, ``xavier`` (normal), ``xavier_uniform``, ``he`` or ``zeros``; biases
        start at zero. See :mod:`chainrule.initializers`.
    loss : str
        ``cross_entropy`` or ``mean_squared_error``.
    weight_decay : float
        L2 strength ``λ >= 0``.
    seed : int or numpy.random.Generator
        Source of the initial weights; the only randomness in the network.
    dtype : {"float32", "float64"}
        Precision of parameters and computation.

    Attributes
    ----------
    parameters : array
        Every parameter in one flat, writable 1-D array ``W_1, b_1, ..., W_L, b_L``.
    weights, biases : list of arrays
        Live views into ``parameters``: writing into ``weights[k]`` changes the network.
    """

    def __init__(
        self,
        layer_sizes,
        activation="relu",
        weight_init: str = "xavier",
        loss: str = "cross_entropy",
        weight_decay: float = 0.0,
        seed=0,
        dtype="float32",
    ):
        self.layer_sizes = self._check_layer_sizes(layer_sizes)
        self.activation_names = self._check_activations(activation)
        self.activation_functions = [activation_functions.get(n) for n in self.activation_names]
        self.weight_init = initializers.canonical_name(weight_init)
        self.loss_name = losses.canonical_name(loss)
        self.loss_function = losses.get(self.loss_name)
        self.weight_decay = self._check_weight_decay(weight_decay)
        self.dtype = _check_dtype(dtype)

        self.parameters = xp.zeros(self.n_parameters, dtype=self.dtype)
        self.weights, self.biases = self._layer_views(self.parameters)
        rng = _check_rng(seed)
        for k in range(self.n_layers):
            fan_out, fan_in = self.weights[k].shape
            self.weights[k][...] = initializers.initialize_weights(
                self.weight_init, rng, fan_out, fan_in, self.dtype
            )

    # ------------------------------------------------------------------ construction

    @staticmethod
    def _check_layer_sizes(layer_sizes) -> tuple[int, ...]:
        try:
            sizes = list(layer_sizes)
        except TypeError:
            raise ValueError(
                f"layer_sizes must be a sequence such as [784, 128, 10], got {layer_sizes!r}"
            ) from None
        if len(sizes) < 2:
            raise ValueError(
                f"layer_sizes needs at least an input and an output size, got {sizes!r}"
            )
        for position, size in enumerate(sizes):
            if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
                raise ValueError(
                    f"layer_sizes[{position}] must be an integer >= 1, got {size!r} "
                    f"in {sizes!r}"
                )
        if sizes[-1] < 2:
            raise ValueError(
                f"the output layer needs at least 2 units (one per class) for softmax, "
                f"got {sizes[-1]} in layer_sizes {sizes!r}"
            )
        return tuple(int(size) for size in sizes)

    def _check_activations(self, activation) -> list[str]:
        n_hidden = len(self.layer_sizes) - 2
        if isinstance(activation, (str, activation_functions.Activation)):
            requested = [activation] * n_hidden
        else:
            requested = list(activation)
            if len(requested) != n_hidden:
                raise ValueError(
                    f"got {len(requested)} activations for {n_hidden} hidden layers; pass one "
                    "name for all layers or exactly one per hidden layer"
                )
        return [
            a.name if isinstance(a, activation_functions.Activation)
            else activation_functions.canonical_name(a)
            for a in requested
        ]

    @staticmethod
    def _check_weight_decay(weight_decay) -> float:
        if isinstance(weight_decay, bool) or not isinstance(weight_decay, numbers.Real):
            raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay!r}")
        value = float(weight_decay)
        if not (value >= 0.0 and value < float("inf")):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
        return value

    def _layer_views(self, flat) -> tuple[list, list]:
        """Split a flat array laid out like ``parameters`` into weight and bias views."""
        weights, biases = [], []
        offset = 0
        for fan_in, fan_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:]):
            weights.append(flat[offset:offset + fan_out * fan_in].reshape(fan_out, fan_in))
            offset += fan_out * fan_in
            biases.append(flat[offset:offset + fan_out])
            offset += fan_out
        return weights, biases

    @property
    def n_layers(self) -> int:
        """``L``, the number of weight layers (hidden layers + 1)."""
        return len(self.layer_sizes) - 1

    @property
    def n_features(self) -> int:
        return self.layer_sizes[0]

    @property
    def n_classes(self) -> int:
        return self.layer_sizes[-1]

    @property
    def n_parameters(self) -> int:
        return sum(
            fan_out * fan_in + fan_out
            for fan_in, fan_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:])
        )

    def parameter_names(self) -> list[str]:
        """Return the course names of the parameter arrays: ``W1, b1, ..., WL, bL``."""
        return [name for k in range(1, self.n_layers + 1) for name in (f"W{k}", f"b{k}")]

    def config(self) -> dict:
        """Return the settings that rebuild this network's architecture (JSON-able)."""
        return {
            "layer_sizes": list(self.layer_sizes),
            "activation": list(self.activation_names),
            "weight_init": self.weight_init,
            "loss": self.loss_name,
            "weight_decay": self.weight_decay,
            "dtype": self.dtype.name,
        }

    @classmethod
    def from_config(cls, config: dict, parameters=None) -> "Network":
        """Build a network from :meth:`config` output and, if given, a flat parameter array."""
        net = cls(
            config["layer_sizes"],
            activation=config["activation"],
            weight_init=config.get("weight_init", "xavier"),
            loss=config.get("loss", "cross_entropy"),
            weight_decay=config.get("weight_decay", 0.0),
            dtype=config.get("dtype", "float32"),
        )
        if parameters is not None:
            net.set_parameters(parameters)
        return net

    def set_parameters(self, parameters) -> None:
        """Copy a flat array of ``n_parameters`` values into the network's parameters."""
        values = xp.asarray(parameters)
        if values.shape != (self.n_parameters,):
            raise ValueError(
                f"parameters must have shape ({self.n_parameters},) for layer sizes "
                f"{list(self.layer_sizes)}, got {values.shape}"
            )
        self.parameters[...] = values

    def copy(self, dtype=None) -> "Network":
        """Return an independent copy, optionally in another dtype."""
        config = self.config()
        if dtype is not None:
            config["dtype"] = _check_dtype(dtype).name
        return Network.from_config(config, self.parameters)

    def __repr__(self) -> str:
        return (
            f"Network({list(self.layer_sizes)}, activation={self.activation_names}, "
            f"loss={self.loss_name!r}, weight_decay={self.weight_decay}, "
            f"dtype={self.dtype.name!r})"
        )

    # ------------------------------------------------------------------ forward pass

    def check_input(self, X):
        """Return ``X`` validated and converted to ``(batch, n_0)`` in the network's dtype."""
        return check_features(X, self.n_features, self.dtype)

    def check_labels(self, labels, n_samples: int | None = None):
        """Return ``labels`` validated as int64 class indices ``0..K-1``."""
        return check_labels(labels, self.n_classes, n_samples)

    def forward_trace(self, X) -> tuple[list, list]:
        """Run the forward pass on validated input and keep every intermediate value.

        Returns ``(pre_activations, activations)`` as new arrays: ``pre_activations[k-1]
        = A_k`` for ``k = 1..L`` (the last is the logits) and ``activations[k] = H_k`` for
        ``k = 0..L-1`` (``activations[0]`` is the input itself).
        """
        a, h = self._forward(X, buffers=None)
        return a[1:], h

    def _forward(self, X, buffers: "_Buffers | None") -> tuple[list, list]:
        """Return ``a`` and ``h`` indexed by the course's layer numbers (``a[0]`` is None).

        With ``buffers`` the pass allocates nothing: each ``A_k`` is written into a
        reused array and, for hidden layers, overwritten in place by ``H_k = g(A_k)``,
        since the backward pass needs only ``H_k``. Then ``a[k]`` and ``h[k]`` are the
        same array.
        """
        a, h = [None], [X]
        for k in range(1, self.n_layers + 1):
            # a_k = b_k + W_k h_{k-1}; for a batch of rows, A_k = H_{k-1} W_kᵀ + b_k.
            out = None if buffers is None else buffers.outputs[k]
            a_k = xp.matmul(h[k - 1], self.weights[k - 1].T, out=out)
            a_k += self.biases[k - 1]
            a.append(a_k)

            # h_k = g(a_k) for the hidden layers; the output layer stays as logits.
            if k < self.n_layers:
                in_place = None if buffers is None else a_k
                h.append(self.activation_functions[k - 1].forward(a_k, out=in_place))
        return a, h

    def forward(self, X):
        """Return the logits ``a_L`` ``(batch, n_classes)`` for ``X`` ``(batch, n_0)``."""
        pre_activations, _ = self.forward_trace(self.check_input(X))
        return pre_activations[-1]

    def predict_proba(self, X):
        """Return ``ŷ = softmax(a_L)``, shape ``(batch, n_classes)``; rows sum to 1."""
        return losses.softmax(self.forward(X))

    def predict(self, X):
        """Return the most probable class index for each row of ``X``, shape ``(batch,)``."""
        return xp.argmax(self.forward(X), axis=1)

    def l2_penalty(self) -> float:
        """Return ``λ/2 · Σ_k ‖W_k‖²`` (0 when ``weight_decay`` is 0)."""
        if self.weight_decay == 0.0:
            return 0.0
        total = sum(float(xp.vdot(w, w)) for w in self.weights)
        return 0.5 * self.weight_decay * total

    def loss(self, X, labels) -> float:
        """Return the mean loss over the batch plus the L2 penalty."""
        X = self.check_input(X)
        labels = self.check_labels(labels, X.shape[0])
        return self.loss_function.value(self.forward_trace(X)[0][-1], labels) + self.l2_penalty()

    # ------------------------------------------------------------------ backward pass

    def loss_and_gradients(self, X, labels) -> tuple[float, Gradients]:
        """Return the loss (mean data loss + L2 penalty) and its gradients, as new arrays.

        Parameters
        ----------
        X : array ``(batch, n_0)``
        labels : int array ``(batch,)`` of class indices ``0..K-1``
        """
        X = self.check_input(X)
        labels = self.check_labels(labels, X.shape[0])
        flat = xp.empty_like(self.parameters)
        gradients = Gradients(*self._layer_views(flat), flat=flat)
        loss, _ = self._backpropagate(X, labels, gradients)
        return loss + self.l2_penalty(), gradients

    def loss_and_gradients_into(self, X, labels, gradient, *, threads: int = 1
                                ) -> tuple[float, int]:
        """Write the flat gradient for a batch into ``gradient``; return data loss and hits.

        The fast path for training loops: ``X`` must already be a valid ``(batch, n_0)``
        array of the network's dtype and ``labels`` valid int64 class indices (call
        :meth:`check_input` and :meth:`check_labels` once for the whole data set).
        ``gradient`` is a 1-D array of ``n_parameters`` entries and receives the gradient
        with the L2 term. The returned loss is the mean data loss *without* the L2
        penalty (so training and validation losses compare), and the count is the number
        of rows whose largest logit is the true class. Intermediate arrays are reused
        between calls with the same batch size, so no trace is kept.

        With ``threads`` above 1 the rows are cut into that many blocks, and each thread
        backpropagates one block into its own flat gradient. Adding the blocks' gradients
        gives the batch's gradient, because the loss is a mean over rows and every block
        divides its ``G_L`` by the whole batch's size. The sums run in another order
        than with one thread, so the result can differ in the last bits.
        Give each thread single-threaded BLAS, as :class:`~chainrule.Trainer` does, or
        the threads compete for the same cores.
        """
        batch = X.shape[0]
        blocks = min(int(threads), batch)
        if blocks < 2:
            gradients = Gradients(*self._layer_views(gradient), flat=gradient)
            return self._backpropagate(X, labels, gradients, self._buffers_for(batch))

        bounds = parallel.piece_bounds(batch, blocks)
        flats = [gradient, *self._block_gradients(blocks - 1)]
        block_of = {start: index for index, start in enumerate(bounds[:-1])}
        buffers = [self._buffers_for(stop - start, block=index)
                   for index, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:]))]

        def backpropagate_block(start: int, stop: int) -> tuple[float, int]:
            index = block_of[start]
            gradients = Gradients(*self._layer_views(flats[index]), flat=flats[index])
            # The L2 term belongs to the batch, not to each block: block 0 adds it once.
            loss, hits = self._backpropagate(X[start:stop], labels[start:stop], gradients,
                                             buffers[index], batch_size=batch,
                                             add_weight_decay=index == 0)
            return loss * (stop - start), hits

        results = parallel.run_pieces(backpropagate_block, bounds)

        def add_blocks(start: int, stop: int) -> None:
            total = gradient[start:stop]
            for flat in flats[1:]:
                xp.add(total, flat[start:stop], out=total)

        bounds = parallel.piece_bounds(gradient.size, blocks, parallel.PIECE_ALIGNMENT)
        parallel.run_pieces(add_blocks, bounds)
        return sum(loss for loss, _ in results) / batch, sum(hits for _, hits in results)

    def _buffers_for(self, batch: int, block: int = 0) -> "_Buffers":
        cache = self.__dict__.setdefault("_buffer_cache", {})
        buffers = cache.get((block, batch))
        if buffers is None:
            # A training run uses at most two batch sizes (the last batch may be
            # smaller) per block of rows, so keeping a few entries bounds the memory.
            if len(cache) >= 8:
                cache.clear()
            buffers = cache[block, batch] = _Buffers(self.layer_sizes, batch, self.dtype)
        return buffers

    def _block_gradients(self, count: int) -> list:
        """Flat gradient arrays for blocks 1..count of a batch split across threads."""
        arrays = self.__dict__.setdefault("_block_gradient_cache", [])
        if arrays and (arrays[0].shape != self.parameters.shape
                       or arrays[0].dtype != self.parameters.dtype):
            arrays.clear()
        while len(arrays) < count:
            arrays.append(xp.empty_like(self.parameters))
        return arrays[:count]

    def _backpropagate(self, X, labels, gradients: Gradients, buffers=None, *,
                       batch_size=None, add_weight_decay=True) -> tuple[float, int]:
        """Fill ``gradients`` (L2 term included); return the mean data loss and the hits.

        Without ``buffers`` every intermediate array is new and the per-layer gradients
        ``∇A_k`` and ``∇H_k`` are kept in ``gradients``. With ``buffers`` they are written
        into reused arrays and not kept. When ``X`` is one block of rows of a batch,
        ``batch_size`` is the batch's size (the ``B`` of ``1/B``) and
        ``add_weight_decay`` says whether this block adds the L2 term.
        """
        L = self.n_layers
        keep_trace = buffers is None
        a, h = self._forward(X, buffers)
        correct = int(xp.count_nonzero(xp.argmax(a[L], axis=1) == labels))

        # Stakeholder 1, the output layer: for cross-entropy G_L = (Ŷ − E) / B. The fast
        # path forms it in place of the logits, which are no longer needed.
        output_buffer = None if keep_trace else a[L]
        loss, grad_a = self.loss_function.value_and_gradient(a[L], labels, out=output_buffer,
                                                             batch_size=batch_size)
        if keep_trace:
            gradients.pre_activations = [None] * L
            gradients.activations = [None] * (L - 1)
            gradients.pre_activations[L - 1] = grad_a
        # A column of ones sums the rows as a matrix product, which BLAS does two to
        # four times as fast as xp.sum(G, axis=0).
        ones = xp.ones(X.shape[0], dtype=X.dtype) if keep_trace else buffers.ones

        for k in range(L, 0, -1):
            W_k = self.weights[k - 1]

            # Stakeholder 3, the weights and biases of layer k:
            # ∇W_k = G_kᵀ H_{k-1} (+ λ W_k), ∇b_k = Σ_rows G_k = G_kᵀ 1.
            xp.matmul(grad_a.T, h[k - 1], out=gradients.weights[k - 1])
            if self.weight_decay and add_weight_decay:
                gradients.weights[k - 1] += self.weight_decay * W_k
            xp.matmul(ones, grad_a, out=gradients.biases[k - 1])

            # Stakeholder 2, the hidden layer below: ∇H_{k-1} = G_k W_k, then
            # ∇A_{k-1} = ∇H_{k-1} ⊙ g'(A_{k-1}), with g' formed from H_{k-1}.
            if k > 1:
                out = None if keep_trace else buffers.grad_h[k - 1]
                grad_h = xp.matmul(grad_a, W_k, out=out)
                activation = self.activation_functions[k - 2]
                if keep_trace:
                    gradients.activations[k - 2] = grad_h
                    grad_a = activation.backward(grad_h, a[k - 1], h[k - 1])
                    gradients.pre_activations[k - 2] = grad_a
                else:
                    # a[k-1] was overwritten by h[k-1] in the fast forward pass.
                    grad_a = activation.backward(grad_h, None, h[k - 1], out=grad_h)
        return loss, correct


class _Buffers:
    """Arrays for one batch size, reused by :meth:`Network.loss_and_gradients_into`.

    ``outputs[k]`` contains ``A_k`` and then, for hidden layers, ``H_k`` (``k = 1..L``);
    ``grad_h[k]`` contains ``∇H_k`` and then ``∇A_k`` (``k = 1..L-1``). Index 0 is unused.
    ``ones`` is the column of ones that sums a gradient's rows for the bias gradients.
    """

    def __init__(self, layer_sizes, batch: int, dtype):
        self.outputs = [None] + [xp.empty((batch, n), dtype=dtype) for n in layer_sizes[1:]]
        self.grad_h = [None] + [xp.empty((batch, n), dtype=dtype) for n in layer_sizes[1:-1]]
        self.ones = xp.ones(batch, dtype=dtype)
