"""Baselines registered beside BEGAN: DCGAN (Radford et al. 2015) and WGAN-GP (Gulrajani et al. 2017)."""
