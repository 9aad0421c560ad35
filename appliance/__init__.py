"""Live facial recognition appliance firmware for police camera vans."""

__version__ = "0.1.0"
