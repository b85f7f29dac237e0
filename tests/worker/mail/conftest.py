from tests.mail_helpers import mail_sessions, mail_settings

__all__ = ["mail_sessions", "mail_settings"]
