"""krimppost: the publishing pipeline of the Dutch programme on population decline."""

__version__ = "0.1.0"
