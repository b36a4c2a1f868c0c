from mediarunner.config.settings import Rendition, Settings, get_settings, is_amqp

__all__ = ["Rendition", "Settings", "get_settings", "is_amqp"]
