"""Live facial recognition appliance firmware for police camera vans."""

__version__ = "0.2.0"
