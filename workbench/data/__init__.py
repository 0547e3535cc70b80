"""The data: label vocabularies, multi-label data sets and their readers, safe image decoding, emoji scenes.

``labels`` (vocabulary, multi-hot CSR label matrix) → ``datasets`` (the container
every step reads, and the format readers) ← ``images`` (decoding and resizing),
``emoji`` + ``scenes`` (the bundled generated data set). NumPy, SciPy and Pillow
only: nothing here imports Keras.
"""
