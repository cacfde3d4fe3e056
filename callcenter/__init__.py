"""1415: an IVR and SMS call-centre engine for national inquiries."""

__version__ = "0.1.0"
