import numpy as np
import pytest
import tensorflow as tf

from vaecf.optim import Adam, LossScale


def test_fused_adam_matches_the_textbook_update() -> None:
    w0 = np.array([1.0, -2.0, 3.0], np.float32)
    var = tf.Variable(w0)
    opt = Adam([var], lr=0.1, beta1=0.9, beta2=0.999, epsilon=1e-8)
    w, m, v = w0.astype(np.float64), np.zeros(3), np.zeros(3)
    for t in range(1, 4):
        g = np.array([0.5, -1.0, 2.0]) * t
        opt.apply([tf.constant(g, tf.float32)])
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        lr_t = 0.1 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        w = w - lr_t * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(var.numpy(), w, rtol=1e-5)
    assert int(opt.iterations.numpy()) == 3


def test_loss_scale_halves_on_overflow_and_grows_after_period() -> None:
    scale = LossScale(enabled=True, initial=8.0, period=2)
    grads, finite = scale.unscale([tf.constant([16.0, np.inf])])
    assert not bool(finite)
    scale.update(finite)
    assert float(scale.scale.numpy()) == 4.0
    for _ in range(2):
        grads, finite = scale.unscale([tf.constant([4.0])])
        scale.update(finite)
    assert float(grads[0].numpy()[0]) == pytest.approx(1.0)
    assert float(scale.scale.numpy()) == 8.0


def test_disabled_loss_scale_is_identity() -> None:
    scale = LossScale(enabled=False)
    grads, finite = scale.unscale([tf.constant([3.0])])
    assert bool(finite) and float(grads[0].numpy()[0]) == 3.0


def test_loss_scale_stops_halving_at_its_floor() -> None:
    scale = LossScale(enabled=True, initial=4.0, floor=1.0)
    for _ in range(5):
        scale.update(tf.constant(False))
    assert float(scale.scale.numpy()) == 1.0 and scale.at_floor()
    assert not LossScale(enabled=False).at_floor()
