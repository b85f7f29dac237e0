"""Email: messages written in the business transaction (``email_messages``, an outbox of its own), sent by
the worker over SMTP in batches; the suppression list every send honours."""
