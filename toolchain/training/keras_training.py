"""Compiling and fitting Keras models the same way in every training stage (optimizer, loss, one line per epoch)."""
from __future__ import annotations

import time

from .datasets import Dataset
from .keras_io import outputs_probabilities
from .tf_env import import_keras


def epoch_line_callback(epochs: int):
    keras = import_keras()

    class EpochLine(keras.callbacks.Callback):
        """One line per epoch (quiet mode), instead of Keras' progress bar."""

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            print(
                f"epoch {epoch + 1}/{epochs}: loss {logs.get('loss', float('nan')):.4f}, "
                f"train accuracy {logs.get('accuracy', float('nan')):.4f}, {time.perf_counter() - self._t0:.1f} s",
                flush=True,
            )

    return EpochLine()


def compile_for_training(model, learning_rate) -> None:
    """Adam (``learning_rate``: a float or a Keras schedule), sparse cross-entropy, accuracy."""
    keras = import_keras()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities(model)),
        metrics=["accuracy"],
    )


def fit(model, data: Dataset, epochs: int, batch_size: int, quiet: bool, callbacks: list | None = None) -> None:
    """Keras' progress output, or one line per epoch when ``quiet``."""
    if epochs <= 0:
        return
    model.fit(
        data.x_train,
        data.y_train,
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        verbose=0 if quiet else 1,
        callbacks=list(callbacks or []) + ([epoch_line_callback(epochs)] if quiet else []),
    )
