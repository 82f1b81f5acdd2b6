"""A scikit-learn classifier that trains chainrule's network with chainrule's trainer.

:class:`MLPClassifier` takes scikit-learn's ``MLPClassifier`` parameter names, with their
meanings and defaults, and drops into ``Pipeline``, ``GridSearchCV`` and
``cross_val_score``. Underneath it builds a :class:`~chainrule.network.Network`, an
optimizer from :mod:`chainrule.optimizers` and a :class:`~chainrule.training.Trainer`:
the same code the command line trains with, and no second training loop.

Where chainrule's core differs from scikit-learn, the estimator converts:

=======================  ===============================================================
scikit-learn             chainrule
=======================  ===============================================================
``alpha``                The core adds ``λ/2 Σ‖W‖²`` to the mean batch loss. scikit-learn
                         adds ``alpha/(2m) Σ‖W‖²`` to a batch of ``m`` rows, so
                         ``λ = alpha / batch_size`` (exact for every full batch).
``coefs_[i]``            ``(fan_in, fan_out)``, the transpose of the core's ``W_{i+1}``.
``activation``           ``logistic`` is the core's ``sigmoid``; any core name works.
binary output            scikit-learn uses one logistic unit for two classes. chainrule
                         always uses a softmax over one unit per class, so two classes
                         give two output units and the same two-column ``predict_proba``.
``solver="sgd"``         Plain SGD, ``w ← w − η g``. scikit-learn's ``sgd`` adds
                         Nesterov momentum 0.9 by default. The same method here is
                         ``solver="nag"`` (``momentum=0.9``), but scikit-learn stores
                         the look-ahead point ``w − β u`` where chainrule stores ``w``,
                         so the stored weights differ by that shift.
                         ``solver="momentum"`` takes the same steps as scikit-learn's
                         ``sgd`` with ``nesterovs_momentum=False``.
=======================  ===============================================================

Only this module imports scikit-learn, and ``import chainrule`` does not import this module.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass

from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from chainrule import activations as activation_registry
from chainrule import initializers
from chainrule import losses
from chainrule import optimizers as optimizer_registry
from chainrule.backend import xp
from chainrule.network import Network
from chainrule.training import Trainer, TrainingInterrupted

# scikit-learn's batch_size="auto" is min(AUTO_BATCH_SIZE, n_samples).
AUTO_BATCH_SIZE = 200
# Seeds drawn from random_state for the weights, the shuffling and the validation split.
_SEED_LIMIT = 2**31 - 1

# The estimator parameters that feed each optimizer's hyperparameters.
_OPTIMIZER_PARAMETERS = {
    "sgd": {},
    "momentum": {"momentum": "momentum"},
    "nag": {"momentum": "momentum"},
    "rmsprop": {"beta": "rho", "epsilon": "epsilon"},
    "adam": {"beta1": "beta_1", "beta2": "beta_2", "epsilon": "epsilon"},
    "nadam": {"beta1": "beta_1", "beta2": "beta_2", "epsilon": "epsilon"},
}


@dataclass(frozen=True)
class _Settings:
    """Estimator parameters after validation, in the form the core takes."""

    hidden_layer_sizes: tuple[int, ...]
    activation: str
    solver: str
    optimizer_hyperparameters: dict
    weight_init: str
    loss: str


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron classifier with scikit-learn's interface.

    The network has ``len(hidden_layer_sizes)`` hidden layers and a softmax output with
    one unit per class, trained on the cross-entropy (by default) plus an L2 penalty with
    mini-batches. Parameters not listed under "chainrule's own" have scikit-learn's
    names, meanings and defaults; the module docstring lists where the core differs.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default (100,)
        Units per hidden layer. An empty tuple gives softmax regression.
    activation : str, default "relu"
        Hidden activation: ``identity``, ``logistic`` (the core's ``sigmoid``), ``tanh``,
        ``relu``, or any other name from :mod:`chainrule.activations`.
    solver : str, default "adam"
        ``adam``, ``sgd`` (plain SGD without momentum), ``momentum``, ``nag``,
        ``rmsprop`` or ``nadam``. scikit-learn's ``lbfgs`` is not available.
    alpha : float, default 1e-4
        L2 strength in scikit-learn's scaling: a batch of ``m`` rows adds
        ``alpha/(2m) Σ‖W‖²`` to its mean loss. The core runs with
        ``λ = alpha / batch_size``, where ``batch_size`` is the size actually used. A
        last, smaller batch therefore gets ``λ`` rather than scikit-learn's ``alpha/m``.
    batch_size : int or "auto", default "auto"
        Rows per mini-batch; ``"auto"`` is ``min(200, n_samples)``. A size above the
        number of training rows is clipped to it, with a warning.
    learning_rate_init : float, default 1e-3
        The optimizer's constant learning rate η, > 0.
    max_iter : int, default 200
        Maximum number of epochs for :meth:`fit`.
    shuffle : bool, default True
        Shuffle the rows every epoch.
    random_state : None, int or numpy.random.RandomState, default None
        Source of three integer seeds drawn at every fit: one for the initial weights,
        one for the shuffling, one for the validation split. An int makes fits
        repeatable; a ``RandomState`` advances with each fit.
    tol : float, default 1e-4
        Minimum improvement for the stopping rule (see ``n_iter_no_change``).
    verbose : bool, default False
        Print the trainer's line per epoch on stdout.
    warm_start : bool, default False
        Let :meth:`fit` continue from the current weights. The optimizer state starts
        fresh, and the classes must be the same as before.
    momentum : float, default 0.9
        β of ``solver="momentum"`` and ``solver="nag"``, in [0, 1).
    early_stopping : bool, default False
        Hold out a stratified ``validation_fraction`` of the training rows and stop when
        the validation loss has not improved by ``tol`` for more than
        ``n_iter_no_change`` epochs. The weights of the epoch with the lowest
        validation loss are kept. scikit-learn monitors the validation accuracy instead.
    validation_fraction : float, default 0.1
        Share of the training rows held out for early stopping, in (0, 1).
    beta_1, beta_2 : float, default 0.9, 0.999
        Adam's and Nadam's moment decays β1 and β2, in [0, 1).
    epsilon : float, default 1e-8
        ε of Adam, Nadam and RMSprop, > 0.
    n_iter_no_change : int, default 10
        :meth:`fit` stops once the monitored loss has failed to drop below its best
        value minus ``tol`` for more than this many consecutive epochs. Without early
        stopping the monitored loss is the training loss ``loss_``, as in scikit-learn.
        The count of such epochs restarts at every :meth:`fit` (scikit-learn carries it
        over into a warm-started fit), and :meth:`partial_fit` never stops.
    rho : float, default 0.9
        chainrule's own: RMSprop's decay β, in [0, 1).
    weight_init : str, default "xavier_uniform"
        chainrule's own: a name from :mod:`chainrule.initializers`. The default draws
        weights from ``U(±sqrt(6/(fan_in + fan_out)))``, as scikit-learn does for
        ``relu``, ``tanh`` and ``identity`` (scikit-learn narrows the bound to
        ``sqrt(2/(fan_in + fan_out))`` for ``logistic``, and also draws its biases from
        that range). Biases start at zero.
    loss : str, default "cross_entropy"
        chainrule's own: ``cross_entropy`` (alias ``log_loss``) or
        ``mean_squared_error`` on the softmax output.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, sorted, in the dtype of the labels given to the first fit.
    n_features_in_ : int
        Number of input features.
    feature_names_in_ : ndarray of str
        Column names, set only when ``X`` had string column names (a DataFrame).
    n_iter_ : int
        Epochs run by the last call: ``fit`` runs up to ``max_iter``, ``partial_fit`` one.
    t_ : int
        Training rows seen by the optimizer since the network was created.
    loss_ : float
        Training loss of the last epoch, in scikit-learn's meaning: the mean data loss
        over the epoch's mini-batches plus ``alpha/2 · Σ‖W‖² · n_batches / n_samples``.
        The data loss is the running mean over the epoch, taken from the forward
        passes of training. The L2 term uses the weights at the end of the epoch, where
        scikit-learn sums it over the weights of each batch.
    loss_curve_ : list of float
        ``loss_`` of every epoch since the network was created (warm starts and
        ``partial_fit`` calls extend it).
    best_loss_ : float or None
        Lowest value in ``loss_curve_``; None with early stopping, as in scikit-learn.
    validation_scores_ : list of float or None
        Validation accuracy of every epoch of the last fit with early stopping; None
        without early stopping.
    best_validation_score_ : float or None
        Validation accuracy of the epoch whose weights were kept (the one with the
        lowest validation loss); None without early stopping.
    validation_indices_ : ndarray of int or None
        Rows of the last ``fit``'s ``X`` that formed the validation set; None without
        early stopping.
    coefs_ : list of ndarray
        ``coefs_[i]`` has shape ``(fan_in, fan_out)`` and is a live, transposed view of
        the core's ``W_{i+1}``: writing into it changes the network.
    intercepts_ : list of ndarray
        ``intercepts_[i]`` has shape ``(fan_out,)``, a live view of ``b_{i+1}``.
    n_layers_ : int
        Number of layers, input and output included.
    n_outputs_ : int
        Number of output units, one per class.
    out_activation_ : str
        Always ``"softmax"``.

    Notes
    -----
    Input goes through scikit-learn's ``validate_data``: float32 input is trained and
    predicted in float32, float64 in float64, and any other numeric type (uint8
    pixels, integers) is converted to float64 without touching the caller's array. The
    first fit fixes the network's precision. Sparse input is rejected. A 1-D ``X`` is
    rejected with a hint to use ``X.reshape(1, -1)`` for a single sample, and an ``X``
    with 0 rows raises ``ValueError`` in every method, ``predict`` included.

    ``sample_weight``, scikit-learn's learning-rate schedules (``learning_rate``,
    ``power_t``), ``nesterovs_momentum`` and ``max_fun`` are not supported.
    """

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=1e-4,
        batch_size="auto",
        learning_rate_init=1e-3,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        rho=0.9,
        weight_init="xavier_uniform",
        loss="cross_entropy",
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.rho = rho
        self.weight_init = weight_init
        self.loss = loss

    # ------------------------------------------------------------------ training

    def fit(self, X, y) -> "MLPClassifier":
        """Train the network on ``X`` ``(n_samples, n_features)`` and labels ``y``.

        Runs up to ``max_iter`` epochs and stops earlier by the rule that
        ``n_iter_no_change`` describes. With ``warm_start=True`` and a fitted model,
        training continues from the current weights.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Labels of any type scikit-learn accepts (ints, strings, with gaps); at
            least two distinct values.

        Returns
        -------
        self
        """
        return self._fit(X, y, classes=None, incremental=False)

    def partial_fit(self, X, y, classes=None) -> "MLPClassifier":
        """Train for one epoch over ``X`` and ``y``, continuing from the current state.

        The first call creates the network and needs ``classes``, the full set of
        labels that any later call may contain. The optimizer state (Adam's moments
        and step count) carries over between calls.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Labels, all of them members of ``classes``.
        classes : array-like of shape (n_classes,), optional
            Required on the first call; on later calls it must equal ``classes_``.

        Returns
        -------
        self
        """
        return self._fit(X, y, classes=classes, incremental=True)

    def _fit(self, X, y, *, classes, incremental: bool) -> "MLPClassifier":
        settings = self._check_parameters()
        if incremental and self.early_stopping:
            raise ValueError(
                "partial_fit does not support early_stopping=True, because it trains one "
                "epoch per call; set early_stopping=False or call fit"
            )
        fitted = "_network" in vars(self)
        first_pass = not fitted or (not incremental and not self.warm_start)

        # The estimator changes only after every check has passed and training has
        # ended, so a rejected or failed call leaves a fitted model as it was
        # (validate_data resets n_features_in_ only on a first pass).
        X, y = validate_data(self, X, y, dtype=(xp.float64, xp.float32), reset=first_pass)
        check_classification_targets(y)
        if first_pass:
            class_labels = self._new_classes(y, classes, incremental)
        else:
            class_labels = self._check_same_classes(y, classes, incremental)
        y_indices = _encode_labels(y, class_labels)

        random_state = check_random_state(self.random_state)
        network_seed, shuffle_seed, split_seed = (
            int(seed) for seed in random_state.randint(0, _SEED_LIMIT, size=3)
        )
        validation_data, validation_indices = None, None
        X_train, y_train = X, y_indices
        if self.early_stopping:
            train_indices, validation_indices = _validation_split(
                y_indices, self.validation_fraction, split_seed
            )
            X_train, y_train = X[train_indices], y_indices[train_indices]
            validation_data = (X[validation_indices], y_indices[validation_indices])
        batch_size = self._resolve_batch_size(X_train.shape[0])

        layer_sizes = [X.shape[1], *settings.hidden_layer_sizes, len(class_labels)]
        network = self._start_network(settings, layer_sizes, X.dtype, network_seed, first_pass)
        network.weight_decay = float(self.alpha) / batch_size
        optimizer = optimizer_registry.get(settings.solver, **settings.optimizer_hyperparameters)
        if incremental and not first_pass and self._optimizer_state["solver"] == settings.solver:
            optimizer.load_state_dict(self._optimizer_state["state"])

        monitor = _StoppingRule(
            alpha=float(self.alpha),
            n_samples=X_train.shape[0],
            n_batches=math.ceil(X_train.shape[0] / batch_size),
            tol=float(self.tol),
            n_iter_no_change=self.n_iter_no_change,
            early_stopping=self.early_stopping,
            stop=not incremental,
            best_loss=math.inf if first_pass or self.best_loss_ is None else self.best_loss_,
            no_improvement_count=self._no_improvement_count if incremental and fitted else 0,
        )
        trainer = Trainer(
            network,
            optimizer,
            batch_size=batch_size,
            epochs=1 if incremental else self.max_iter,
            shuffle=self.shuffle,
            seed=shuffle_seed,
            restore_best_weights=self.early_stopping,
            progress=False,
            quiet=not self.verbose,
            callbacks=[monitor],
        )
        self._run_trainer(trainer, X_train, y_train, validation_data, incremental)

        self._store_results(trainer, monitor, class_labels, first_pass, incremental)
        self.t_ = (0 if first_pass else self.t_) + len(trainer.history) * X_train.shape[0]
        if self.early_stopping:
            self.validation_indices_ = validation_indices
        elif not incremental or first_pass:
            self.validation_indices_ = None
        return self

    def _run_trainer(self, trainer: Trainer, X_train, y_train, validation_data,
                     incremental: bool) -> None:
        """Run one epoch (partial_fit) or a whole fit; warn where scikit-learn warns."""
        network = trainer.network
        try:
            if incremental:
                trainer.train_epoch(network.check_input(X_train), network.check_labels(y_train))
            else:
                trainer.fit(X_train, y_train, validation_data=validation_data)
        except TrainingInterrupted:
            # scikit-learn keeps the weights trained so far on Ctrl-C and warns.
            if not trainer.history:
                raise
            warnings.warn("training interrupted by the user; keeping the weights so far")
            if trainer.best_parameters is not None:
                network.parameters[...] = trainer.best_parameters
            return

        if not incremental and not trainer.stopped_early and len(trainer.history) == self.max_iter:
            warnings.warn(
                f"the optimizer reached max_iter={self.max_iter} epochs before the loss "
                f"stopped improving by tol={self.tol}; raise max_iter or tol to silence this",
                ConvergenceWarning,
            )

    def _store_results(self, trainer: Trainer, monitor: "_StoppingRule", class_labels,
                       first_pass: bool, incremental: bool) -> None:
        """Set the fitted attributes from a finished training run."""
        previous_curve = [] if first_pass else list(self.loss_curve_)
        self._network = trainer.network
        self._optimizer_state = {"solver": trainer.optimizer.name,
                                 "state": trainer.optimizer.state_dict()}
        self._no_improvement_count = monitor.no_improvement_count
        self.classes_ = class_labels
        self.n_layers_ = trainer.network.n_layers + 1
        self.n_outputs_ = len(class_labels)
        self.out_activation_ = "softmax"
        self.n_iter_ = len(trainer.history)
        self.loss_curve_ = previous_curve + monitor.loss_curve
        self.loss_ = self.loss_curve_[-1]
        if self.early_stopping:
            self.best_loss_ = None
            self.validation_scores_ = monitor.validation_scores
            best_row = trainer.history[trainer.best_epoch - 1]
            self.best_validation_score_ = best_row["val_accuracy"]
        else:
            self.best_loss_ = monitor.best_loss
            if not incremental or first_pass:
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _new_classes(self, y, classes, incremental: bool):
        """Return the sorted class labels of a first fit (from ``classes`` for partial_fit)."""
        if incremental:
            if classes is None:
                raise ValueError(
                    "classes must be passed on the first call to partial_fit: give every "
                    "label the model will ever see, e.g. classes=numpy.unique(y_all)"
                )
            class_labels = _sorted_labels(classes, "classes")
        else:
            class_labels = _sorted_labels(y, "y")
        if len(class_labels) == 0:
            raise ValueError("classes is empty; pass every label the model will ever see")
        if len(class_labels) < 2:
            raise ValueError(
                f"found one class ({_plain(class_labels[0])!r}); at least 2 are needed to "
                "train a classifier"
            )
        return class_labels

    def _check_same_classes(self, y, classes, incremental: bool):
        """Return ``classes_`` after checking that this call keeps the class set."""
        if incremental:
            if classes is not None:
                requested_classes = _sorted_labels(classes, "classes")
                if not _same_labels(requested_classes, self.classes_):
                    raise ValueError(
                        f"classes={requested_classes.tolist()} differs from the classes of "
                        f"the first call, {self.classes_.tolist()}; the class set cannot "
                        "change after the first partial_fit"
                    )
            return self.classes_
        found = _sorted_labels(y, "y")
        if not _same_labels(found, self.classes_):
            raise ValueError(
                f"warm_start=True needs the same classes as the previous fit: it had "
                f"{self.classes_.tolist()}, y has {found.tolist()}; set warm_start=False to "
                "train a new model"
            )
        return self.classes_

    def _start_network(self, settings: _Settings, layer_sizes, dtype, seed: int,
                       first_pass: bool) -> Network:
        """Return a new network, or a copy of the fitted one to continue training."""
        if first_pass:
            return Network(
                layer_sizes,
                activation=settings.activation,
                weight_init=settings.weight_init,
                loss=settings.loss,
                seed=seed,
                dtype=dtype.name,
            )
        current = self._network
        n_hidden = len(layer_sizes) - 2
        changed = [
            f"{name} from {old!r} to {new!r}"
            for name, old, new in (
                ("layer sizes", list(current.layer_sizes), list(layer_sizes)),
                ("activation", list(current.activation_names), [settings.activation] * n_hidden),
                ("loss", current.loss_name, settings.loss),
            )
            if old != new
        ]
        if changed:
            raise ValueError(
                f"cannot continue training after changing the {'; '.join(changed)}; "
                "restore the parameters or set warm_start=False to train a new model"
            )
        # Train a copy, so that a failed call leaves the fitted network as it was.
        return current.copy()

    def _resolve_batch_size(self, n_samples: int) -> int:
        if self.batch_size == "auto":
            return min(AUTO_BATCH_SIZE, n_samples)
        if self.batch_size > n_samples:
            warnings.warn(
                f"batch_size={self.batch_size} is larger than the {n_samples} training "
                f"rows; using {n_samples}"
            )
        return min(self.batch_size, n_samples)

    # ------------------------------------------------------------------ parameters

    def _check_parameters(self) -> _Settings:
        """Validate every parameter; raise ValueError naming the bad one and the fix."""
        hidden = self.hidden_layer_sizes
        if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
            hidden = (hidden,)
        try:
            hidden = tuple(hidden)
        except TypeError:
            hidden = None
        if (
            hidden is None
            or isinstance(self.hidden_layer_sizes, str)
            or not all(_is_int(size, minimum=1) for size in hidden)
        ):
            raise ValueError(
                "hidden_layer_sizes must be a positive integer or a sequence of them, "
                f"such as (100,) or (64, 32), got {self.hidden_layer_sizes!r}"
            )
        hidden = tuple(int(size) for size in hidden)

        if not isinstance(self.solver, str) or self.solver.lower() not in _OPTIMIZER_PARAMETERS:
            raise ValueError(
                f"solver must be one of {', '.join(_OPTIMIZER_PARAMETERS)}, got "
                f"{self.solver!r}; scikit-learn's 'lbfgs' is not available"
            )
        solver = self.solver.lower()

        _check_number("alpha", self.alpha, minimum=0.0)
        _check_number("learning_rate_init", self.learning_rate_init, minimum=0.0,
                      inclusive=False)
        _check_number("tol", self.tol, minimum=0.0)
        for name in ("momentum", "beta_1", "beta_2", "rho"):
            _check_number(name, getattr(self, name), minimum=0.0, maximum=1.0)
        _check_number("epsilon", self.epsilon, minimum=0.0, inclusive=False)
        _check_number("validation_fraction", self.validation_fraction, minimum=0.0,
                      inclusive=False, maximum=1.0)
        for name in ("max_iter", "n_iter_no_change"):
            if not _is_int(getattr(self, name), minimum=1):
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.batch_size != "auto" and not _is_int(self.batch_size, minimum=1):
            raise ValueError(
                f"batch_size must be 'auto' or an integer >= 1, got {self.batch_size!r}"
            )
        for name in ("shuffle", "verbose", "warm_start", "early_stopping"):
            if not isinstance(getattr(self, name), (bool, xp.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")

        hyperparameters = {"learning_rate": float(self.learning_rate_init)}
        for core_name, estimator_name in _OPTIMIZER_PARAMETERS[solver].items():
            hyperparameters[core_name] = float(getattr(self, estimator_name))
        return _Settings(
            hidden_layer_sizes=hidden,
            activation=activation_registry.canonical_name(self.activation),
            solver=solver,
            optimizer_hyperparameters=hyperparameters,
            weight_init=initializers.canonical_name(self.weight_init),
            loss=losses.canonical_name(self.loss),
        )

    # ------------------------------------------------------------------ prediction

    def _logits(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=(xp.float64, xp.float32), reset=False)
        return self._network.forward(X)

    def predict_proba(self, X):
        """Return class probabilities ``(n_samples, n_classes)``, columns as in ``classes_``.

        Two classes give two columns. The dtype is the network's (float32 when the
        first fit saw float32 input, float64 otherwise).
        """
        return losses.softmax(self._logits(X))

    def predict_log_proba(self, X):
        """Return log class probabilities ``(n_samples, n_classes)``.

        Computed from the logits with log-sum-exp, so it stays finite where
        ``predict_proba`` rounds to 0.
        """
        return losses.log_softmax(self._logits(X))

    def predict(self, X):
        """Return the most probable class label for each row, shape ``(n_samples,)``."""
        # argmax of the probabilities rather than of the logits, so that predict always
        # agrees with predict_proba, even where rounding makes two probabilities equal.
        probabilities = self.predict_proba(X)
        return self.classes_[xp.argmax(probabilities, axis=1)]

    # ------------------------------------------------------------------ scikit-learn layout

    @property
    def coefs_(self) -> list:
        """Weights ``(fan_in, fan_out)`` per layer, live transposed views of the core's ``W_k``."""
        return [weights.T for weights in self._fitted_network().weights]

    @property
    def intercepts_(self) -> list:
        """Biases ``(fan_out,)`` per layer, live views of the core's ``b_k``."""
        return list(self._fitted_network().biases)

    @property
    def network_(self) -> Network:
        """The trained :class:`~chainrule.network.Network` itself (not a copy)."""
        return self._fitted_network()

    def _fitted_network(self) -> Network:
        try:
            return vars(self)["_network"]
        except KeyError:
            # AttributeError keeps hasattr(estimator, "coefs_") False before fitting.
            raise AttributeError(
                f"this {type(self).__name__} is not fitted yet; call fit or partial_fit first"
            ) from None

    # ------------------------------------------------------------------ pickling

    def __getstate__(self) -> dict:
        # A network's weights and biases are views into one flat parameter array, and
        # pickle would store each view as a separate copy. Store the architecture and
        # the flat array instead, and rebuild the views on loading.
        state = dict(super().__getstate__())
        network = state.pop("_network", None)
        if network is not None:
            state["_network_description"] = (network.config(), network.parameters)
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        description = state.pop("_network_description", None)
        super().__setstate__(state)
        if description is not None:
            config, parameters = description
            self._network = Network.from_config(config, parameters)


class _StoppingRule:
    """Per-epoch callback: records ``loss_`` and applies scikit-learn's stopping rule.

    After each epoch the monitored value is compared with the best so far: when it is
    not below ``best - tol`` the no-improvement count rises, otherwise it resets, and
    once the count exceeds ``n_iter_no_change`` the trainer stops. The monitored value
    is the training loss with scikit-learn's L2 term, or with early stopping the
    validation loss.
    """

    def __init__(self, *, alpha: float, n_samples: int, n_batches: int, tol: float,
                 n_iter_no_change: int, early_stopping: bool, stop: bool, best_loss: float,
                 no_improvement_count: int):
        self.alpha = alpha
        self.n_samples = n_samples
        self.n_batches = n_batches
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.stop = stop
        self.best_loss = best_loss
        self.best_validation_loss = math.inf
        self.no_improvement_count = no_improvement_count
        self.loss_curve: list[float] = []
        self.validation_scores: list[float] = []

    def __call__(self, trainer: Trainer, row: dict) -> None:
        # scikit-learn adds alpha/(2m) Σ‖W‖² to each batch loss and weights each batch
        # by its m rows, so the epoch's loss carries alpha/2 Σ‖W‖² once per batch,
        # divided by n_samples.
        squared_norm = sum(float(xp.vdot(w, w)) for w in trainer.network.weights)
        loss = row["train_loss"] + 0.5 * self.alpha * squared_norm * self.n_batches / self.n_samples
        self.loss_curve.append(loss)

        if self.early_stopping:
            self.validation_scores.append(row["val_accuracy"])
            monitored, best = row["val_loss"], self.best_validation_loss
        else:
            monitored, best = loss, self.best_loss
        if monitored > best - self.tol:
            self.no_improvement_count += 1
        else:
            self.no_improvement_count = 0
        if self.early_stopping:
            self.best_validation_loss = min(best, monitored)
        else:
            self.best_loss = min(best, monitored)

        if self.stop and self.no_improvement_count > self.n_iter_no_change:
            # The trainer ends fit after this epoch when stopped_early is set.
            trainer.stopped_early = True


# ---------------------------------------------------------------------- helpers


def _is_int(value, *, minimum: int) -> bool:
    return (
        isinstance(value, numbers.Integral)
        and not isinstance(value, (bool, xp.bool_))
        and value >= minimum
    )


def _check_number(name: str, value, *, minimum: float, maximum: float | None = None,
                  inclusive: bool = True) -> None:
    """Raise ValueError unless ``value`` is a real number in the stated range.

    ``minimum`` is included when ``inclusive``; ``maximum`` is always excluded.
    """
    valid = isinstance(value, numbers.Real) and not isinstance(value, (bool, xp.bool_))
    if valid:
        valid = math.isfinite(value) and (value >= minimum if inclusive else value > minimum)
    if valid and maximum is not None:
        valid = value < maximum
    if not valid:
        low = "[" if inclusive else "("
        allowed = f"in {low}{minimum:g}, {maximum:g})" if maximum is not None else (
            f"{'>=' if inclusive else '>'} {minimum:g}"
        )
        raise ValueError(f"{name} must be a number {allowed}, got {value!r}")


def _sorted_labels(labels, name: str):
    """Return the distinct values of ``labels`` sorted, in their own dtype."""
    array = xp.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    try:
        return xp.unique(array)
    except TypeError:
        raise ValueError(
            f"{name} mixes label types that cannot be sorted together (for example "
            "strings and numbers); use one type for all labels"
        ) from None


def _plain(label):
    """Return a NumPy scalar as the Python value it holds, so messages show 5, not np.int64(5)."""
    return label.item() if isinstance(label, xp.generic) else label


def _same_labels(first, second) -> bool:
    return first.shape == second.shape and bool(xp.all(first == second))


def _encode_labels(y, class_labels):
    """Map labels to indices into ``class_labels``; raise ValueError naming unknown ones."""
    try:
        indices = xp.searchsorted(class_labels, y)
    except TypeError:
        raise ValueError(
            f"y has labels of another type than the classes {class_labels.tolist()}"
        ) from None
    clipped = xp.minimum(indices, len(class_labels) - 1)
    unknown = ~(class_labels[clipped] == y)
    if xp.any(unknown):
        outside = _sorted_labels(xp.asarray(y)[unknown], "y")
        raise ValueError(
            f"y contains label(s) {outside.tolist()} that are not among the classes "
            f"{class_labels.tolist()}; the class set is fixed by the first fit or by "
            "partial_fit's classes argument"
        )
    return clipped.astype(xp.int64)


def _validation_split(y_indices, validation_fraction: float, seed: int):
    """Return stratified (train, validation) row indices for early stopping."""
    from chainrule.datasets import stratified_split

    try:
        return stratified_split(y_indices, validation_fraction=validation_fraction, seed=seed)
    except ValueError as error:
        raise ValueError(
            f"early_stopping=True needs a stratified validation split, which failed: {error}"
        ) from None
