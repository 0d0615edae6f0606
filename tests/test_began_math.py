"""BEGAN's equations against values worked out by hand from arXiv 1703.10717, eq. 2-4 and §3.4.1."""

import copy

import pytest
import torch
from torch.testing import assert_close

from began_plugin import BEGAN, BEGANLoss, EquilibriumController
from began_plugin.began.controller import PlateauRule
from began_plugin.began.loss import convergence_measure, discriminator_objective, reconstruction_loss
from began_plugin.began.variants import VARIANTS, pulling_away
from began_plugin.training.step import train_step

V = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
RECON = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])


def test_reconstruction_loss_l1_is_pixel_mean_of_absolute_error():
    # |v - D(v)| = 1, 0, 2, 3 -> mean 1.5
    assert_close(reconstruction_loss(V, RECON, eta=1), torch.tensor(1.5))


def test_reconstruction_loss_l2_squares_before_the_mean():
    # 1, 0, 4, 9 -> mean 3.5
    assert_close(reconstruction_loss(V, RECON, eta=2), torch.tensor(3.5))


def test_reconstruction_loss_rejects_other_exponents():
    with pytest.raises(ValueError, match="eta=3"):
        reconstruction_loss(V, RECON, eta=3)


def test_discriminator_objective():
    # 0.4 - 0.5 * 0.3 = 0.25
    assert_close(discriminator_objective(torch.tensor(0.4), torch.tensor(0.3), 0.5), torch.tensor(0.25))


def test_controller_update_by_hand():
    c = EquilibriumController(gamma=0.5, lambda_k=0.001, k_init=0.2)
    # 0.2 + 0.001 * (0.5 * 0.4 - 0.1) = 0.2001
    assert c.update(0.4, 0.1) == pytest.approx(0.2001, abs=1e-12)
    assert c.k == pytest.approx(0.2001, abs=1e-12)
    # a second step from the new k: 0.2001 + 0.001 * (0.5 * 0.2 - 0.3) = 0.1999
    assert c.update(torch.tensor(0.2, dtype=torch.float64), torch.tensor(0.3, dtype=torch.float64)) == pytest.approx(
        0.1999, abs=1e-12
    )


def test_controller_clips_at_one():
    c = EquilibriumController(gamma=1.0, lambda_k=0.001, k_init=0.99995)
    # 0.99995 + 0.001 * (1.0 - 0.0) = 1.00095 -> 1
    assert c.update(1.0, 0.0) == 1.0
    assert c.update(1.0, 0.0) == 1.0


def test_controller_clips_at_zero():
    c = EquilibriumController(gamma=0.5, lambda_k=0.01, k_init=0.001)
    # 0.001 + 0.01 * (0.5 * 0.1 - 0.5) = -0.0035 -> 0
    assert c.update(0.1, 0.5) == 0.0
    # k can leave 0 again: 0 + 0.01 * (0.5 * 1.0 - 0.1) = 0.004
    assert c.update(torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.1, dtype=torch.float64)) == pytest.approx(
        0.004, abs=1e-12
    )


def test_convergence_measure_by_hand():
    c = EquilibriumController(gamma=0.5)
    # 0.4 + |0.2 - 0.35| = 0.55 ; 0.4 + |0.2 - 0.1| = 0.5
    assert c.convergence(0.4, 0.35) == pytest.approx(0.55, abs=1e-12)
    assert c.convergence(torch.tensor(0.4), torch.tensor(0.1)) == pytest.approx(0.5, abs=1e-7)
    assert convergence_measure(0.4, 0.35, 0.7) == pytest.approx(0.4 + abs(0.28 - 0.35), abs=1e-12)


def test_controller_state_dict_round_trip(tmp_path):
    c = EquilibriumController(gamma=0.5, lambda_k=0.001, k_init=0.3)
    c.update(0.8, 0.1)
    torch.save(c.state_dict(), tmp_path / "c.pt")
    d = EquilibriumController(gamma=0.5, lambda_k=0.001)
    d.load_state_dict(torch.load(tmp_path / "c.pt", weights_only=True))
    assert d.k == c.k == pytest.approx(0.3 + 0.001 * 0.3, abs=1e-12)


def test_controller_rejects_k_outside_unit_interval():
    with pytest.raises(ValueError, match="k_init=1.5"):
        EquilibriumController(k_init=1.5)


def test_began_loss_by_hand():
    loss = BEGANLoss(gamma=0.5, eta=1)
    z = torch.zeros(2, 1, 4, 4)
    # L(x) = 0.5, L(G(z_D)) = 0.2, L(G(z_G)) = 0.1, k = 0.25
    loss_d, loss_g, logs = loss(z + 0.5, z, z + 0.2, z, z - 0.1, z, 0.25)
    assert_close(loss_d, torch.tensor(0.5 - 0.25 * 0.2))
    assert_close(loss_g, torch.tensor(0.1))
    assert "M_global" not in logs  # the host derives it from the averaged losses (derived_logs)
    assert_close(convergence_measure(logs["loss_real"], logs["loss_fake"], 0.5), torch.tensor(0.5 + abs(0.25 - 0.1)))


def test_began_loss_eta_2_by_hand():
    loss = BEGANLoss(gamma=0.5, eta=2)
    z = torch.zeros(1, 1, 2, 2)
    loss_d, loss_g, logs = loss(z + 0.5, z, z + 0.2, z, z + 0.1, z, 0.5)
    # L(x) = 0.25, L(G(z_D)) = 0.04, L(G(z_G)) = 0.01
    assert_close(loss_d, torch.tensor(0.25 - 0.5 * 0.04))
    assert_close(loss_g, torch.tensor(0.01))
    assert_close(convergence_measure(logs["loss_real"], logs["loss_fake"], 0.5), torch.tensor(0.25 + abs(0.125 - 0.01)))


def test_m_global_is_taken_of_the_averaged_losses_not_averaged():
    """Two processes with L(x), L(G(z)) = (0.2, 0.3) and (0.6, 0.1), gamma 0.5: M of the averages (0.4, 0.2) is
    0.4 + |0.2 - 0.2| = 0.4; the mean of the per-process M values would be (0.2 + 0.2 + 0.6 + 0.2) / 2 = 0.6."""
    torch.manual_seed(0)
    model = _small_began(gamma=0.5)
    real = torch.rand(4, 1, 32, 32) * 2 - 1

    def average_of_two(logs):  # what distributed.average_logs gives when the other process logged the rest
        out = dict(logs)
        out["loss_real"], out["loss_fake"] = torch.tensor((0.2 + 0.6) / 2), torch.tensor((0.3 + 0.1) / 2)
        return out

    logs = train_step(model, model.configure_optimizers(), lambda: real, reduce_logs=average_of_two)
    assert_close(logs["M_global"], torch.tensor(0.4))


def test_reconstruction_loss_is_float32_under_bf16_inputs():
    v = torch.full((1, 1, 2, 2), 1.0, dtype=torch.bfloat16)
    r = torch.full((1, 1, 2, 2), 0.99609375, dtype=torch.bfloat16)  # 1 - 2**-8, exact in bf16
    loss = reconstruction_loss(v, r)
    assert loss.dtype == torch.float32
    assert_close(loss, torch.tensor(2**-8), rtol=0, atol=0)


def test_plateau_rule_halves_after_patience_bad_windows(tmp_path):
    rule = PlateauRule(window=2, patience=2, factor=0.5)
    assert rule.observe(1.0) is None
    assert rule.observe(1.0) == 1.0  # first window: mean 1.0 is the best
    assert [rule.observe(v) for v in (2.0, 0.5)] == [None, 1.0]  # mean 1.25: bad window 1
    state = rule.state_dict()
    torch.save(state, tmp_path / "r.pt")
    resumed = PlateauRule(window=2, patience=2, factor=0.5)
    resumed.load_state_dict(torch.load(tmp_path / "r.pt", weights_only=True))
    for r in (rule, resumed):  # mean 1.0 equals the best: not an improvement -> bad window 2 -> halve
        assert [r.observe(v) for v in (1.0, 1.0)] == [None, 0.5]
        assert [r.observe(v) for v in (0.2, 0.2)] == [None, 0.5]  # improvement keeps the scale


def _small_began(**kw):
    return BEGAN(image_size=32, channels=1, n=8, h=8, z_dim=8, **kw)


def test_generator_loss_leaves_no_gradient_on_discriminator():
    torch.manual_seed(0)
    model = _small_began(k_init=0.5)
    real = torch.rand(4, 1, 32, 32) * 2 - 1
    d_out, g_out = model.losses(real)
    # L_D never moves G (its G(z_D) is detached; the shared forward gives G(z_G)'s rows zero gradient) ...
    grads = torch.autograd.grad(d_out.loss, list(model.generator.parameters()), allow_unused=True, retain_graph=True)
    assert all(g is None or not g.any() for g in grads)
    # ... while L_G does reach G, so the check above can fail.
    assert any(g.abs().sum() > 0 for g in torch.autograd.grad(g_out.loss, list(model.generator.parameters())))
    # ... and the host steps D with the gradient of L_D alone: compare with a hand-made update.
    torch.manual_seed(0)
    a = _small_began()
    b = copy.deepcopy(a)
    d_before = [p.detach().clone() for p in a.discriminator.parameters()]
    opts_a = a.configure_optimizers()
    torch.manual_seed(1)
    train_step(a, opts_a, lambda: real)
    opts_b = b.configure_optimizers()
    torch.manual_seed(1)
    d_b, _ = b.losses(real)
    d_params = list(b.discriminator.parameters())
    for p, g in zip(d_params, torch.autograd.grad(d_b.loss, d_params)):
        p.grad = g
    opts_b["discriminator"].step()
    for pa, pb in zip(a.discriminator.parameters(), b.discriminator.parameters()):
        assert_close(pa, pb, rtol=0, atol=0)
    # and D did move, so the comparison above is not vacuous
    assert any(not torch.equal(p, q) for p, q in zip(a.discriminator.parameters(), d_before))


def test_train_step_uses_k_before_update_and_updates_k_from_logged_losses():
    torch.manual_seed(0)
    model = _small_began(k_init=0.3, lambda_k=0.01)
    real = torch.rand(4, 1, 32, 32) * 2 - 1
    logs = train_step(model, model.configure_optimizers(), lambda: real)
    assert_close(logs["k"], torch.tensor(0.3, dtype=torch.float64))
    expected = min(max(0.3 + 0.01 * (0.5 * float(logs["loss_real"]) - float(logs["loss_fake"])), 0.0), 1.0)
    assert model.controller.k == pytest.approx(expected, abs=1e-9)
    assert model.controller.k != 0.3


def _constant_encoder(model, value):
    with torch.no_grad():
        model.discriminator.encoder.fc.weight.zero_()
        model.discriminator.encoder.fc.bias.fill_(value)


def test_began_cs_adds_alpha_times_latent_l1_to_the_discriminator_loss_only():
    """BEGAN-CS (Chang et al. 2018): L_D + alpha * mean|Enc(G(z_D)) - z_D|; L_G, k_t and M_global unchanged."""
    torch.manual_seed(0)
    plain = _small_began(k_init=0.4)
    cs = copy.deepcopy(plain)
    cs.hparams.latent_constraint = 0.1
    for m in (plain, cs):
        _constant_encoder(m, 0.25)  # Enc(v) = 0.25 for every v, so the constraint is mean|0.25 - z_D|
    real = torch.rand(3, 1, 32, 32) * 2 - 1
    torch.manual_seed(7)
    z_d = plain.sample_z(6)[:3]
    torch.manual_seed(7)
    d_plain, g_plain = plain.losses(real)
    torch.manual_seed(7)
    d_cs, g_cs = cs.losses(real)
    by_hand = 0.1 * (0.25 - z_d).abs().mean()
    assert_close(d_cs.loss - d_plain.loss, by_hand)
    assert by_hand > 0.01
    assert_close(d_cs.logs["latent_constraint"], (0.25 - z_d).abs().mean())
    assert_close(g_cs.loss, g_plain.loss, rtol=0, atol=0)
    for key in ("loss_real", "loss_fake", "loss_d"):
        assert_close(d_cs.logs[key], d_plain.logs[key], rtol=0, atol=0)
    assert "latent_constraint" not in d_plain.logs


def test_pulling_away_term_is_the_mean_squared_cosine_of_distinct_pairs():
    """f_PT (EBGAN eq. 7) worked out by hand for three embeddings: (1, 0), (1, 1), (0, 2).

    cos^2 of the pairs: (1,0)-(1,1): 1/2; (1,0)-(0,2): 0; (1,1)-(0,2): 1/2.  Each unordered pair counts twice
    in sum_{i != j}, over N (N - 1) = 6 ordered pairs: (2 * (1/2 + 0 + 1/2)) / 6 = 1/3.
    """
    codes = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    assert_close(pulling_away(codes), torch.tensor(1.0 / 3.0))
    assert_close(pulling_away(torch.tensor([[3.0, 0.0], [0.0, -1.0]])), torch.tensor(0.0))  # orthogonal
    assert_close(pulling_away(torch.tensor([[1.0, 2.0], [-2.0, -4.0]])), torch.tensor(1.0))  # parallel
    with pytest.raises(ValueError, match="needs a batch of at least 2, got 1"):
        pulling_away(codes[:1])


def test_pulling_away_adds_to_the_generator_loss_only():
    """EBGAN-PT in BEGAN: L_G + w * f_PT(Enc(G(z_G))); L_D, k_t's inputs and M_global unchanged."""
    torch.manual_seed(0)
    plain = _small_began(k_init=0.4)
    repelled = copy.deepcopy(plain)
    repelled.hparams.pull_away = 0.1
    real = torch.rand(3, 1, 32, 32) * 2 - 1
    torch.manual_seed(7)
    z_g = plain.sample_z(6)[3:]
    by_hand = 0.1 * pulling_away(plain.discriminator.encoder(plain.generator(z_g)))
    torch.manual_seed(7)
    d_plain, g_plain = plain.losses(real)
    torch.manual_seed(7)
    d_pt, g_pt = repelled.losses(real)
    assert by_hand > 1e-3
    assert_close(g_pt.loss - g_plain.loss, by_hand)
    # the term's gradient reaches G: grad of L_G + w f_PT on one copy equals grad of the option's L_G on the other
    expected = torch.autograd.grad(g_plain.loss + by_hand, list(plain.generator.parameters()))
    actual = torch.autograd.grad(g_pt.loss, list(repelled.generator.parameters()))
    torch.manual_seed(7)
    plain_only = torch.autograd.grad(plain.losses(real)[1].loss, list(plain.generator.parameters()))
    assert not torch.allclose(expected[0], plain_only[0])  # the term changes G's gradient
    for a, e in zip(actual, expected):
        assert_close(a, e)
    by_hand = by_hand.detach()
    assert_close(d_pt.logs["pull_away"], by_hand / 0.1)
    assert_close(d_pt.loss, d_plain.loss, rtol=0, atol=0)
    for key in ("loss_real", "loss_fake", "loss_d"):
        assert_close(d_pt.logs[key], d_plain.logs[key], rtol=0, atol=0)
    assert "pull_away" not in d_plain.logs
    with pytest.raises(ValueError, match=r"pull_away=-0.1 must be >= 0"):
        _small_began(pull_away=-0.1)


def test_packing_stacks_consecutive_images_along_the_channels():
    """PacGAN (Lin et al. 2018) with pack=2: images 0,1 -> pack 0 (channels 0,1 of 1-channel images), 2,3 -> pack 1."""
    model = _small_began(pack=2)
    images = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 32, 32)
    packed = model.pack_images(images)
    assert packed.shape == (2, 2, 32, 32)
    assert_close(packed[:, :, 0, 0], torch.tensor([[0.0, 1.0], [2.0, 3.0]]))
    assert model.discriminator.encoder.features[0].in_channels == 2
    assert model.discriminator.decoder.to_image.out_channels == 2
    assert _small_began().pack_images(images) is images  # pack=1: unchanged
    with pytest.raises(
        ValueError, match="packs of 2 images, but batch_size=3 is not a multiple of it; pass e.g. batch_size=2"
    ):
        model.pack_images(images[:3])


def test_packed_losses_are_the_paper_losses_on_packs():
    """With pack=2, L(x) = mean|P(x) - D(P(x))| over the packs P(x), likewise for G(z_D) and G(z_G); L_D, L_G and
    BEGAN-CS follow from them (the constraint compares a pack's embedding, pack * h numbers, with its images' z,
    concatenated)."""
    torch.manual_seed(0)
    model = _small_began(pack=2, k_init=0.3, latent_constraint=0.1)
    real = torch.rand(4, 1, 32, 32) * 2 - 1
    torch.manual_seed(5)
    z = model.sample_z(8)
    torch.manual_seed(5)
    d_out, g_out = model.losses(real)
    with torch.no_grad():
        enc, dec = model.discriminator.encoder, model.discriminator.decoder
        x_p = real.reshape(2, 2, 32, 32)
        fd_p = model.generator(z[:4]).reshape(2, 2, 32, 32)
        fg_p = model.generator(z[4:]).reshape(2, 2, 32, 32)
        l_real = (x_p - dec(enc(x_p))).abs().mean()
        l_fake_d = (fd_p - dec(enc(fd_p))).abs().mean()
        l_fake_g = (fg_p - dec(enc(fg_p))).abs().mean()
        constraint = (enc(fd_p) - z[:4].reshape(2, 16)).abs().mean()
    assert_close(d_out.logs["loss_real"], l_real)
    assert_close(d_out.logs["loss_fake"], l_fake_g)
    assert_close(g_out.loss, l_fake_g)
    assert_close(d_out.logs["latent_constraint"], constraint)
    assert_close(d_out.loss, l_real - 0.3 * l_fake_d + 0.1 * constraint)
    assert (model.discriminator.encoder.fc.out_features, model.discriminator.decoder.fc.in_features) == (16, 16)
    with pytest.raises(ValueError, match="pack=0 must be a positive integer"):
        _small_began(pack=0)


def test_began_cs_needs_h_equal_to_z_dim():
    with pytest.raises(ValueError, match="h must equal z_dim.*set model.h=8"):
        BEGAN(image_size=32, channels=1, n=8, h=16, z_dim=8, latent_constraint=0.1)
    with pytest.raises(ValueError, match="must be >= 0"):
        _small_began(latent_constraint=-1.0)


def test_began_rate_is_the_plateau_scale_times_the_base_rate():
    """lr_t = lr * plateau scale, set after each window's end (the host's next step uses it)."""
    model = _small_began(lr=1e-3, lr_decay_window=1, lr_decay_patience=1)
    opts = model.configure_optimizers()
    rates = []
    for m_global in (1.0, 2.0, 3.0, 1.5):  # window 1: the first is the best, the next two halve, 1.5 halves again
        logs = {"loss_real": torch.tensor(0.1), "loss_fake": torch.tensor(0.05), "M_global": torch.tensor(m_global)}
        model.on_train_step_end(logs, opts)
        rates.append([g["lr"] for o in opts.values() for g in o.param_groups])
    for got, want in zip(rates, (1e-3, 5e-4, 2.5e-4, 1.25e-4)):
        assert got == pytest.approx([want, want], rel=1e-12)


def test_two_time_scale_rates_start_apart_and_follow_the_same_schedule():
    """lr_d gives D its own rate (TTUR); the plateau scale multiplies each base rate."""
    model = _small_began(lr=1e-3, lr_d=4e-3, lr_decay_window=1, lr_decay_patience=1)
    opts = model.configure_optimizers()
    assert opts["generator"].param_groups[0]["lr"] == 1e-3
    assert opts["discriminator"].param_groups[0]["lr"] == 4e-3
    for m_global in (1.0, 2.0):  # step 1: scale 1; step 2: scale 0.5
        logs = {"loss_real": torch.tensor(0.1), "loss_fake": torch.tensor(0.05), "M_global": torch.tensor(m_global)}
        model.on_train_step_end(logs, opts)
    assert opts["generator"].param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5, rel=1e-12)
    assert opts["discriminator"].param_groups[0]["lr"] == pytest.approx(4e-3 * 0.5, rel=1e-12)
    same = _small_began(lr=1e-3).configure_optimizers()  # lr_d = 0 (default): one rate, as in the paper
    assert [o.param_groups[0]["lr"] for o in same.values()] == [1e-3, 1e-3]
    with pytest.raises(ValueError, match="lr_d=-0.001 must be >= 0"):
        _small_began(lr_d=-1e-3)
    with pytest.raises(ValueError, match="lr=0.0 must be > 0"):
        _small_began(lr=0.0)


def test_each_variant_is_off_by_default_and_named_when_on():
    """Every named variant's off value is the Hparams default, and option_notes names exactly the ones turned on."""
    defaults = BEGAN.Hparams()
    assert BEGAN.option_notes({}) == {}
    for variant in VARIANTS:
        assert getattr(defaults, variant.hparam) == variant.off, variant.name
        on = {variant.hparam: 2 if variant.hparam == "pack" else 0.1}
        assert list(BEGAN.option_notes(on)) == [variant.name]
    assert sorted(BEGAN.option_notes({"pack": 2, "latent_constraint": 0.1})) == ["began-cs", "pacgan"]


# -- model.elu=exp: the same function as nn.ELU, through exp -------------------------------------------------------
def test_exp_elu_is_elu_by_hand_and_its_gradient_is_elus():
    from began_plugin.began.model import ExpELU

    x = torch.tensor([-20.0, -2.0, -1.0, -1e-3, 0.0, 1e-3, 0.5, 3.0], dtype=torch.float64, requires_grad=True)
    # ELU(x) = x for x > 0, e^x - 1 otherwise; its derivative 1 for x > 0, e^x otherwise (e^0 = 1 at 0)
    e = torch.e
    by_hand = torch.tensor([e**-20 - 1, e**-2 - 1, e**-1 - 1, e**-1e-3 - 1, 0.0, 1e-3, 0.5, 3.0], dtype=torch.float64)
    slope = torch.tensor([e**-20, e**-2, e**-1, e**-1e-3, 1.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    y = ExpELU()(x)
    assert_close(y, by_hand, rtol=1e-12, atol=1e-15)
    (g,) = torch.autograd.grad(y, x, torch.ones_like(y))
    assert_close(g, slope, rtol=1e-12, atol=1e-15)
    torch.autograd.gradcheck(lambda v: ExpELU()(v), (torch.randn(20, dtype=torch.float64, requires_grad=True),))


def test_exp_elu_matches_nn_elu_to_float32_rounding_on_a_network_activation():
    from began_plugin.began.model import ExpELU

    x = torch.randn(4, 8, 16, 16, generator=torch.Generator().manual_seed(0)) * 3
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = torch.nn.ELU()(a), ExpELU()(b)
    assert_close(yb, ya, rtol=0, atol=2e-7)  # e^x - 1 against expm1: one unit in the last place near 0
    ya.backward(torch.ones_like(ya))
    yb.backward(torch.ones_like(yb))
    assert_close(b.grad, a.grad, rtol=0, atol=2e-7)


def test_began_with_exp_elu_has_the_same_losses_and_refuses_an_unknown_elu():
    torch.manual_seed(0)
    ref = BEGAN(32, 1, n=8, h=8, z_dim=8, elu="torch")
    torch.manual_seed(0)
    fast = BEGAN(32, 1, n=8, h=8, z_dim=8)  # the default, elu=exp
    fast.load_state_dict(ref.state_dict())  # an ELU has no parameters: checkpoints move between the two
    from began_plugin.began.model import ExpELU

    assert {type(m) for m in ref.modules()} & {ExpELU, torch.nn.ELU} == {torch.nn.ELU}
    assert {type(m) for m in fast.modules()} & {ExpELU, torch.nn.ELU} == {ExpELU}
    real = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    torch.manual_seed(2)
    (d_ref, g_ref) = ref.losses(real)
    torch.manual_seed(2)
    (d_fast, g_fast) = fast.losses(real)
    assert_close(d_fast.loss, d_ref.loss, rtol=1e-5, atol=1e-6)
    assert_close(g_fast.loss, g_ref.loss, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="elu='expm1' is not one of"):
        BEGAN(32, 1, n=8, h=8, elu="expm1")


@pytest.mark.parametrize("hparams", [{}, {"pack": 2, "latent_constraint": 0.1, "skip": True}])
def test_cpu_micro_batch_gives_the_same_losses_and_gradients_as_the_whole_batch(hparams):
    # Every op of BEGAN's networks is per image, so running them over chunks of 3 rows (a last chunk of 2
    # included) is the same function as one call over the batch: only float rounding may differ.
    def losses_and_grads(micro):
        torch.manual_seed(0)
        model = BEGAN(32, 1, n=8, h=8, z_dim=8, cpu_micro_batch=micro, **hparams)
        real = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
        torch.manual_seed(2)
        d, g = model.losses(real)
        d_grads = torch.autograd.grad(d.loss, list(model.discriminator.parameters()), retain_graph=True)
        g_grads = torch.autograd.grad(g.loss, list(model.generator.parameters()))
        return d.loss, g.loss, d_grads, g_grads

    whole, chunked = losses_and_grads(0), losses_and_grads(3)
    assert_close(chunked[0], whole[0], rtol=1e-5, atol=1e-7)
    assert_close(chunked[1], whole[1], rtol=1e-5, atol=1e-7)
    for a, b in zip(chunked[2] + chunked[3], whole[2] + whole[3]):
        assert_close(a, b, rtol=1e-4, atol=1e-6)
    # and the chunks really ran: the generator saw rows of at most 3
    torch.manual_seed(0)
    model = BEGAN(32, 1, n=8, h=8, z_dim=8, cpu_micro_batch=3, **hparams)
    seen = []
    model.generator.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[0]))
    model.losses(torch.zeros(8, 1, 32, 32))
    assert max(seen) == 3 and sum(seen) == 16


def test_cpu_micro_batch_refuses_a_negative_size():
    with pytest.raises(ValueError, match="cpu_micro_batch=-1 must be >= 0"):
        BEGAN(32, 1, n=8, h=8, cpu_micro_batch=-1)
