from stn_utils.exercises import training as ex
from stn_utils.models import build_model, count_macs


def test_stn_share_accepts_the_measured_fraction_only(capsys):
    model = build_model("cifar_stn")
    share = count_macs(model.stn, (3, 32, 32)) / count_macs(model, (3, 32, 32))
    assert ex.check_stn_share(share)
    assert not ex.check_stn_share(share + 0.05)
    assert not ex.check_stn_share(0.0)
    assert not ex.check_stn_share(1.2 * share)
    assert not ex.check_stn_share(100 * share)
    assert not ex.check_stn_share("a lot")
    assert not ex.check_stn_share(None)
    assert "Not answered yet" in capsys.readouterr().out


def test_zoom_factor_accepts_sqrt_abs_det_and_rejects_near_misses():
    assert ex.check_zoom_factor(lambda theta: theta[:, :, :2].det().abs().sqrt())
    assert not ex.check_zoom_factor(lambda theta: theta[:, :, :2].det())          # no sqrt, no abs
    assert not ex.check_zoom_factor(lambda theta: theta[:, 0, 0])                 # ignores rotation
    assert not ex.check_zoom_factor(lambda theta: theta.sum())                    # wrong shape
    assert not ex.check_zoom_factor(lambda theta: 1 / 0)                          # raises
    assert not ex.check_zoom_factor(None)
