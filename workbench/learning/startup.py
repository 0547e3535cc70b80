"""Importing Keras without TensorFlow's start-up noise.

TensorFlow's C++ side prints informational lines while it is imported (``WARNING: All
log messages before absl::InitializeLog() is called …``, the oneDNN notice, the CPU
feature notice), straight to the process's standard error, where
``TF_CPP_MIN_LOG_LEVEL`` does not reach them. :func:`import_keras_quietly` imports Keras
with the standard error file descriptor pointed at a temporary file and then passes on
every line that is not one of those notices, so real warnings (a missing GPU library, a
version clash) still show; unless the user chose otherwise, ``TF_CPP_MIN_LOG_LEVEL`` is
set to 1, which drops TensorFlow's later informational lines and keeps its warnings.
Keras-free at import.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

__all__ = ["import_keras_quietly", "START_UP_NOTICES"]

#: Lines TensorFlow prints at every start-up that say nothing about the user's work.
START_UP_NOTICES = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations are on|cpu_feature_guard|"
    r"To enable the following instructions|This TensorFlow binary is optimized|rebuild TensorFlow with the appropriate"
)


def import_keras_quietly():
    """Import Keras (and its backend), dropping TensorFlow's start-up notices from standard error.

    Returns
    -------
    module
        ``keras``. When it is already imported nothing is redirected. If the import
        fails, everything it printed is passed on before the exception propagates.
    """
    if "keras" in sys.modules:
        return sys.modules["keras"]
    # TensorFlow's informational lines (level 0) say nothing to a user; its warnings and errors stay
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):  # no real file descriptor 2 (an embedded interpreter)
        import keras

        return keras
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        failed = True
        try:
            import keras

            failed = False
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines() if line.strip() and (failed or not START_UP_NOTICES.search(line))]
            if kept:
                print("\n".join(kept), file=sys.stderr)
    _quiet_retracing_notices()
    return keras


def _quiet_retracing_notices() -> None:
    """TensorFlow's "N out of the last M calls … triggered tf.function retracing" notices: a performance hint
    printed whenever a model predicts batches of a new size (every evaluation, every upload), not a problem."""
    import logging

    class _NoRetracing(logging.Filter):
        def filter(self, record):
            return "triggered tf.function retracing" not in record.getMessage()

    logging.getLogger("tensorflow").addFilter(_NoRetracing())
