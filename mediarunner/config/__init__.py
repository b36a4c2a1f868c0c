from mediarunner.config.settings import Rendition, Settings, get_settings

__all__ = ["Rendition", "Settings", "get_settings"]
