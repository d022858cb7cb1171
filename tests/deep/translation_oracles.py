"""Float64 numpy references and tiny settings shared by the image-translation tests."""

import numpy as np


def np_l1(a, b):
    """``mean |a - b|`` in float64."""
    return float(np.mean(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def np_ls_generator(scores):
    """The least-squares generator loss ``1/2 mean (s - 1)^2`` in float64."""
    return 0.5 * float(np.mean((np.asarray(scores, np.float64) - 1) ** 2))


def np_ls_discriminator(real, fake):
    """The least-squares discriminator loss ``1/2 mean (r - 1)^2 + 1/2 mean f^2`` in float64."""
    return 0.5 * float(np.mean((np.asarray(real, np.float64) - 1) ** 2)) + 0.5 * float(
        np.mean(np.asarray(fake, np.float64) ** 2))
